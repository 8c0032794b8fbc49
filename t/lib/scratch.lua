-- t/lib/scratch.lua: a scratch directory of scripts for reload tests, and
-- helpers to read a server's log by counting lines.
--   local scratch = require "lib.scratch"
--   local d = scratch.dir("reload")   -- /tmp/coronet-reload-PID-N/
--   d:write("s.lua", text)            -- in place (truncate, write)
--   d:replace("s.lua", text)          -- new file renamed over the old one
--   d:remove()                        -- rm -rf the directory
--   scratch.start{...}, scratch.stop(s) -- server.start, closing conns
--   scratch.cleanup()                 -- last: stops and removes the rest
--   scratch.wait_count(s, pattern, n [, timeout]) -- n log lines match
-- Tests that edit scripts copy them here first; nothing in scripts/ is
-- ever written. Every directory is named after the test's PID.
local coronet = require "coronet"
local process = require "coronet.process"
local util = require "lib.util"
local server = require "lib.server"
local format, gsub, open = string.format, string.gsub, io.open

local _M = {}
local Dir = {}
Dir.__index = Dir
local made = 0
local dirs, servers = {}, {} -- made by this test, for cleanup()

-- run(argv) runs a short command to its end (10 s at most); true if it
-- exited 0.
local function run(argv)
  argv.stdout, argv.stderr = "null", "inherit"
  local p = assert(process.spawn(argv))
  local code = p:wait(10)
  if code == nil then
    p:kill("KILL")
    p:wait(5)
  end
  return code == 0
end

-- dir(tag) makes a new empty directory under /tmp for this test.
function _M.dir(tag)
  made = made + 1
  local path = format("/tmp/coronet-%s-%d-%d", tag, util.pid(), made)
  run { "rm", "-rf", path }
  assert(run { "mkdir", "-p", path }, "mkdir " .. path)
  local d = setmetatable({ root = path }, Dir)
  dirs[#dirs + 1] = d
  return d
end

function Dir:path(name) return self.root .. "/" .. name end

-- write(name, text) rewrites name in place, as most editors do.
function Dir:write(name, text)
  local f = assert(open(self:path(name), "w"))
  f:write(text)
  f:close()
  return self:path(name)
end

-- replace(name, text) writes a new file and renames it over name, as
-- editors that save atomically do.
function Dir:replace(name, text)
  local tmp = self:path("." .. gsub(name, "/", "_") .. ".new")
  local f = assert(open(tmp, "w"))
  f:write(text)
  f:close()
  assert(os.rename(tmp, self:path(name)))
  return self:path(name)
end

-- copy(src, name) copies file src (a path) into the directory as name.
function Dir:copy(src, name)
  local f = assert(open(src, "r"))
  local text = f:read("*a")
  f:close()
  return self:write(name, text), text
end

function Dir:mkdir(name)
  assert(run { "mkdir", "-p", self:path(name) })
end

function Dir:remove()
  run { "rm", "-rf", self.root }
end

-- -- Servers --------------------------------------------------------------

-- start(o) is server.start(o) for a server whose connections are all
-- remembered: stop(s) closes them first, so that SIGTERM's grace period
-- has nothing to wait for.
function _M.start(o)
  local s = server.start(o)
  servers[#servers + 1] = s
  local conns, connect = {}, s.connect
  s.conns = conns
  function s.connect(self, timeout)
    local c = connect(self, timeout)
    conns[#conns + 1] = c
    return c
  end
  return s
end

-- stop(s) closes the connections s:connect() made and stops s; returns
-- its exit code.
function _M.stop(s)
  for _, c in ipairs(s.conns or {}) do c:close() end
  return s:stop()
end

-- cleanup() stops every server start() started that still runs and
-- removes every directory dir() made: tests call it last, so that a
-- failed test leaves nothing behind.
function _M.cleanup()
  for _, s in ipairs(servers) do
    if not s.code then _M.stop(s) end
  end
  for _, d in ipairs(dirs) do d:remove() end
  servers, dirs = {}, {}
end

-- -- Logs -----------------------------------------------------------------

-- quote(s) makes s a Lua pattern that matches s literally.
function _M.quote(s)
  return (gsub(s, "%p", "%%%0"))
end

-- count(s, pattern [, from]) counts server s's log lines matching pattern,
-- from line from (default 1) on.
function _M.count(s, pattern, from)
  local n = 0
  for i = from or 1, #s.lines do
    if s.lines[i]:find(pattern) then n = n + 1 end
  end
  return n
end

-- wait_count(s, pattern, n [, timeout]) waits (default 10 s) until n log
-- lines match; returns true, or nil and the count seen.
function _M.wait_count(s, pattern, n, timeout)
  local ok = util.wait_until(function()
    return _M.count(s, pattern) >= n
  end, timeout or 10)
  if ok then return true end
  return nil, _M.count(s, pattern)
end

-- reloaded(s, path) is the pattern of s's log line for a reload of path;
-- it captures the time taken in ms.
function _M.reloaded(path)
  return "^coronet: reloaded " .. _M.quote(path) .. " in ([%d.]+) ms"
end

function _M.failed(path)
  return "^coronet: reload failed, the old handler stays: "
    .. _M.quote(path)
end

-- ask(c, line) sends line on connection c and returns the reply line, or
-- nil and the error.
function _M.ask(c, line)
  local ok, err = c:write(line .. "\n")
  if not ok then return nil, "write: " .. tostring(err) end
  return c:read_line()
end

_M.server = server
_M.sleep = coronet.sleep
return _M
