-- t/260-shutdown.t: SIGTERM/SIGINT stop accepting and let open connections
-- finish within the grace period, then the host exits 0; a second signal
-- or the end of the grace period closes what is left. SIGPIPE never kills
-- the host.
local t = require "lib.tap"
local server = require "lib.server"
local util = require "lib.util"
local coronet = require "coronet"
local net = require "coronet.net"

local echo = server.path("scripts/echo.lua")

-- exited(s) waits for a server that was already signalled to exit, without
-- sending another signal (a second one closes connections at once).
local function exited(s)
  local code, sig = s.proc:wait(20)
  if not code then return s:stop("KILL") end
  s.code = code
  return code, sig
end
local svc = server.path("t/lib/svc_mem.lua")

t.test("SIGTERM with no connection open exits 0 at once", function()
  local s = server.start { script = echo }
  local t0 = coronet.now()
  t.is(s:stop("TERM"), 0, "exit 0")
  t.cmp_ok(coronet.now() - t0, "<", 5, "promptly")
  t.like(s:log(), "shutting down", "it logged that it is shutting down")
end)

t.test("SIGINT does the same", function()
  local s = server.start { script = echo }
  local code, sig = s:stop("INT")
  t.is(code, 0, "exit 0")
  t.is(sig, 0, "not killed by a signal")
end)

t.test("SIGTERM stops accepting but lets an open connection finish",
  function()
    local s = server.start { script = echo }
    local c = s:connect()
    c:write("before\n")
    t.is(c:read_line(), "before", "served before the signal")
    s:signal("TERM")
    t.ok(s:wait_log("shutting down"), "the server saw the signal")
    t.ok(s:wait_log("waiting up to %d+s for 1 connection$"),
      "it waits for the open connection (one connection: singular)")
    -- the server's own address: an edge relay would accept, then close
    local c2, err = net.dial(s.direct or s.addr, { timeout = 5 })
    t.is(c2, nil, "a new connection is refused")
    t.like(err, "refused", "connection refused")
    c:write("after\n")
    t.is(c:read_line(), "after", "the open connection is still served")
    c:close_write()
    t.is(select(2, c:read()), "eof", "the handler finished (half-close)")
    local code, sig = exited(s)
    t.is(code, 0, "then the host exits 0")
    t.is(sig, 0, "by itself, not by a signal")
  end)

t.test("at the end of the grace period open connections are closed",
  function()
    local s = server.start { script = echo, opts = { "--grace", "0.3" } }
    local c = s:connect()
    c:write("x")
    t.is(c:read(1), "x", "served")
    local t0 = coronet.now()
    s:signal("TERM")
    local v, err = c:read() -- the client just waits
    t.is(v, nil, "the connection ends")
    t.ok(err == "eof" or err == "reset", "eof or reset: " .. tostring(err))
    t.cmp_ok(coronet.now() - t0, "<", 8, "near the 0.3 s grace period")
    t.is(exited(s), 0, "the host exits 0")
    t.like(s:log(), "grace period over, closing 1 connection",
      "it logged closing the leftover")
    c:close()
  end)

t.test("a second SIGTERM closes open connections at once", function()
  local s = server.start { script = echo, opts = { "--grace", "60" } }
  local c = s:connect()
  c:write("x")
  c:read(1)
  s:signal("TERM")
  t.ok(s:wait_log("waiting up to"), "first signal: waiting")
  local t0 = coronet.now()
  s:signal("TERM")
  local code = exited(s)
  t.is(code, 0, "second signal: exit 0")
  t.cmp_ok(coronet.now() - t0, "<", 10, "without waiting the 60 s")
  local _, err = c:read()
  t.ok(err == "eof" or err == "reset", "the connection was closed")
  c:close()
end)

t.test("coronet.stopping() lets handlers end before the grace period",
  function() -- issue #13
    local path = util.tmpfile([[
local coronet = require "coronet"
return function(conn)
  conn:write("hello\n")
  local stop = coronet.stopping()
  coronet.select {
    { recv = stop, fn = function() conn:write("* server shutting down\n") end },
  }
end
]])
    local s = server.start { script = path, opts = { "--grace", "30" } }
    local conns = {}
    for i = 1, 5 do
      conns[i] = s:connect()
      t.is(conns[i]:read_line(), "hello", "member " .. i .. " is served")
    end
    local t0 = coronet.now()
    s:signal("TERM")
    for i = 1, 5 do
      t.is(conns[i]:read_line(), "* server shutting down",
        "member " .. i .. " got the notice")
      t.is(select(2, conns[i]:read()), "eof", "then its connection ended")
      conns[i]:close()
    end
    t.is(exited(s), 0, "exit 0")
    t.cmp_ok(coronet.now() - t0, "<", 5, "well before the 30 s grace")
    t.like(s:log(), "waiting up to 30s for 5 connections$", "plural: 5")
    util.cleanup()
  end)

