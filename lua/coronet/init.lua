-- coronet: tasks and time. spawn a task, sleep, read the monotonic clock.
-- Connections, io, channels and the rest live in coronet.* modules.
local sched = require "coronet.c.sched"
local type, error, tostring, setmetatable = type, error, tostring, setmetatable
local co_yield, isyieldable = coroutine.yield, coroutine.isyieldable
local park, unpark, now = sched.park, sched.unpark, sched.now
local SLEEP = sched.waits.sleep

local _M = { _VERSION = "0.1.0" }

local current, running = sched.current, coroutine.running

-- PARK is what a coroutine that a task resumed yields when a host call
-- parked the task inside it; the resume wrappers in coronet.boot pass it
-- up to the task's own coroutine, which yields to the scheduler.
local PARK = setmetatable({}, { __tostring = function() return "PARK" end })
_M.PARK = PARK

-- wait yields the running task after a host call parked it, and returns
-- what the scheduler resumes it with. what names the call in the error
-- raised when Lua cannot yield here; own, when known (park() returns it),
-- says whether this runs in the task's own coroutine. For coronet's own
-- modules.
local function wait(what, own)
  if not isyieldable() then
    unpark()
    error(what .. ": cannot block here: Lua cannot yield across a C call "
      .. "(a table.sort comparator, a string.gsub callback or a __gc "
      .. "metamethod)", 3)
  end
  if own == nil then own = running() == current() end
  if own then return co_yield() end
  return co_yield(PARK)
end
_M.wait = wait

-- blocking(methods, name, prefix) turns methods[name], a host call that
-- returns false when it parked the task, into the blocking method: it
-- waits and asks again until there is a result. Writes also carry how far
-- they got: the host returns false, offset, and is called again with it.
-- For coronet's own modules.
function _M.blocking(methods, name, prefix)
  local raw, what = methods[name], prefix .. ":" .. name
  if name == "write" then
    methods.write = function(self, data)
      local n, err, done = raw(self, data)
      while n == false do
        wait(what)
        n, err, done = raw(self, data, err) -- err: the offset so far
      end
      return n, err, done
    end
    return
  end
  methods[name] = function(self, a, b)
    local x, y, z = raw(self, a, b)
    while x == false do
      wait(what)
      x, y, z = raw(self, a, b)
    end
    return x, y, z
  end
end

local host = require "coronet.c.host"
local traceback, xpcall, spawn = debug.traceback, xpcall, sched.spawn
local pcall, getmetatable, pairs, sort, concat, format =
  pcall, getmetatable, pairs, table.sort, table.concat, string.format

-- show(v) -> tostring(v), or its type when its __tostring fails.
local function show(v)
  local ok, s = pcall(tostring, v)
  return ok and type(s) == "string" and s or "(a " .. type(v) .. ")"
end

