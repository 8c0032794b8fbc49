-- coronet: tasks and time. spawn a task, sleep, read the monotonic clock.
-- Connections, io, channels and the rest live in coronet.* modules.
local sched = require "coronet.c.sched"
local type, error, tostring = type, error, tostring
local co_yield, isyieldable = coroutine.yield, coroutine.isyieldable
local park, unpark, now = sched.park, sched.unpark, sched.now

local _M = { _VERSION = "0.1.0" }

-- wait yields the running task after a host call parked it, and returns
-- what the scheduler resumes it with. what names the call in the error
-- raised when Lua cannot yield here. For coronet's own modules.
local function wait(what)
  if not isyieldable() then
    unpark()
    error(what .. ": cannot block here: Lua cannot yield across a C call "
      .. "(a table.sort comparator, a string.gsub callback, a __gc "
      .. "metamethod, or a coroutine not run by coronet)", 3)
  end
  return co_yield()
end
_M.wait = wait

-- spawn(fn, ...) runs fn(...) as a new task from the next loop turn and
-- returns the task. An error in it is logged with a traceback and ends
-- only that task.
_M.spawn = sched.spawn

-- now() returns the monotonic time in seconds, a float.
_M.now = now

-- sleep(seconds) parks the running task for that long.
function _M.sleep(s)
  if type(s) ~= "number" then
    error("bad argument #1 to 'sleep' (number expected, got "
      .. type(s) .. ")", 2)
  end
  local deadline = now() + s
  repeat
    park(deadline - now())
  until not wait("sleep") or now() >= deadline
end

-- yield() lets every other ready task run once, then carries on.
function _M.yield()
  co_yield()
end

-- stats() returns counts of this worker's tasks, connections and buffer
-- blocks.
_M.stats = sched.stats

-- alive(task) says whether a task returned by spawn is still running.
_M.alive = sched.alive

local states = {}

-- state(name) returns the table named name, the same one for every
-- version of the script: what must outlive a reload (a chat room's
-- members) lives there. Per worker.
function _M.state(name)
  if type(name) ~= "string" then
    error("bad argument #1 to 'state' (string expected, got " .. type(name)
      .. ")", 2)
  end
  local t = states[name]
  if not t then
    t = {}
    states[name] = t
  end
  return t
end

function _M.exit(code)
  return os.exit(code)
end

return _M
