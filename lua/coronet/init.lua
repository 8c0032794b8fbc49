-- coronet: tasks and time. spawn a task, sleep, read the monotonic clock.
-- Connections, io, channels and the rest live in coronet.* modules.
local sched = require "coronet.c.sched"
local type, error, tostring, setmetatable = type, error, tostring, setmetatable
local co_yield, isyieldable = coroutine.yield, coroutine.isyieldable
local park, unpark, now = sched.park, sched.unpark, sched.now
local SLEEP = sched.waits.sleep

local _M = { _VERSION = "0.1.0" }

-- PARK is what a task yields when a host call parked it. The scheduler
-- ignores what a task's own coroutine yields; a coroutine that the task
-- resumed passes it up (the resume wrappers in coronet.boot), so that the
-- task's own coroutine yields to the scheduler.
local PARK = setmetatable({}, { __tostring = function() return "PARK" end })
_M.PARK = PARK

-- A task's stack holds the frames of its park while it waits, and LuaJIT
-- doubles a coroutine's first stack (47 slots) for good when a C function
-- is called more than 20 slots up it. So the parking paths here keep few
-- frames (tail calls, no helper between a park and its yield): a handler
-- or a task's function that parks directly keeps the small stack.

-- cannot_block(what, level) undoes the running task's park and raises,
-- at level, that Lua cannot yield here. For coronet's own modules.
local function cannot_block(what, level)
  unpark()
  error(what .. ": cannot block here: Lua cannot yield across a C call "
    .. "(a table.sort comparator, a string.gsub callback or a __gc "
    .. "metamethod)", level)
end
_M.cannot_block = cannot_block

-- wait yields the running task after a host call parked it, and returns
-- what the scheduler resumes it with. what names the call in the error
-- raised (at the caller's caller) when Lua cannot yield here. For
-- coronet's own modules.
local function wait(what)
  if not isyieldable() then cannot_block(what, 4) end
  return co_yield(PARK)
end
_M.wait = wait

-- argcheck(v, want, i, name) raises "bad argument #i to 'name'" at the
-- caller's caller unless v is of type want ("number", "string"; a "?"
-- after it allows nil; "data" is a string or a table of strings). For
-- coronet's own modules.
local function argcheck(v, want, i, name)
  local t = type(v)
  if t == want or (t == "nil" and want:sub(-1) == "?")
      or (want == "data" and (t == "string" or t == "table"))
      or (t == want:sub(1, -2) and want:sub(-1) == "?") then
    return
  end
  error("bad argument #" .. i .. " to '" .. name .. "' ("
    .. (want == "data" and "string" or want:gsub("%?$", "")) .. " expected, "
    .. "got " .. t .. ")", 3)
end
_M.argcheck = argcheck

local names = setmetatable({}, { __mode = "k" }) -- host call -> "conn:read"

-- retry(raw, self, a, b) calls raw(self, a, b), a host call that returns
-- false when it parked the task, until it has a result. A write also
-- returns how far it got (false, offset), and is called again with it in
-- b. Called in tail position (as it calls itself), retry takes its
-- caller's frame. For coronet's own modules, with host calls that
-- blocking() has seen.
local function retry(raw, self, a, b)
  local x, y, z = raw(self, a, b)
  if x ~= false then return x, y, z end
  if not isyieldable() then cannot_block(names[raw], 3) end
  co_yield(PARK)
  if y ~= nil then b = y end
  return retry(raw, self, a, b)
end
_M.retry = retry

-- blocking(methods, name, prefix [, a, b]) turns methods[name], a host
-- call that returns false when it parked the task, into the blocking
-- method: it waits and asks again until there is a result (see retry).
-- write(data) carries how far it got.
-- a and b, when given, are the types of the method's arguments (see
-- argcheck): a wrong one is reported naming the method at the caller's
-- line. For coronet's own modules.
function _M.blocking(methods, name, prefix, a_type, b_type)
  local raw = methods[name]
  names[raw] = prefix .. ":" .. name
  if name == "write" then
    methods.write = function(self, data)
      if type(data) ~= "string" then argcheck(data, "data", 1, "write") end
      return retry(raw, self, data)
    end
    return
  end
  methods[name] = function(self, a, b)
    if a_type then
      argcheck(a, a_type, 1, name)
      if b_type then argcheck(b, b_type, 2, name) end
    end
    return retry(raw, self, a, b)
  end
end

local spawn = sched.spawn
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

sched.set_describe(describe)

-- _run_handler is what handler tasks run: handler(conn), as a tail call,
-- so that the handler is the first frame of its task (no frame of its
-- own: see wait). An error that ends a task is logged by the host, once,
-- with its traceback (and the connection's id and peer): it ends only
-- that task.
local handler_tag -- coronet.lifecycle.handler_tag, once loaded

function _M._run_handler(handler, conn)
  handler_tag(handler)
  return handler(conn)
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
  local co = spawn(fn, ...)
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
    if not isyieldable() then cannot_block("sleep", 3) end
  until not co_yield(PARK) or now() >= deadline
end

-- yield() lets every other ready task run once, then carries on.
function _M.yield()
  co_yield(PARK)
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
inherit, handler_tag = lifecycle.inherit, lifecycle.handler_tag
_M.stopping = lifecycle.stopping
_M.superseded = lifecycle.superseded

-- group() -> a set of connections that one call writes to: add(conn [,
-- {limit = bytes}]), remove(conn), send(data [, except]), send_to(conn,
-- data), len(), behind(), wait([timeout]), drop_behind(), dropped().
local group = require "coronet.c.group"
_M.blocking(group.methods, "wait", "group")
_M.group = group.new

return _M