-- describe(e) -> a string for any error value, never raising: a string as
-- it is, a table with a __tostring by it (unless that fails), any other
-- table by its fields ("{code = 42}"), else by tostring.
local function describe(e)
  local t = type(e)
  if t == "string" then return e end
  local mt = t == "table" and getmetatable(e)
  if t ~= "table" or (type(mt) == "table" and mt.__tostring) then
    local ok, s = pcall(tostring, e)
    if ok and type(s) == "string" then return s end
    return "(error object is a " .. t .. " value whose __tostring failed: "
      .. (ok and "it returned a " .. type(s) or show(s)) .. ")"
  end
  local keys, parts = {}, {}
  for k in pairs(e) do keys[#keys + 1] = k end
  pcall(sort, keys, function(a, b) return show(a) < show(b) end)
  for i = 1, #keys do
    if i > 8 then parts[i] = "..." break end
    local k, v = keys[i], e[keys[i]]
    parts[i] = (type(k) == "string" and k or "[" .. show(k) .. "]") .. " = "
      .. (type(v) == "string" and (format("%q", v):gsub("\\\n", "\\n"))
        or show(v))
  end
  return "{" .. concat(parts, ", ") .. "}"
end
_M._describe = describe

-- catch keeps an error's message and the traceback where it was raised.
-- It must not fail: a failing message handler loses the error (xpcall
-- then returns the handler's own error, which run() still describes).
local CAUGHT = {}
local function catch(e)
  local ok, tb = pcall(traceback, "", 3)
  tb = ok and tb:sub(2, (tb:find("\n\t%[C%]: in function 'xpcall'") or 0) - 1)
    or "(no traceback)"
  return { [CAUGHT] = true, msg = describe(e), tb = tb }
end

-- run(fn, ...) runs fn under xpcall; returns nil, or the error's message
-- and traceback.
local function run(fn, ...)
  local ok, e = xpcall(fn, catch, ...)
  if ok then return nil end
  if type(e) ~= "table" or not e[CAUGHT] then -- out of memory, or the
    return describe(e), "(no traceback)"    -- message handler failed
  end
  return e.msg, e.tb
end

-- _run_task and _run_handler are what tasks run: fn(...) or handler(conn)
-- under xpcall, logging an error once with its traceback (and the
-- connection's id and peer) so that it ends only this task.
local function run_task(fn, ...)
  local msg, tb = run(fn, ...)
  if msg then host.log("error", msg .. "\n" .. tb) end
end

function _M._run_handler(handler, conn)
  local msg, tb = run(handler, conn)
  if msg then
    host.log("error", msg .. " (conn " .. tostring(conn:id()) .. " from "
      .. tostring(conn:remote_addr() or "?") .. ")\n" .. tb)
  end
end

local inherit -- coronet.lifecycle.inherit, once loaded

-- spawn(fn, ...) runs fn(...) as a new task from the next loop turn and
-- returns the task. An error in it is logged with a traceback and ends
-- only that task.
function _M.spawn(fn, ...)
  if type(fn) ~= "function" then
    error("bad argument #1 to 'spawn' (function expected, got " .. type(fn)
      .. ")", 2)
  end
  local co = spawn(run_task, fn, ...)
  inherit(co)
  return co
end

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
    park(deadline - now(), SLEEP)
  until not wait("sleep") or now() >= deadline
end

-- yield() lets every other ready task run once, then carries on.
function _M.yield()
  if running() == current() then
    co_yield()
  else
    co_yield(PARK)
  end
end

-- stats() -> this worker's counts of tasks, connections, buffer blocks,
-- parks, bytes, reloads, Lua heap...: coronet.admin's stats().
function _M.stats() return require("coronet.admin").stats() end

-- tasks() -> this worker's tasks, where each waits: coronet.admin's
-- tasks().
function _M.tasks() return require("coronet.admin").tasks() end

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

-- Channels, select, timers and wait groups live in their own modules
-- (coronet.chan, coronet.time, coronet.sync); they are here too, as in
-- Go's language. Those modules may require "coronet" themselves.
package.loaded.coronet = _M
local chan = require "coronet.chan"
local time = require "coronet.time"
local sync = require "coronet.sync"

-- chan([capacity]) -> channel: ch:send(v [, timeout]), ch:recv([timeout])
-- -> v, ok, ch:close(), ch:len(), ch:cap(). See coronet/chan.lua.
_M.chan = chan.new

-- select(cases) -> what the chosen case's fn returns. See coronet/chan.lua.
_M.select = chan.select

-- timer(s), after(s) -> a channel that receives now() once, s seconds
-- from now (timer:stop(), timer:reset(s)); ticker(s) -> a channel that
-- receives now() every s seconds (ticker:stop()). See coronet/time.lua.
_M.timer = time.timer
_M.after = time.after
_M.ticker = time.ticker

-- waitgroup() -> wg: wg:add([n]), wg:done(), wg:wait([timeout]).
_M.waitgroup = sync.waitgroup

-- shared(name [, {bytes = N}]) -> the dictionary name, one for every
-- worker of the process, kept across reloads: get, set(k, v [, ttl]),
-- add, replace, incr(k, n [, init]), delete, keys([max]), flush_all.
_M.shared = require "coronet.c.shared"
-- stopping() -> a channel closed when shutdown begins (SIGINT/SIGTERM):
-- long-lived handlers select on it to say goodbye and end early.
-- superseded() -> a channel closed once a newer version of the script
-- took over from the caller's (hot reload): background tasks of an old
-- version select on it to end themselves. See coronet/lifecycle.lua.
local lifecycle = require "coronet.lifecycle"
inherit = lifecycle.inherit
lifecycle.set_trampoline(_M._run_handler)
_M.stopping = lifecycle.stopping
_M.superseded = lifecycle.superseded

-- group() -> a set of connections that one call writes to: add(conn [,
-- {limit = bytes}]), remove(conn), send(data [, except]), send_to(conn,
-- data), len(), behind(), wait([timeout]), drop_behind(), dropped().
local group = require "coronet.c.group"
_M.blocking(group.methods, "wait", "group")
_M.group = group.new

return _M
