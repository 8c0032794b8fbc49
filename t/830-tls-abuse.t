-- t/830-tls-abuse.t: bad TLS clients cost only their own connection:
-- garbage instead of a ClientHello, a handshake that stalls or trickles a
-- byte at a time (dropped at the handshake timeout); and a thousand TLS
-- connections at once against the real server, idle ones holding no
-- buffer block, none leaking.
local t = require "lib.tap"
local util = require "lib.util"
local certs = require "lib.certs"
local scratch = require "lib.scratch"
local server = require "lib.server"
local coronet = require "coronet"
local net = require "coronet.net"
local io_ = require "coronet.io"

certs.need("openssl")
local d = certs.make()
local base = coronet.stats()
local N = util.under_valgrind() and 200 or 1000

-- serve(opts) is a TLS echo server in this process whose handlers record
-- the error their first read got, in errs.
local function serve(opts)
  local errs = {}
  opts.cert, opts.key = d.ec_cert, d.ec_key
  local l = assert(net.listen("tls://127.0.0.1:0", function(c)
    c:set_timeout(20)
    local s, err = c:read()
    if not s then
      errs[#errs + 1] = err
      return
    end
    c:write(s)
    io_.copy(c, c)
  end, opts))
  return l, errs, l:addr():match("^tls://(.*)$")
end

local function works(l)
  local c, err = net.dial(l:addr(),
    { ca = d.ca, sni = "localhost", timeout = 10 })
  if not c then return err end
  c:set_timeout(10)
  c:write("ping\n")
  local line = c:read_line()
  c:close()
  return line
end

-- client_hello captures the first bytes a coronet TLS client sends.
local function client_hello()
  local got = coronet.chan(1)
  local l = assert(net.listen("127.0.0.1:0", function(c)
    c:set_timeout(5)
    got:send((c:read(65536)))
  end))
  coronet.spawn(function()
    net.dial("tls://" .. l:addr(), { verify = false, timeout = 2 })
  end)
  local hello = got:recv(10)
  l:close()
  return hello
end

t.test("garbage instead of a ClientHello fails that connection only",
  function()
  local l, errs, addr = serve {}
  for _, junk in ipairs { "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
    util.random_bytes(3000, 5), "\22\3\1\0\5hello" } do
    local c = assert(net.dial(addr, { timeout = 5 }))
    c:set_timeout(5)
    c:write(junk)
    local _, err = util.read_all(c)
    t.ok(err == "eof" or err == "reset",
      "the server drops it: " .. tostring(err))
    c:close()
  end
  util.wait_until(function() return #errs == 3 end, 5)
  t.is(#errs, 3, "three handlers saw an error")
  for i = 1, #errs do
    t.like(errs[i], "^tls: ", "a TLS error: " .. tostring(errs[i]))
  end
  t.is(works(l), "ping", "the server serves the next client")
  l:close()
end)

t.test("a client that connects and sends nothing is dropped at the "
  .. "handshake timeout", function()
  local l, errs, addr = serve { handshake_timeout = 0.5 }
  local c = assert(net.dial(addr, { timeout = 5 }))
  c:set_timeout(10)
  local t0 = coronet.now()
  local _, err = c:read()
  local dt = coronet.now() - t0
  t.ok(err == "eof" or err == "reset",
    "the client sees the drop: " .. tostring(err))
  t.cmp_ok(dt, ">=", 0.4, "not before the timeout")
  t.cmp_ok(dt, "<", 3, "soon after it")
  util.wait_until(function() return #errs == 1 end, 5)
  t.is(errs[1], "tls: handshake timeout", "the handler's read says why")
  c:close()
  t.is(works(l), "ping", "others are served")
  l:close()
end)

t.test("a ClientHello sent a byte at a time is dropped at the timeout too",
  function()
  local hello = client_hello()
  t.ok(hello and #hello > 100, "a real ClientHello captured: "
    .. tostring(hello and #hello))
  local l, errs, addr = serve { handshake_timeout = 0.6 }
  local c = assert(net.dial(addr, { timeout = 5 }))
  local t0, sent = coronet.now(), 0
  for i = 1, #hello do
    if not c:write(hello:sub(i, i)) then break end
    sent = i
    coronet.sleep(0.05)
    if coronet.now() - t0 > 3 then break end
    if #errs > 0 then break end
  end
  util.wait_until(function() return #errs == 1 end, 5)
  t.is(errs[1], "tls: handshake timeout", "dropped: " .. tostring(errs[1]))
  t.cmp_ok(coronet.now() - t0, "<", 3, "in time, though bytes kept coming")
  t.cmp_ok(sent, "<", #hello, "before the hello was complete")
  c:close()
  l:close()
end)

t.test("a dial whose server never answers fails at its timeout", function()
  local l = assert(net.listen("127.0.0.1:0", function(c) coronet.sleep(5) end))
  local t0 = coronet.now()
  local c, err = net.dial("tls://" .. l:addr(),
    { verify = false, timeout = 0.5 })
  t.is(c, nil, "no connection")
  t.like(err, "tls: handshake timeout$", "the cause: " .. tostring(err))
  t.cmp_ok(coronet.now() - t0, "<", 3, "in time")
  l:close()
end)

-- A real server: svc_mem.lua's echo over TLS, stats on a plain listener
-- (no edge relay: a thousand handshakes a byte at a time take too long).
local s = server.start { script = server.path("t/lib/svc_mem.lua"),
  args = { "echo" }, listen = "tls://127.0.0.1:0", edge = "reload",
  opts = { "--tls-cert", d.ec_cert, "--tls-key", d.ec_key } }
local saddr = s:wait_log("stats on %S+"):match("stats on (%S+)")

-- round opens n TLS connections at once, echoes one message on each, and
-- returns the server's stats and RSS while they are open and idle.
local function round(n)
  local conns = {}
  local good, first = util.run_all(n, function(i)
    local c = assert(net.dial(s.addr, { ca = d.ca, sni = "localhost",
      timeout = 60 }))
    c:set_timeout(60)
    conns[i] = c
    local msg = "tls " .. i .. string.rep(".", i % 50)
    c:write(msg .. "\n")
    return c:read_line() == msg
  end, 240)
  if first then t.diag(first) end
  local st = util.wait_until(function()
    local x = util.svc_stats(saddr)
    return x.connections == n + 1 and x
  end, 20) or util.svc_stats(saddr)
  local rss = util.rss_kib(s.proc.pid)
  for i = 1, n do
    if conns[i] then conns[i]:close() end
  end
  return good, st, rss
end

t.test(N .. " TLS connections at once each get their own echo; idle ones "
  .. "hold no buffer block", function()
  local rss0 = util.rss_kib(s.proc.pid)
  local good, st, rss1 = round(N)
  t.is(good, N, "all " .. N .. " echoed")
  t.is(st.connections, N + 1, "the server held them all at once")
  t.is(st.blocks, 0, "idle TLS connections hold no buffer block")
  t.diag(string.format("server RSS %d -> %d KiB with %d idle TLS "
    .. "connections: %.1f KiB each", rss0, rss1, N, (rss1 - rss0) / N))
end, 240)

t.test("no leak per connection: the next rounds cost no more memory",
  function()
  local st = util.wait_until(function()
    local x = util.svc_stats(saddr)
    return x.connections == 1 and x
  end, 20) or util.svc_stats(saddr)
  t.is(st.connections, 1, "all closed on the server (but stats)")
  t.is(st.blocks, 0, "no block held")
  round(N)
  local _, st1, rss1 = round(N)
  local _, st2, rss2 = round(N)
  t.diag(string.format("server RSS with %d open: %d, then %d KiB; C heap "
    .. "in use %d, then %d KiB", N, rss1, rss2, (st1.heap or 0) / 1024,
    (st2.heap or 0) / 1024))
  -- a session left behind would cost OpenSSL's ~14 KiB. The C heap's
  -- bytes in use tell it best; RSS moves with the heap's trims (whenever
  -- the freed bytes pile up), so it is the check only where the heap
  -- cannot tell (under a sanitizer, which does not trim either)
  if (st1.heap or 0) > 0 and (st2.heap or 0) > 0 then
    t.cmp_ok(st2.heap - st1.heap, "<", 2048 * N, "another round grows the "
      .. "C heap by less than 2 KiB a connection")
  else
    t.cmp_ok(rss2 - rss1, "<", 8 * N, "another round grows RSS by less "
      .. "than 8 KiB a connection")
  end
end, 240)

t.test("the server exits cleanly", function()
  t.is(s:stop(), 0, "exit 0")
end)

t.test("nothing is left here: connections, blocks, tasks", function()
  util.check_clean(t, base)
end)

scratch.cleanup()
t.done()
