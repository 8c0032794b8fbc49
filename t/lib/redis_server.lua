-- t/lib/redis_server.lua: a private redis-server for a test, on a unix
-- socket (or a free TCP port), never a system one.
--   local rs = require "lib.redis_server"
--   rs.skip_unless_available(t)     -- 1..0 # SKIP without redis-server
--   local srv = rs.start{ tcp = true, args = { "--requirepass", "pw" } }
--   srv.addr                        -- "unix:/tmp/..." or "127.0.0.1:PORT"
--   srv:kill() / srv:restart() / srv:stop()
-- start() waits until the server answers PING; stop() ends it by PID.
local coronet = require "coronet"
local net = require "coronet.net"
local process = require "coronet.process"
local util = require "lib.util"
local format, concat = string.format, table.concat

local _M = {}
local Server = {}
Server.__index = Server

local function find_bin()
  for _, p in ipairs { "/usr/bin/redis-server",
    "/usr/local/bin/redis-server" } do
    local f = io.open(p, "r")
    if f then
      f:close()
      return p
    end
  end
end
_M.bin = find_bin()

-- skip_unless_available(t) ends the test file with "1..0 # SKIP" when
-- redis-server is missing, unless CI is set (then missing is a failure).
function _M.skip_unless_available(t)
  if _M.bin then return end
  if os.getenv("CI") then
    t.fail("redis-server is installed", "CI is set and redis-server is missing")
    t.done()
  end
  io.stdout:write("1..0 # SKIP redis-server is not installed\n")
  os.exit(0)
end

local seq = 0

-- free_port returns a TCP port that was free a moment ago.
local function free_port()
  local l = assert(net.listen("127.0.0.1:0", function() end))
  local port = tonumber(l:addr():match(":(%d+)$"))
  l:close()
  return port
end
_M.free_port = free_port

-- ping says whether a PING to addr gets an answer, +PONG or an error
-- such as NOAUTH (raw bytes: no client).
local function ping(addr)
  local c = net.dial(addr, { timeout = 1 })
  if not c then return false end
  c:set_timeout(1)
  c:write("*1\r\n$4\r\nPING\r\n")
  local line = c:read_line()
  c:close()
  return line ~= nil and (line == "+PONG" or line:sub(1, 1) == "-")
end

function Server:launch()
  local argv = { _M.bin, "--port", tostring(self.port or 0), "--save", "",
    "--appendonly", "no", "--dir", "/tmp", "--daemonize", "no",
    "--loglevel", "warning" }
  if self.port then
    argv[#argv + 1] = "--bind"
    argv[#argv + 1] = "127.0.0.1"
  else
    argv[#argv + 1] = "--unixsocket"
    argv[#argv + 1] = self.path
  end
  for _, a in ipairs(self.args) do argv[#argv + 1] = a end
  argv.stdout, argv.stderr = "pipe", "pipe"
  local p = assert(process.spawn(argv))
  self.proc, self.pid = p, p.pid
  for _, s in ipairs { p.stdout, p.stderr } do
    coronet.spawn(function()
      while true do
        local line = s:read_line()
        if not line then break end
        self.log[#self.log + 1] = line
      end
    end)
  end
  local ok = util.wait_until(function() return ping(self.addr) end, 10)
  if not ok then
    p:kill("KILL")
    p:wait(5)
    error("redis-server did not answer PING:\n" .. concat(self.log, "\n"), 3)
  end
end

-- start{tcp = bool, args = {...}} starts a server and returns it once it
-- answers PING.
function _M.start(o)
  o = o or {}
  assert(_M.bin, "redis-server is not installed")
  seq = seq + 1
  local s = setmetatable({ args = o.args or {}, log = {} }, Server)
  if o.tcp then
    s.port = free_port()
    s.addr = "127.0.0.1:" .. s.port
  else
    s.path = format("/tmp/coronet-redis-%d-%d.sock", util.pid(), seq)
    s.addr = "unix:" .. s.path
  end
  s:launch()
  return s
end

-- kill() ends the server at once with SIGKILL (a crash).
function Server:kill()
  if not self.proc then return end
  self.proc:kill("KILL")
  self.proc:wait(10)
  self.proc = nil
end

-- restart() starts it again on the same address.
function Server:restart()
  self:kill()
  self:launch()
end

-- stop() ends the server (SIGTERM, then SIGKILL after 10 s) and removes
-- its socket.
function Server:stop()
  if self.proc then
    self.proc:kill("TERM")
    if not self.proc:wait(10) then
      self.proc:kill("KILL")
      self.proc:wait(10)
    end
    self.proc = nil
  end
  if self.path then os.remove(self.path) end
end

-- cli(...) runs one command on a fresh raw connection and returns the
-- first line of the reply (for checks that must not use the client under
-- test).
function Server:cli(...)
  local args = { ... }
  local parts = { "*" .. #args .. "\r\n" }
  for _, a in ipairs(args) do
    a = tostring(a)
    parts[#parts + 1] = "$" .. #a .. "\r\n" .. a .. "\r\n"
  end
  local c = assert(net.dial(self.addr, { timeout = 5 }))
  c:set_timeout(5)
  c:write(concat(parts))
  local line = c:read_line()
  c:close()
  return line
end

return _M
