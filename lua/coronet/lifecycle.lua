-- coronet.lifecycle: what a script learns of its own life, behind
-- coronet.stopping() and coronet.superseded(). Each run of the script's
-- main chunk (at start, at each reload) is a version; the host
-- (host/lcn_host.c) tells this module when one begins and how it ended.
-- A task belongs to the version whose code started it: the main chunk's
-- own task, the tasks it spawns, and the handler tasks of the handlers it
-- returned or passed to net.listen.
local chan = require "coronet.chan"
local sched = require "coronet.c.sched"
local host = require "coronet.c.host"
local setmetatable, pairs = setmetatable, pairs
local current, tag = sched.current, sched.tag

local _M = {}
-- A task's version is the number its host record is tagged with
-- (sched.tag; 0 until known): no Lua table entry per task.
local handler_version = setmetatable({}, { __mode = "k" }) -- handler -> v
local main_of = {}  -- version -> the coroutine of its main chunk, while it runs
local failed = {}   -- version -> why its main chunk failed to listen
local chans = {}    -- version -> its superseded() channel, while open
local newest, active = 0, 0
local stopping_ch, stopped

-- task_version(co) -> the version task co belongs to: the one it was
-- tagged with, else (a task started by no version's code, such as a
-- handler of no known version) the active one, for good.
local function task_version(co)
  if co == nil then return active end
  local v = tag(co)
  if v == 0 then v = tag(co, active) end
  return v
end
_M.task_version = task_version

-- inherit(co) makes the new task co belong to the running task's version.
function _M.inherit(co)
  local parent = current()
  if parent then tag(co, task_version(parent)) end
end

-- handler_tag(handler): the running task, a handler task starting,
-- belongs to handler's version (coronet._run_handler calls it).
function _M.handler_tag(handler)
  local v = handler_version[handler]
  if v then tag(nil, v) end
end

-- own(handler) makes handler's tasks belong to the running task's version.
function _M.own(handler)
  handler_version[handler] = task_version(current())
end

local function superseded(v)
  return v ~= active and not main_of[v]
end

-- superseded() -> a channel closed once a newer version of the script
-- took over from the caller's (or the caller's version failed to load).
function _M.superseded()
  local v = task_version(current())
  local ch = chans[v]
  if ch then return ch end
  ch = chan.new()
  if superseded(v) then
    ch:close()
  else
    chans[v] = ch
  end
  return ch
end

-- stopping() -> a channel closed when shutdown begins (SIGINT, SIGTERM).
function _M.stopping()
  if not stopping_ch then
    stopping_ch = chan.new()
    if stopped then stopping_ch:close() end
  end
  return stopping_ch
end

-- main_version() -> the version whose main chunk is the running task, if
-- it is one (net.listen makes such listeners the version's own).
function _M.main_version()
  local co = current()
  local v = co and tag(co)
  if v and main_of[v] == co then return v end
end

-- listen_failed(err): a main chunk's listen failed; so does its version.
function _M.listen_failed(err)
  local v = _M.main_version()
  if v and not host.info().run then failed[v] = failed[v] or err end
end

-- The host's calls. begin(co): a main chunk starts in task co, as a new
-- version. finish(co, ok, handler) -> version, ok, err: it ended; ok (it
-- gave handler) means it takes over, unless one of its listens failed.
function _M.begin(co)
  newest = newest + 1
  tag(co, newest)
  main_of[newest] = co
end

function _M.finish(co, ok, handler)
  local v = tag(co)
  local err = failed[v]
  main_of[v], failed[v] = nil, nil
  if err then ok = false end
  if ok then
    active = v
    if handler then handler_version[handler] = v end
  end
  for x, ch in pairs(chans) do
    if superseded(x) then
      chans[x] = nil
      ch:close()
    end
  end
  return v, ok, err
end

function _M.stop()
  stopped = true
  if stopping_ch and not stopping_ch:is_closed() then stopping_ch:close() end
end

return _M
