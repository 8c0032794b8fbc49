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
local setmetatable, pairs, getinfo, getlocal =
  setmetatable, pairs, debug.getinfo, debug.getlocal
local current = sched.current

local _M = {}
local weak = { __mode = "k" }
local version_of = setmetatable({}, weak) -- task coroutine -> version
local handler_version = setmetatable({}, weak) -- handler -> version
local main_of = {}  -- version -> the coroutine of its main chunk, while it runs
local failed = {}   -- version -> why its main chunk failed to listen
local chans = {}    -- version -> its superseded() channel, while open
local newest, active = 0, 0
local stopping_ch, stopped
local run_handler -- coronet._run_handler: the first frame of handler tasks

_M.version_of = version_of

-- task_version(co) -> the version task co belongs to. A handler task not
-- seen yet is found by its first frame, _run_handler(handler, conn).
local function task_version(co)
  if co == nil then return active end
  local v = version_of[co]
  if v then return v end
  local depth = 1
  while getinfo(co, depth + 1, "f") do depth = depth + 1 end
  local first = getinfo(co, depth, "f")
  if first and first.func == run_handler then
    local _, handler = getlocal(co, depth, 1)
    v = handler_version[handler]
  end
  v = v or active
  version_of[co] = v
  return v
end
_M.task_version = task_version

-- inherit(co) makes the new task co belong to the running task's version.
function _M.inherit(co)
  local parent = current()
  if parent then version_of[co] = task_version(parent) end
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
  local v = co and version_of[co]
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
  version_of[co] = newest
  main_of[newest] = co
end

function _M.finish(co, ok, handler)
  local v = version_of[co]
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

function _M.set_trampoline(f) run_handler = f end

return _M
