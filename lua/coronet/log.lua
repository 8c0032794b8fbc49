-- coronet.log: the host's log from scripts. Lines go to stderr, one
-- write each, prefixed "coronet: " like the host's own, and only at or
-- above the level chosen with --log-level (error, warn, info, debug).
--   local log = require "coronet.log"
--   log.info("%s joined from %s", name, conn:remote_addr())
local host = require "coronet.c.host"
local format, select, tostring, type = string.format, select, tostring, type
local concat = table.concat

local _M = { _VERSION = "0.1.0" }

local function message(fmt, ...)
  if select("#", ...) == 0 then return tostring(fmt) end
  if type(fmt) == "string" then return format(fmt, ...) end
  local parts = { tostring(fmt) }
  for i = 1, select("#", ...) do parts[i + 1] = tostring((select(i, ...))) end
  return concat(parts, " ")
end

local function logger(level)
  return function(fmt, ...)
    if host.log_enabled(level) then host.log(level, message(fmt, ...)) end
  end
end

-- error, warn, info, debug (fmt, ...): logs string.format(fmt, ...), or
-- fmt as it is when there are no more arguments. Formatting happens only
-- when the level is enabled.
_M.error = logger("error")
_M.warn = logger("warn")
_M.info = logger("info")
_M.debug = logger("debug")

-- enabled(level) -> whether lines at level are written.
_M.enabled = host.log_enabled

return _M
