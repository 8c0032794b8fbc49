-- t/800-tls.t: TLS connections are the same connections: coronet serves
-- and dials tls:// in one process, and read_line, deadlines, half-close,
-- io.copy, bufio, starttls and 16 MiB echoes work over them.
local t = require "lib.tap"
local util = require "lib.util"
local certs = require "lib.certs"
local relay = require "lib.relay"
local coronet = require "coronet"
local net = require "coronet.net"
local io_ = require "coronet.io"
local bufio = require "coronet.bufio"

certs.need("openssl")
local d = certs.make()
local base = coronet.stats()
local server_opts = { cert = d.cert, key = d.key }
local client_opts = { ca = d.ca, timeout = 10 }

-- serve(handler [, opts]) listens on tls://127.0.0.1:0.
local function serve(handler, opts)
  return assert(net.listen("tls://127.0.0.1:0", handler, opts or server_opts))
end

local function echo(c)
  c:set_timeout(20)
  io_.copy(c, c)
  c:close_write()
end

local function dial(l, opts)
  local c, err = net.dial(l:addr(), opts or client_opts)
  if c then c:set_timeout(20) end
  return c, err
end

t.test("a TLS echo carries lines both ways; the conn is a coronet.conn",
  function()
  local l = serve(echo)
  t.like(l:addr(), "^tls://127%.0%.0%.1:%d+$",
    "the listener's address says tls://")
  local c, err = dial(l)
  t.ok(c, "dial succeeds: " .. tostring(err))
  t.like(tostring(c), "^coronet%.conn", "the same kind of object")
  c:write("hello\r\nsecond line\nabc|")
  t.is(c:read_line(), "hello", "read_line strips \\r\\n")
  t.is(c:read_line(), "second line", "the next line")
  t.is(c:read_until("|"), "abc", "read_until")
  c:close()
  l:close()
end)

t.test("conn:tls() tells the version, cipher, peer, and that it verified",
  function()
  local seen
  local l = serve(function(c)
    seen = c:tls()
    echo(c)
  end)
  local c = assert(dial(l, { ca = d.ca, sni = "localhost", timeout = 10 }))
  local i = assert(c:tls())
  t.like(i.version, "^TLSv1%.[23]$", "version: " .. tostring(i.version))
  t.ok(type(i.cipher) == "string" and #i.cipher > 0,
    "a cipher: " .. tostring(i.cipher))
  t.is(i.peer, "CN=localhost", "the server's certificate subject")
  t.is(i.verified, true, "the client checked it")
  t.is(i.resumed, false, "a full handshake")
  c:write("x\n")
  t.is(c:read_line(), "x", "echo")
  t.ok(seen and seen.version == i.version, "the server sees the same version")
  t.is(seen and seen.sni, "localhost", "and the name the client asked for")
  local c2 = assert(dial(l))
  c2:write("y\n")
  t.is(c2:read_line(), "y", "dialing an IP address")
  t.is(seen and seen.sni, nil, "sends no name (RFC 6066)")
  c2:close()
  t.is(seen and seen.peer, nil, "and no client certificate")
  c:close()
  l:close()
end)

t.test("conn:tls() on a plain connection: nil, not a tls connection",
  function()
  local l = assert(net.listen("127.0.0.1:0", echo))
  local c = assert(net.dial(l:addr(), { timeout = 5 }))
  local i, err = c:tls()
  t.is(i, nil, "no table")
  t.is(err, "not a tls connection", "the error")
  c:close()
  l:close()
end)

