-- coronet.log: the host's log from scripts. Lines go to stderr, one
-- write each, prefixed "coronet: " like the host's own, and only at or
-- above the level chosen with --log-level (error, warn, info, debug).
--   local log = require "coronet.log"
--   log.info("%s joined from %s", name, conn:remote_addr())
local host = require "coronet.c.host"
local format, select, tostring, type = string.format, select, tostring, type
local find, gsub, sub = string.find, string.gsub, string.sub
local concat = table.concat

local _M = { _VERSION = "0.1.0" }

local function message(fmt, ...)
  if select("#", ...) == 0 then return tostring(fmt) end
  if type(fmt) == "string" then return format(fmt, ...) end
  local parts = { tostring(fmt) }
  for i = 1, select("#", ...) do parts[i + 1] = tostring((select(i, ...))) end
  return concat(parts, " ")
end

local breaks = { ["\n"] = "\\n", ["\r"] = "\\r" }

-- one_line(s) writes s's newlines and carriage returns as \n and \r
-- (%q writes a newline as "\" and a newline: that too), up to a Lua
-- traceback ("\nstack traceback:\n..."), which keeps its lines, as in the
-- host's own error lines.
local function one_line(s)
  local at = find(s, "\nstack traceback:\n", 1, true)
  local head = at and sub(s, 1, at - 1) or s
  if find(head, "[\r\n]") then
    head = gsub(gsub(head, "\\\n", "\n"), "[\r\n]", breaks)
  end
  return at and head .. sub(s, at) or head
end

local function logger(level)
  return function(fmt, ...)
    if not host.log_enabled(level) then return end
    host.log(level, one_line(message(fmt, ...)))
  end
end

-- error, warn, info, debug (fmt, ...): logs string.format(fmt, ...), or
-- fmt as it is when there are no more arguments, as one line: a newline
-- or carriage return in it is written as \n or \r (one event, one line,
-- whatever a peer sent), save a traceback at its end. Formatting happens
-- only when the level is enabled.
_M.error = logger("error")
_M.warn = logger("warn")
_M.info = logger("info")
_M.debug = logger("debug")

-- enabled(level) -> whether lines at level are written.
_M.enabled = host.log_enabled

return _M
