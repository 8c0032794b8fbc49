-- coronet.boot: run by the host in each new Lua state before the script:
-- gives connections their blocking methods, makes os.exit end the host
-- cleanly, and tracks the modules the script requires from its own
-- directory (and which of them require which) so that a reload can load
-- again the ones that changed, with the ones that use them.
require "coronet.conn"
require "coronet.tls" -- conn:starttls, conn:tls
local sched = require "coronet.c.sched"
local host = require "coronet.c.host"
local yield, isyieldable = coroutine.yield, coroutine.isyieldable
local pairs, loadfile, gsub, match = pairs, loadfile, string.gsub, string.match
local open = io.open

local _M = {}

-- os.exit([code]) stops every worker at once with status code (true: 0,
-- false: 1, default 0); the calling task never resumes.
os.exit = function(code)
  sched.exit(code == nil and 0 or code)
  if isyieldable() then
    sched.park()
    yield()
  end
end

-- Coroutines of the script's own may block too: when a host call parks
-- the task inside one, it yields coronet.PARK; resume passes that up to
-- the task (yielding in turn), and passes what the task is resumed with
-- back down.
local coronet = require "coronet"
local PARK, current, running = coronet.PARK, sched.current, coroutine.running
local raw_resume, raw_create = coroutine.resume, coroutine.create
local error, select = error, select

local function park_up()
  if not isyieldable() then
    sched.unpark()
    error("cannot block here: a coroutine parked the task, and Lua cannot "
      .. "yield across the C call that resumed it", 0)
  end
  if running() == current() then return yield() end
  return yield(PARK)
end

local function after_resume(co, ok, first, ...)
  if ok and first == PARK and select("#", ...) == 0 then
    return after_resume(co, raw_resume(co, park_up()))
  end
  return ok, first, ...
end

function coroutine.resume(co, ...)
  return after_resume(co, raw_resume(co, ...))
end

local function after_wrapped(ok, ...)
  if not ok then error((...), 0) end
  return ...
end

function coroutine.wrap(f)
  local co = raw_create(f)
  return function(...)
    return after_wrapped(after_resume(co, raw_resume(co, ...)))
  end
end

local dir = match(host.info().script, "^(.*)/[^/]*$") or "."
local tracked = {} -- module name -> stamp of the file it came from
local users = {}   -- module name -> set of tracked modules that required it
local loading      -- the tracked module whose chunk is running, if any

local function find(name)
  local base = dir .. "/" .. gsub(name, "%.", "/")
  for _, path in pairs { base .. ".lua", base .. "/init.lua" } do
    local f = open(path)
    if f then
      f:close()
      return path
    end
  end
end

-- The loader for modules of the script's directory, ahead of Lua's own.
local loaders = package.loaders
table.insert(loaders, 2, function(name)
  local path = find(name)
  if not path then
    return "\n\tno file in the script's directory for '" .. name .. "'"
  end
  local chunk, err = loadfile(path)
  if not chunk then error(err, 0) end
  tracked[name] = { path = path, stamp = host.stamp(path) }
  return function(...)
    local outer = loading
    loading = name
    local ok, res = pcall(chunk, ...)
    loading = outer
    if not ok then error(res, 0) end
    return res
  end
end)

-- A require that fails leaves nothing behind: Lua's "loading" marker in
-- package.loaded would answer every later require of the module with
-- "loop or previous error", also once its cause is fixed. Every loader's
-- module function runs under pcall, clearing the marker if it raises, so
-- the next require (or reload) tries again.
local loaded, pcall, type = package.loaded, pcall, type
for i = 1, #loaders do
  local find = loaders[i]
  loaders[i] = function(name)
    local load = find(name)
    if type(load) ~= "function" then return load end
    return function(...)
      local ok, res = pcall(load, ...)
      if not ok then
        loaded[name] = nil
        error(res, 0)
      end
      return res
    end
  end
end

-- require notes which tracked module asks for which (loaded or not yet),
-- so that a reload also loads again the modules using a changed one.
local raw_require = require
function require(name)
  if loading then
    local u = users[name]
    if not u then
      u = {}
      users[name] = u
    end
    u[loading] = true
  end
  return raw_require(name) -- a tail call: errors name the caller's line
end

-- forget drops module name, and every tracked module that required it,
-- from package.loaded.
local function forget(name)
  if not tracked[name] then return end
  tracked[name] = nil
  package.loaded[name] = nil
  for user in pairs(users[name] or {}) do forget(user) end
  users[name] = nil
end

-- before_reload makes require load again each module whose file changed,
-- and the modules that use it; returns "changed: a, b" naming them, or
-- nil.
function _M.before_reload()
  local changed = {}
  for name, t in pairs(tracked) do
    if host.stamp(t.path) ~= t.stamp then changed[#changed + 1] = name end
  end
  for i = 1, #changed do forget(changed[i]) end
  if #changed == 0 then return nil end
  table.sort(changed)
  return "changed: " .. table.concat(changed, ", ")
end

return _M
