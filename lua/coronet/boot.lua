-- coronet.boot: run by the host in each new Lua state before the script:
-- gives connections their blocking methods, makes os.exit end the host
-- cleanly, and tracks the modules the script requires from its own
-- directory so that a reload can load again the ones that changed.
require "coronet.conn"
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

local dir = match(host.info().script, "^(.*)/[^/]*$") or "."
local tracked = {} -- module name -> stamp of the file it came from

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
  return chunk
end)

-- before_reload makes require load again each module whose file changed.
function _M.before_reload()
  local loaded = package.loaded
  for name, t in pairs(tracked) do
    if host.stamp(t.path) ~= t.stamp then
      loaded[name] = nil
      tracked[name] = nil
    end
  end
end

return _M