t.test("half-close: the server reads EOF (close_notify), answers, closes",
  function()
  local l = serve(function(c)
    c:set_timeout(10)
    local all = util.read_all(c)
    c:write("got " .. #all .. " bytes\n")
    c:close()
  end)
  local c = assert(dial(l))
  c:write(string.rep("z", 100000))
  t.ok(c:close_write(), "close_write")
  t.is(c:read_line(), "got 100000 bytes", "the server saw everything, then EOF")
  local s, err = c:read()
  t.is(s, nil, "then EOF")
  t.is(err, "eof", "a clean eof (close_notify)")
  c:close()
  l:close()
end)

t.test("a read deadline on a TLS connection times out", function()
  local release = coronet.chan()
  local l = serve(function(c)
    release:recv(10)
    c:close()
  end)
  local c = assert(dial(l))
  c:set_timeout(0.2)
  local t0 = coronet.now()
  local s, err = c:read()
  t.is(s, nil, "no data")
  t.is(err, "timeout", "timeout")
  t.cmp_ok(coronet.now() - t0, "<", 5, "in time")
  release:send(true)
  c:close()
  l:close()
end)

t.test("a greeting written before the handshake ends leaves once it does",
  function()
  local l = serve(function(c)
    c:write("* welcome\n")
    echo(c)
  end)
  local c = assert(dial(l))
  t.is(c:read_line(), "* welcome", "the greeting")
  c:close()
  l:close()
end)

t.test("bufio reads and writes over a TLS connection", function()
  local l = serve(echo)
  local c = assert(dial(l))
  local w = bufio.writer(c)
  for i = 1, 100 do w:write("line " .. i .. "\n") end
  w:flush()
  c:close_write()
  local r = bufio.reader(c)
  local n = 0
  for line in r:lines() do
    n = n + 1
    if line ~= "line " .. n then break end
  end
  t.is(n, 100, "100 lines back in order")
  c:close()
  l:close()
end)

-- hash_echo sends size pseudo-random bytes through c and checks what comes
-- back by hash; returns what it read, the hashes and the error.
local function hash_echo(c, size)
  local payload = util.random_bytes(1024 * 1024, 7)
  local sent = 0
  local want, got = nil, nil
  local join = util.spawn_wg(function()
    local n = 0
    while true do
      local s, err = c:read(65536)
      if not s then return n, err end
      n = n + #s
      got = util.fnv1a(s, got)
    end
  end, 120)
  while sent < size do
    local chunk = payload
    if size - sent < #chunk then chunk = chunk:sub(1, size - sent) end
    assert(c:write(chunk))
    want = util.fnv1a(chunk, want)
    sent = sent + #chunk
  end
  c:close_write()
  local n, err = join()
  return n, err, want, got
end

t.test("16 MiB echo through TLS comes back whole (FNV-1a)", function()
  local l = serve(echo)
  local c = assert(dial(l))
  local n, err, want, got = hash_echo(c, 16 * 1024 * 1024)
  t.is(n, 16 * 1024 * 1024, "16 MiB back")
  t.is(err, "eof", "then EOF")
  t.is(util.hex(got or 0), util.hex(want), "same hash")
  c:close()
  l:close()
end, 120)

t.test("TLS through a relay that passes one byte per segment", function()
  local l = serve(echo)
  local r = relay.start(l:addr():match("^tls://(.*)$"), 0)
  local c, err = net.dial("tls://" .. r.addr, { ca = d.ca, sni = "localhost",
    timeout = 20 })
  t.ok(c, "the handshake passes byte by byte: " .. tostring(err))
  c:set_timeout(30)
  local n, rerr, want, got = hash_echo(c, 48 * 1024)
  t.is(n, 48 * 1024, "48 KiB back")
  t.is(rerr, "eof", "then EOF")
  t.is(util.hex(got or 0), util.hex(want), "same hash")
  c:close()
  r.close()
  l:close()
end, 120)

t.test("starttls upgrades plain connections in place, both sides",
  function()
  local l = assert(net.listen("127.0.0.1:0", function(c)
    c:set_timeout(10)
    t.is(c:read_line(), "STARTTLS", "server: the plain command")
    c:write("GO\n") -- plaintext, before the upgrade
    local ok, err = c:starttls(server_opts)
    t.ok(ok, "server: starttls: " .. tostring(err))
    local i = c:tls()
    t.ok(i and i.version, "server: now TLS")
    echo(c)
  end))
  local c = assert(net.dial(l:addr(), { timeout = 5 }))
  c:set_timeout(10)
  c:write("STARTTLS\n")
  t.is(c:read_line(), "GO", "client: the plain reply")
  local ok, err = c:starttls { ca = d.ca, sni = "localhost" }
  t.ok(ok, "client: starttls: " .. tostring(err))
  t.is(c:tls().peer, "CN=localhost", "client: the server's certificate")
  c:write("secret\n")
  t.is(c:read_line(), "secret", "echo over TLS")
  local again, aerr = c:starttls { ca = d.ca, sni = "localhost" }
  t.is(again, nil, "a second starttls fails")
  t.is(aerr, "already a tls connection", "saying why")
  c:close()
  l:close()
end)

t.test("starttls as a client needs a name to check, or verify = false",
  function()
  local l = assert(net.listen("127.0.0.1:0", echo))
  local c = assert(net.dial(l:addr(), { timeout = 5 }))
  local ok, err = pcall(c.starttls, c, { ca = d.ca })
  t.ok(not ok, "raises")
  t.like(err, "bad argument #1 to 'starttls'", "naming the call")
  c:close()
  l:close()
end)

t.test("many TLS clients at once each get their own echo", function()
  local l = serve(echo, { cert = d.ec_cert, key = d.ec_key })
  local wg = coronet.waitgroup()
  local ok = 0
  for i = 1, 50 do
    wg:add(1)
    coronet.spawn(function()
      local c = dial(l)
      if c then
        c:write("n" .. i .. "\n")
        if c:read_line() == "n" .. i then ok = ok + 1 end
        c:close()
      end
      wg:done()
    end)
  end
  wg:wait(60)
  t.is(ok, 50, "50 echoes")
  l:close()
end)

t.test("a group's shared blocks are sealed like any bytes", function()
  local g = coronet.group()
  local joined = coronet.chan(10)
  local l = serve(function(c)
    g:add(c)
    joined:send(true)
    c:set_timeout(10)
    repeat until not c:read() -- until the client closes
  end)
  local cs = {}
  for i = 1, 3 do
    cs[i] = assert(dial(l))
    cs[i]:write("hi\n") -- the handshake finishes
    assert(joined:recv(10))
  end
  local big = string.rep("g", 40000)
  g:send("to all\n")
  g:send(big .. "\n")
  for i = 1, 3 do
    t.is(cs[i]:read_line(), "to all", "member " .. i .. ": the line")
    t.is(cs[i]:read_line(), big, "member " .. i .. ": 40000 bytes")
    cs[i]:close()
  end
  l:close()
end)

t.test("nothing is left: connections, blocks, tasks", function()
  util.check_clean(t, base)
end)

util.cleanup()
require("lib.scratch").cleanup()
t.done()
