-- t/160-process.t: coronet.process misuse: a bad argument to spawn, wait
-- or kill raises naming the function at the caller's line (not a line
-- inside coronet), and kill sends the signal it is given.
local t = require "lib.tap"
local util = require "lib.util"
local coronet = require "coronet"
local process = require "coronet.process"

-- sleeper() -> a child that sleeps until it is killed (10 s at most)
local function sleeper()
  return assert(process.spawn { "sleep", "10" })
end

t.test("spawn of anything but a table raises naming spawn", function()
  util.bad_arg(t, function() process.spawn("sleep") end, 1, "spawn",
    "table expected, got string", "spawn('sleep')")
end)

-- cleanup: a bad stream mode said "bad argument #2 to 'spawn'" at a line
-- inside coronet/process.lua
t.test("spawn with a bad stream mode raises naming spawn", function()
  util.bad_arg(t, function() process.spawn { "true", stdout = "x" } end, 1,
    "spawn", "invalid option 'x'", "stdout = 'x'")
  util.bad_arg(t, function() process.spawn { "true", stdin = {} } end, 1,
    "spawn", "string expected, got table", "stdin = {}")
end)

-- cleanup: p:wait("x") raised at a line inside coronet/process.lua
t.test("wait with a timeout that is not a number raises at the caller's "
  .. "line", function()
  local p = sleeper()
  util.bad_arg(t, function() p:wait("x") end, 1, "wait",
    "number expected, got string", "wait('x')")
  t.ok(p:kill("KILL"), "the child is still there to kill")
  local code, sig = p:wait(10)
  t.ok(code ~= nil and sig == 9, "and it ended by SIGKILL")
end)

-- cleanup: p:kill({}) sent SIGTERM and p:kill(1.5) SIGHUP, silently
t.test("kill with a signal that is neither a name nor a whole number "
  .. "raises and sends nothing", function()
  local p = sleeper()
  util.bad_arg(t, function() p:kill({}) end, 1, "kill",
    "signal name or number expected, got table", "kill({})")
  util.bad_arg(t, function() p:kill(true) end, 1, "kill",
    "signal name or number expected, got boolean", "kill(true)")
  util.bad_arg(t, function() p:kill(1.5) end, 1, "kill",
    "invalid signal number", "kill(1.5)")
  util.bad_arg(t, function() p:kill(2 ^ 40) end, 1, "kill",
    "invalid signal number", "kill(2^40)")
  util.bad_arg(t, function() p:kill("NOPE") end, 1, "kill",
    "invalid option 'NOPE'", "kill('NOPE')")
  local code, err = p:wait(0.05)
  t.ok(code == nil and err == "timeout", "the child is still running")
  t.ok(p:kill(), "kill() sends the default")
  local _, sig = p:wait(10)
  t.is(sig, 15, "which is SIGTERM")
end)

t.test("kill takes signal numbers and names", function()
  local p = sleeper()
  t.ok(p:kill(9), "kill(9)")
  local _, sig = p:wait(10)
  t.is(sig, 9, "ended by SIGKILL")
  p = sleeper()
  t.ok(p:kill("INT"), "kill('INT')")
  _, sig = p:wait(10)
  t.is(sig, 2, "ended by SIGINT")
end)

t.test("nothing is left over", function()
  util.no_leftovers(t)
end)

t.done()
