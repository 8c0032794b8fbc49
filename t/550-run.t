-- t/550-run.t: `coronet --run SCRIPT ARGS...`: the script's arguments in
-- arg and ..., the exit status from os.exit or an uncaught error (with
-- file:line), and the program ending with its main chunk.
local t = require "lib.tap"
local server = require "lib.server"
local coronet = require "coronet"

local scripts = {}

-- script(src) writes a program to a temporary file and returns its path.
local function script(src)
  local base = os.tmpname() -- creates the file: removed at the end too
  local path = base .. ".lua"
  local f = assert(io.open(path, "w"))
  f:write(src)
  f:close()
  scripts[#scripts + 1] = base
  scripts[#scripts + 1] = path
  return path
end

local function run(src, ...)
  local path = script(src)
  local code, err, out = server.run({ "--run", path, ... }, 30)
  return code, err or "", out or "", path
end

t.test("arg holds the script and its arguments; ... the arguments",
  function()
  local code, err, out, path = run([[
    io.write(arg[0], "|", #arg)
    for i = 1, #arg do io.write("|", arg[i]) end
    io.write("\n", select("#", ...))
    for i = 1, select("#", ...) do io.write("|", (select(i, ...))) end
    io.write("\n")
  ]], "a", "b c", "--not-an-option", "-x", "")
  t.is(code, 0, "exit status 0")
  t.is(out, path .. "|5|a|b c|--not-an-option|-x|\n5|a|b c|--not-an-option|-x|\n",
    "arguments after the script are the program's, options too")
  t.is(err, "", "nothing on stderr")
end)

t.test("a script with no arguments gets an empty arg and no ...",
  function()
  local code, _, out = run([[print(#arg, select("#", ...))]])
  t.is(code, 0, "exit status 0")
  t.is(out, "0\t0\n", "none")
end)

t.test("the exit status follows os.exit", function()
  local cases = {
    { "os.exit(3)", 3 }, { "os.exit(0)", 0 }, { "os.exit(true)", 0 },
    { "os.exit(false)", 1 }, { "os.exit()", 0 },
    { "require('coronet').exit(7)", 7 },
  }
  for _, c in ipairs(cases) do
    local code = run(c[1] .. "\nerror('not reached')")
    t.is(code, c[2], c[1] .. " exits with " .. c[2])
  end
end)

t.test("output written before os.exit is not lost", function()
  local code, _, out = run([[
    print("line")
    io.write("no newline")
    os.exit(4)
  ]])
  t.is(code, 4, "status 4")
  t.is(out, "line\nno newline", "both reached stdout")
end)

t.test("a script that ends normally exits 0, even with tasks still running",
  function()
  local t0 = coronet.now()
  local code, _, out = run([[
    local coronet = require "coronet"
    coronet.spawn(function() coronet.sleep(60) print("never") end)
    coronet.sleep(0.01)
    print("done")
  ]])
  t.is(code, 0, "status 0")
  t.is(out, "done\n", "the sleeping task did not hold the program")
  t.cmp_ok(coronet.now() - t0, "<", 20, "it ended at once")
end)

t.test("an uncaught error: non-zero status, message with file:line",
  function()
  local code, err, _, path = run([[
    local x = 1
    error("boom")
  ]])
  t.isnt(code, 0, "non-zero status")
  t.ok(err:find(path .. ":2: boom", 1, true), "stderr names file:line")
end)

t.test("an error after the main chunk blocked is reported the same way",
  function()
  local code, err, _, path = run([[
    local coronet = require "coronet"
    local ch = coronet.chan()
    coronet.spawn(function() ch:send(1) end)
    ch:recv()
    coronet.sleep(0.01)
    local t = nil
    print(t.field)
  ]])
  t.isnt(code, 0, "non-zero status")
  t.ok(err:find(path .. ":7:", 1, true), "stderr names file:line")
  t.like(err, "attempt to index", "and the error")
end)

t.test("a syntax error: non-zero status, message with file:line", function()
  local code, err, _, path = run("local x = = 1\n")
  t.isnt(code, 0, "non-zero status")
  t.ok(err:find(path .. ":1:", 1, true), "stderr names file:line: "
    .. (err:gsub("\n", " ")))
end)

t.test("an error in a spawned task is logged; the program goes on",
  function()
  local code, err, out, path = run([[
    local coronet = require "coronet"
    local wg = coronet.waitgroup()
    wg:add(1)
    coronet.spawn(function()
      wg:done()
      error("task failed")
    end)
    wg:wait()
    coronet.sleep(0.01)
    print("main goes on")
  ]])
  t.is(code, 0, "the main chunk decides the status")
  t.ok(err:find(path .. ":6: task failed", 1, true), "the error is logged")
  t.is(out, "main goes on\n", "and main ran to its end")
end)

t.test("os.exit from another task ends the program with its status",
  function()
  local code, _, out = run([[
    local coronet = require "coronet"
    coronet.spawn(function()
      coronet.sleep(0.01)
      print("exiting")
      os.exit(9)
    end)
    coronet.sleep(60)
    print("not reached")
  ]])
  t.is(code, 9, "status 9")
  t.is(out, "exiting\n", "main never resumed")
end)

t.test("a script that does not exist: non-zero status and why", function()
  local code, err = server.run({ "--run", "/nonexistent/script.lua" }, 30)
  t.isnt(code, 0, "non-zero status")
  t.like(err, "/nonexistent/script%.lua", "the message names the script")
end)

t.test("the exit status of a program that blocks in a coroutine", function()
  local code, _, out = run([[
    local coronet = require "coronet"
    local gen = coroutine.wrap(function()
      for i = 1, 3 do
        coronet.sleep(0.001)
        coroutine.yield(i)
      end
    end)
    print(gen() + gen() + gen())
    os.exit(5)
  ]])
  t.is(code, 5, "status 5")
  t.is(out, "6\n", "the generator blocked and yielded values")
end)

for _, path in ipairs(scripts) do os.remove(path) end
t.done()