t.test("stopping() asked for after shutdown began is closed already",
  function()
    local path = util.tmpfile([[
local coronet = require "coronet"
return function(conn)
  conn:read_line()
  local _, ok = coronet.stopping():recv()
  conn:write(tostring(ok) .. "\n")
end
]])
    -- no edge relay: the signal must find the connection open, and a relay
    -- connects to the server only after it accepted the client
    local s = server.start { script = path, opts = { "--grace", "30" },
      edge = "reload" }
    local c = s:connect()
    s:signal("TERM")
    t.ok(s:wait_log("waiting up to"), "shutdown began")
    c:write("now\n")
    t.is(c:read_line(), "false", "recv on it returns at once: closed")
    c:close()
    t.is(exited(s), 0, "exit 0")
    util.cleanup()
  end)

t.test("a handler busy at SIGTERM finishes its work", function()
  local path = util.tmpfile([[
local coronet = require "coronet"
return function(conn)
  local line = conn:read_line()
  coronet.sleep(0.3) -- work in progress when the signal comes
  conn:write("done " .. line .. "\n")
end
]])
  local s = server.start { script = path }
  local c = s:connect()
  c:write("job\n")
  coronet.sleep(0.05)
  s:signal("TERM")
  t.is(c:read_line(), "done job", "the reply came after the signal")
  t.is(exited(s), 0, "exit 0")
  c:close()
  util.cleanup()
end)

t.test("connections the script made itself do not hold up shutdown",
  function()
    -- the script keeps a pipe to a child process open (as it could keep a
    -- dialed upstream connection): not a client's connection
    local path = util.tmpfile([[
local process = require "coronet.process"
local coronet = require "coronet"
local p = assert(process.spawn { "sleep", "30", stdout = "pipe" })
coronet.spawn(function() p.stdout:read() end)
return function(conn) conn:write("hi\n") end
]])
    local s = server.start { script = path, opts = { "--grace", "3" } }
    local t0 = coronet.now()
    s:signal("TERM")
    local code = exited(s)
    local d = coronet.now() - t0
    t.is(code, 0, "exit 0")
    t.cmp_ok(d, "<", 2, "only accepted connections hold shutdown back, not "
      .. "pipes or dialed ones: no wait for the grace period")
    util.cleanup()
  end)

t.test("SIGPIPE: a peer that closes with replies queued does not kill it",
  function()
    local s = server.start { script = svc, args = { "firehose" } }
    for i = 1, 20 do
      local c = s:connect()
      c:read(1000) -- the server is writing
      c:close() -- unread bytes: the kernel resets the connection
    end
    local c = s:connect()
    t.ok(c:read(10), "the server still serves after 20 resets")
    c:close()
    local code, sig = s:stop()
    t.is(sig, 0, "not killed by a signal (SIGPIPE is 13)")
    t.is(code, 0, "exit 0")
  end)

t.test("SIGPIPE: echo peers that send and vanish without reading", function()
  local s = server.start { script = echo }
  local big = string.rep("p", 256 * 1024)
  for _ = 1, 20 do
    local c = s:connect()
    c:write(big) -- the echo starts; this side never reads
    coronet.sleep(0.005)
    c:close()
  end
  local c = s:connect()
  c:write("alive?\n")
  t.is(c:read_line(), "alive?", "the server still echoes")
  c:close()
  local code, sig = s:stop()
  t.is(sig, 0, "not killed by a signal")
  t.is(code, 0, "exit 0")
end)

t.test("a program that exits with handlers still serving exits cleanly",
  function()
    -- regression: at exit a connection's close callback touched its
    -- handler's freed task (ASan: heap-use-after-free)
    local path = util.tmpfile([[
local coronet = require "coronet"
local net = require "coronet.net"
local l = assert(net.listen("127.0.0.1:0", function(conn) conn:read() end))
local conns = {}
for i = 1, 10 do conns[i] = assert(net.dial(l:addr())) end
coronet.sleep(0.05) -- every handler is parked in its read
os.exit(0)
]])
    local code, err = server.run { "--run", path }
    t.is(code, 0, "exit 0")
    t.is(err, "", "nothing on stderr")
    util.cleanup()
  end)

t.test("a --run program stopped by SIGTERM ends without a crash", function()
  local process = require "coronet.process"
  local path = util.tmpfile([[
io.stdout:write("up\n") io.stdout:flush()
require("coronet").sleep(30)
]])
  local p = assert(process.spawn { server.bin, "--run", path, stdout = "pipe" })
  p.stdout:set_timeout(10)
  t.is(p.stdout:read_line(), "up", "the program runs")
  p:kill("TERM")
  local code, sig = p:wait(10)
  t.isnt(code, nil, "it exited")
  t.is(sig, 0, "by itself, not killed by the signal")
  t.isnt(code, 0, "with a non-zero status: " .. tostring(code))
  util.cleanup()
end)

t.done()
