-- t/lib/server.lua: start a real coronet server process for a test.
--   local server = require "lib.server"
--   local s = server.start{ script = "scripts/echo.lua" }
--   local c = s:connect()   -- a connection with a 10 s timeout
--   ...
--   s:stop()                -- SIGTERM, then the exit status
-- The server listens on 127.0.0.1:0; start() waits for its startup line
-- and reads the bound address from it. Everything it logs is kept.
--
-- Edge modes, chosen by the environment (make test-edge runs both):
--   CORONET_EDGE=relay   clients reach every TCP server through a relay
--                        process (t/lib/edge_relay.lua) that passes bytes
--                        one per segment (the first EDGE_TRICKLE of each
--                        direction; the rest whole): s.addr is the relay's,
--                        s.direct the server's own address.
--   CORONET_EDGE=reload  every server is reloaded (SIGHUP, and start()
--                        waits for the reload's log line) once it
--                        listens and again before each t.test, as
--                        Test::Nginx's HUP mode does.
-- A server that cannot go through a mode (its test checks what the mode
-- changes: the number of reloads, say) passes edge = false, or names the
-- one mode it can go through; server.edge_only = "relay" (or false) sets
-- that for every server a test file starts.
local coronet = require "coronet"
local net = require "coronet.net"
local process = require "coronet.process"
local util = require "lib.util"
local setmetatable, error, table_concat = setmetatable, error, table.concat

local _M = {}
local Server = {}
Server.__index = Server

local EDGE = os.getenv("CORONET_EDGE")
local EDGE_GAP, EDGE_TRICKLE = 0, 4096
_M.edge = EDGE
local live = {} -- servers started and not stopped, for the reload mode

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
  local code, out, err, sig = util.command(argv, { timeout = timeout })
  if not code then
    error("coronet " .. table_concat(args, " ") .. ": still running after "
      .. (timeout or 30) .. "s", 2)
  end
  return code, err, out, sig
end

-- spawn(argv, what, timeout) starts a process and waits for its
-- "listening on ADDR" line on stderr; returns a Server (addr set), or
-- raises with what it logged.
local function spawn(argv, what, timeout)
  argv.stderr = "pipe"
  argv.stdout = "pipe"
  local p = assert(process.spawn(argv))
  local s = setmetatable({ proc = p, lines = {}, waiters = {} }, Server)
  p.stderr:set_timeout(timeout or 20)
  while true do
    local line, err = p.stderr:read_line()
    if not line then
      p:kill("KILL")
      p:wait()
      error("server " .. what .. " did not start (" .. err .. "):\n"
        .. table_concat(s.lines, "\n"), 3)
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
    p.stderr:close()
  end)
  coronet.spawn(function()
    while p.stdout:read(65536) do end
    p.stdout:close()
  end)
  return s
end

-- edge_reload(s) sends s SIGHUP and waits (10 s at most) until it logs
-- how the reload ended (one line for all workers); that line leaves
-- s.lines (tests that count reloads or log lines see only their own) for
-- s.edge_lines. Returns true if the reload ended in time, and well.
local function reload_line(line)
  return line:find("reloaded ", 1, true) or line:find("reload failed", 1, true)
    or line:find("reload superseded", 1, true)
end

local function edge_reload(s)
  local from, want = #s.lines + 1, 1
  local deadline = coronet.now() + 10
  s:signal("HUP")
  s.edge_lines = s.edge_lines or {}
  while want > 0 and coronet.now() <= deadline do
    local i = from
    while want > 0 and i <= #s.lines do
      if reload_line(s.lines[i]) then
        s.edge_lines[#s.edge_lines + 1] = table.remove(s.lines, i)
        want = want - 1
      else
        i = i + 1
      end
    end
    if want > 0 then coronet.sleep(0.005) end
  end
  return want == 0 and not s.edge_lines[#s.edge_lines]:find("failed")
end

-- start{script=, args=, opts=, listen=, timeout=, prefix=, edge=} starts
-- a server and returns it once it listens; raises with its log if it does
-- not. o.prefix, a list of words, goes before the binary in the command
-- line (e.g. { "sh", "-c", 'ulimit -n 40; exec "$@"', "sh" }). o.edge =
-- false keeps the server out of the edge modes; o.edge = "relay" (or
-- "reload") lets only that one apply.
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
  local s = spawn(argv, o.script, o.timeout)
  local edge, only = EDGE, o.edge
  if only == nil then only = _M.edge_only end
  if only ~= nil and only ~= EDGE then edge = nil end
  if edge == "relay" and not s.addr:find("^unix:") then
    local scheme, target = s.addr:match("^(%a+://)(.*)$") -- tls://
    s.relay = spawn({ _M.bin, "--run", _M.path("t/lib/edge_relay.lua"),
      target or s.addr, tostring(EDGE_GAP), tostring(EDGE_TRICKLE) },
      "edge relay")
    s.direct, s.addr = s.addr, (scheme or "") .. s.relay.addr
  elseif edge == "reload" then
    live[s] = true
    if not edge_reload(s) then
      s:stop("KILL")
      error("edge reload: the server did not reload well within 10 s:\n"
        .. s:log() .. "\n" .. table_concat(s.edge_lines, "\n"), 2)
    end
  end
  return s
end

-- connect([timeout]) dials the server; the connection gets timeout
-- (default 10 s; 30 s through an edge relay, which is slow by design) on
-- every read and write.
function Server:connect(timeout)
  local c, err = net.dial(self.addr, { timeout = 10 })
  if not c then error("connect " .. self.addr .. ": " .. err, 2) end
  c:set_timeout(timeout or (self.relay and 30 or 10))
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

-- before_test, in the reload mode, reloads every live server; t.test calls
-- it before each test.
function _M.before_test()
  for s in pairs(live) do
    local code = s.proc:wait(0.001) -- a server that ended needs no reload
    if code then
      s.code, live[s] = code, nil
    elseif not edge_reload(s) then
      error("edge reload: the server did not reload well within 10 s:\n"
        .. s:log() .. "\n" .. table_concat(s.edge_lines, "\n"), 0)
    end
  end
end
if EDGE == "reload" then require("lib.tap").before_test = _M.before_test end

-- stop([signal]) sends SIGTERM (or signal) and returns the exit code.
function Server:stop(sig, timeout)
  live[self] = nil
  if self.relay then self.relay:stop() end
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
