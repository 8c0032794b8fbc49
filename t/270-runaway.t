-- t/270-runaway.t: the runaway and memory guards (issue #12) and a stuck
-- worker at shutdown (issue #14). A task that runs interpreted Lua past
-- --task-slice without yielding is stopped with an error; one in compiled
-- code or a blocking C call is reported; a task that yields is never
-- touched; --lua-memory ends only the task that crosses it; SIGTERM ends
-- the process even when a worker never comes back.
local t = require "lib.tap"
local server = require "lib.server"
local util = require "lib.util"
local coronet = require "coronet"

local script = util.tmpfile([[
local coronet = require "coronet"
local ffi = require "ffi"
ffi.cdef "int poll(void *fds, unsigned long n, int timeout);"
return function(conn)
  for line in conn:lines() do
    if line == "spin" then
      jit.off()
      local x = 0
      while true do x = x + 1 end -- MARK:spin
    elseif line == "pspin" then -- swallows the error and spins on
      jit.off()
      local n, caught = 0, 0
      while caught < 2 do
        if not pcall(function() while true do n = n + 1 end end) then
          caught = caught + 1
        end
      end
      conn:write("caught twice\n")
    elseif line == "jit" then
      jit.on()
      local x = 0
      while true do x = x + 1 end
    elseif line == "block" then
      ffi.C.poll(nil, 0, 1500) -- a blocking C call: 1.5 s
      conn:write("blocked\n")
    elseif line == "yield" then
      local t0 = coronet.now()
      while coronet.now() - t0 < 1 do
        for _ = 1, 1e4 do end
        coronet.yield()
      end
      conn:write("done\n")
    elseif line == "mem" then
      local t = {}
      for i = 1, 1e9 do t[i] = { i } end
    else
      conn:write("echo " .. line .. "\n")
    end
  end
end
]])

local function line_of(mark)
  local n = 0
  for l in io.lines(script) do
    n = n + 1
    if l:find("MARK:" .. mark, 1, true) then return n end
  end
end

-- ping(s, n) has a second connection ask n questions in a row; returns the
-- longest wait for an answer, or nil and the error.
local function pinger(s)
  local c = s:connect(5)
  local worst = 0
  return function(n)
    for i = 1, n do
      local t0 = coronet.now()
      c:write("p" .. i .. "\n")
      local r, err = c:read_line()
      if r ~= "echo p" .. i then return nil, err or r end
      worst = math.max(worst, coronet.now() - t0)
      coronet.sleep(0.02)
    end
    return worst
  end, c
end

t.test("a runaway interpreted loop is stopped at the slice; the others go "
  .. "on", function()
    local s = server.start { script = script, opts = { "--task-slice", "0.3" } }
    local ping, pc = pinger(s)
    t.ok(ping(2), "served before")
    local c = s:connect(10)
    c:write("spin\n")
    local t0 = coronet.now()
    local _, err = c:read_line()
    local took = coronet.now() - t0
    t.is(err, "eof", "the spinning handler's connection ends")
    t.cmp_ok(took, "<", 2, "near the 0.3 s slice")
    local worst, perr = ping(5)
    t.ok(worst, "the other connection is served again: " .. tostring(perr))
    local line = s:wait_log("stopped %(%-%-task%-slice 0%.3%)")
    t.ok(line, "the error names the slice")
    t.like(line or "", "%.lua:" .. line_of("spin") .. ": task ran",
      "and where it spun")
    t.like(line or "", "%(conn %d+ from 127%.0%.0%.1:%d+%)", "and the conn")
    t.like(s:log(), "stack traceback:\n[^\n]*%.lua:" .. line_of("spin"),
      "the traceback shows the loop")
    pc:close()
    c:close()
    t.is(s:stop(), 0, "exit 0")
  end)

t.test("a loop that swallows the error is stopped again each slice",
  function()
    local s = server.start { script = script, opts = { "--task-slice", "0.2" } }
    local c = s:connect(10)
    local t0 = coronet.now()
    c:write("pspin\n")
    t.is(c:read_line(), "caught twice", "stopped once, then again")
    t.cmp_ok(coronet.now() - t0, "<", 2, "one slice after the other")
    c:close()
    t.is(s:stop(), 0, "exit 0")
  end)

t.test("a task that yields often is never stopped", function()
  local s = server.start { script = script, opts = { "--task-slice", "0.2" } }
  local c = s:connect(10)
  c:write("yield\n")
  t.is(c:read_line(), "done", "it ran 1 s (five slices) to its end")
  t.ok(not s:log():find("task%-slice"), "nothing logged")
  c:close()
  t.is(s:stop(), 0, "exit 0")
end)

t.test("a blocking C call is logged once, with where it was", function()
  local s = server.start { script = script, opts = { "--task-slice", "1" } }
  local c = s:connect(10)
  c:write("block\n")
  t.is(c:read_line(), "blocked", "the call returned and the handler went on")
  local line = s:wait_log("held the loop for 1%.%d s in a blocking call")
  t.ok(line, "the log says a task held the loop")
  t.like(s:log(), "in a blocking call[^\n]*\nstack traceback:", "where")
  local _, n = s:log():gsub("held the loop", "")
  t.is(n, 1, "once")
  c:close()
  t.is(s:stop(), 0, "exit 0")
end)

t.test("the Lua memory bound ends only the guilty connection", function()
  local s = server.start { script = script, opts = { "--lua-memory", "64m" } }
  local ping, pc = pinger(s)
  local c = s:connect(30)
  c:write("mem\n")
  local _, err = c:read_line()
  t.is(err, "eof", "the connection that built a huge table ends")
  t.ok(s:wait_log("not enough memory %(conn %d+ from "),
    "the log says 'not enough memory', with its conn")
  t.ok(ping(3), "the other connection is still served")
  local c2 = s:connect()
  c2:write("x\n")
  t.is(c2:read_line(), "echo x", "and new ones")
  c2:close()
  pc:close()
  c:close()
  t.is(s:stop(), 0, "exit 0")
end)

t.test("compiled code the slice cannot stop is reported", function()
  local s = server.start { script = script,
    opts = { "--task-slice", "0.2", "--grace", "0.5" } }
  local c = s:connect(10)
  c:write("jit\n")
  local line = s:wait_log("task %d+ %(conn %d+%) has held the loop for "
    .. "[%d.]+ s in compiled code or a blocking call")
  t.ok(line, "the log says the task cannot be stopped, naming it")
  -- issue #14: SIGTERM ends the process all the same
  local t0 = coronet.now()
  s:signal("TERM")
  local code = s.proc:wait(10)
  t.cmp_ok(coronet.now() - t0, "<", 1.5, "exit within the grace + 1 s")
  t.is(code, 1, "status 1: a worker had to be abandoned")
  t.ok(s:wait_log("worker 1 is stuck: task %d+ %(conn %d+%) has run"),
    "the log names the task that held it")
  c:close()
end)

t.test("a second signal exits at once with a stuck worker", function()
  local s = server.start { script = script,
    opts = { "--task-slice", "0", "--grace", "30" } }
  local c = s:connect(10)
  c:write("jit\n")
  coronet.sleep(0.5)
  s:signal("TERM")
  t.ok(s:wait_log("shutting down"), "first signal")
  coronet.sleep(0.2)
  local t0 = coronet.now()
  s:signal("INT")
  local code = s.proc:wait(10)
  t.cmp_ok(coronet.now() - t0, "<", 1, "the second signal exits at once")
  t.is(code, 1, "status 1")
  t.ok(s:wait_log("worker 1 is stuck"), "naming the stuck worker")
  c:close()
end)

t.test("a --run program has no task slice unless it asks for one",
  function()
    local prog = util.tmpfile([[
jit.off()
local t0, n = require("coronet").now(), 0
while require("coronet").now() - t0 < 0.6 do n = n + 1 end
print("finished")
]])
    local code, err, out = server.run { "--run", prog }
    t.is(code, 0, "exit 0: " .. tostring(err))
    t.is(out, "finished\n", "it computed 0.6 s in one go")
    code, err = server.run { "--task-slice", "0.2", "--run", prog }
    t.is(code, 1, "with --task-slice 0.2 it is stopped")
    t.like(err, "task ran 0%.%d s without yielding: stopped %(%-%-task%-slice "
      .. "0%.2%)", "and says why")
  end)

util.cleanup()
t.done()
