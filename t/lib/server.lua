-- t/lib/server.lua: start a real coronet server process for a test.
--   local server = require "lib.server"
--   local s = server.start{ script = "scripts/echo.lua" }
--   local c = s:connect()   -- a connection with a 10 s timeout
--   ...
--   s:stop()                -- SIGTERM, then the exit status
-- The server listens on 127.0.0.1:0; start() waits for its startup line
-- and reads the bound address from it. Everything it logs is kept.
local coronet = require "coronet"
local net = require "coronet.net"
local process = require "coronet.process"
local setmetatable, error, table_concat = setmetatable, error, table.concat

local _M = {}
local Server = {}
Server.__index = Server

-- root is the source tree (t/lib/server.lua is two levels down).
local root = (debug.getinfo(1, "S").source:match("^@(.*)/t/lib/") or ".")
_M.root = root
_M.bin = os.getenv("CORONET") or (root .. "/host/coronet")

-- path(rel) names a file of the source tree.
function _M.path(rel) return root .. "/" .. rel end

-- run(args [, timeout]) runs the coronet binary with args to its end and
-- returns its exit code and everything it wrote to stderr and stdout.
function _M.run(args, timeout)
  local argv = { _M.bin }
  for i = 1, #args do argv[#argv + 1] = args[i] end
  local code, out, err, sig = require("lib.ext").run(argv, nil, timeout or 30)
  if not code then
    error("coronet " .. table_concat(args, " ") .. ": still running after "
      .. (timeout or 30) .. "s", 2)
  end
  return code, err, out, sig
end

-- start{script=, args=, opts=, listen=, timeout=, prefix=} starts a server
-- and returns it once it listens; raises with its log if it does not.
-- o.prefix, a list of words, goes before the binary in the command line
-- (e.g. { "sh", "-c", 'ulimit -n 40; exec "$@"', "sh" }).
function _M.start(o)
  local argv = {}
  for _, v in ipairs(o.prefix or {}) do argv[#argv + 1] = v end
  for _, v in ipairs { _M.bin, o.script, "--listen", o.listen or "127.0.0.1:0" } do
    argv[#argv + 1] = v
  end
  for _, v in ipairs(o.opts or {}) do argv[#argv + 1] = v end
  if o.args then
    argv[#argv + 1] = "--"
    for _, v in ipairs(o.args) do argv[#argv + 1] = v end
  end
  argv.stderr = "pipe"
  argv.stdout = "pipe"
  local p = assert(process.spawn(argv))
  local s = setmetatable({ proc = p, lines = {}, waiters = {} }, Server)
  p.stderr:set_timeout(o.timeout or 20)
  while true do
    local line, err = p.stderr:read_line()
    if not line then
      p:kill("KILL")
      p:wait()
      error("server " .. o.script .. " did not start (" .. err .. "):\n"
        .. table_concat(s.lines, "\n"), 2)
    end
    s.lines[#s.lines + 1] = line
    local addr = line:match("listening on (%S+)")
    if addr then
      s.addr = addr
      break
    end
  end
  p.stderr:set_timeout(nil)
  coronet.spawn(function() -- keep the log drained, and kept
    for line in p.stderr:lines() do s.lines[#s.lines + 1] = line end
  end)
  coronet.spawn(function()
    while p.stdout:read(65536) do end
  end)
  return s
end

-- connect([timeout]) dials the server; the connection gets timeout
-- (default 10 s) on every read and write.
function Server:connect(timeout)
  local c, err = net.dial(self.addr, { timeout = 10 })
  if not c then error("connect " .. self.addr .. ": " .. err, 2) end
  c:set_timeout(timeout or 10)
  return c
end

-- log() returns what the server has logged so far, one string.
function Server:log()
  return table_concat(self.lines, "\n")
end

-- wait_log(pattern [, timeout]) waits until a log line matches; returns it.
function Server:wait_log(pattern, timeout)
  local deadline = coronet.now() + (timeout or 10)
  local seen = 1
  while coronet.now() < deadline do
    for i = seen, #self.lines do
      if self.lines[i]:find(pattern) then return self.lines[i] end
    end
    seen = #self.lines + 1
    coronet.sleep(0.01)
  end
  return nil
end

-- signal(name) sends a signal to the server.
function Server:signal(name) return self.proc:kill(name) end

-- stop([signal]) sends SIGTERM (or signal) and returns the exit code.
function Server:stop(sig, timeout)
  if self.code then return self.code end
  self.proc:kill(sig or "TERM")
  local code, s = self.proc:wait(timeout or 20)
  if not code then
    self.proc:kill("KILL")
    code, s = self.proc:wait()
  end
  self.code = code
  return code, s
end

return _M
