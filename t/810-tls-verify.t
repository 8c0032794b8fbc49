-- t/810-tls-verify.t: certificates: a client checks the server's against
-- the system's CA store or its own, and the host name, and each failure
-- names its cause; a server picks its certificate by SNI, negotiates
-- ALPN, and reports bad certificate files at listen.
local t = require "lib.tap"
local util = require "lib.util"
local certs = require "lib.certs"
local coronet = require "coronet"
local net = require "coronet.net"
local io_ = require "coronet.io"

certs.need("openssl")
local d = certs.make()
local base = coronet.stats()

local function echo(c)
  c:set_timeout(10)
  io_.copy(c, c)
  c:close_write()
end

-- serving(cert, key, fn) runs fn(port, server_errors) with a TLS echo
-- server of cert and key; server_errors lists what the server's reads
-- failed with.
local function serving(cert, key, fn)
  local errors = {}
  local l = assert(net.listen("tls://127.0.0.1:0", function(c)
    c:set_timeout(10)
    local s, err = c:read()
    if not s then errors[#errors + 1] = err return end
    c:write(s)
    echo(c)
  end, { cert = cert, key = key }))
  fn(l:addr():match(":(%d+)$"), errors)
  l:close()
end

local function dial_err(port, opts, host)
  opts.timeout = 10
  local addr = "tls://" .. (host or "localhost") .. ":" .. port
  local c, err = net.dial(addr, opts)
  if c then c:close() end
  return c, err, addr
end

t.test("the system's CA store does not know the test CA: unknown ca",
  function()
  serving(d.cert, d.key, function(port, errors)
    local c, err, addr = dial_err(port, {})
    t.is(c, nil, "no connection")
    t.is(err, "dial " .. addr .. ": tls: certificate verify failed: unknown ca",
      "the cause")
    util.wait_until(function() return #errors > 0 end, 5)
    t.is(errors[1], "tls: peer rejected the certificate",
      "the server's side of it")
  end)
end)

t.test("an expired certificate: certificate expired", function()
  serving(d.expired_cert, d.expired_key, function(port)
    local _, err = dial_err(port, { ca = d.ca })
    t.like(err, "tls: certificate verify failed: certificate expired$",
      "the cause")
  end)
end)

t.test("a certificate for another host: hostname mismatch", function()
  serving(d.wrong_cert, d.wrong_key, function(port)
    local _, err = dial_err(port, { ca = d.ca })
    t.like(err, "tls: certificate verify failed: hostname mismatch$",
      "by name")
    _, err = dial_err(port, { ca = d.ca }, "127.0.0.1")
    t.like(err, "tls: certificate verify failed: hostname mismatch$",
      "by IP address")
    local c = dial_err(port, { ca = d.ca, sni = "other.example" })
    t.ok(c, "sni names the host the certificate is for: it passes")
  end)
end)

t.test("the right host under another name is checked by sni", function()
  serving(d.cert, d.key, function(port)
    local _, err = dial_err(port, { ca = d.ca, sni = "nothere.example" })
    t.like(err, "hostname mismatch$", "sni replaces the name checked")
    local c = dial_err(port, { ca = d.ca }, "127.0.0.1")
    t.ok(c, "an IP address is checked against the IP SAN")
  end)
end)

t.test("a self-signed certificate: self-signed; verify = false accepts it",
  function()
  serving(d.self_cert, d.self_key, function(port)
    local _, err = dial_err(port, { ca = d.ca })
    t.like(err, "tls: certificate verify failed: self%-signed certificate$",
      "the cause")
    local c, err2 = net.dial("tls://localhost:" .. port,
      { verify = false, timeout = 10 })
    t.ok(c, "verify = false: connected " .. tostring(err2))
    if c then
      c:set_timeout(10)
      c:write("hi\n")
      t.is(c:read_line(), "hi", "and it works")
      t.is(c:tls().verified, false, "conn:tls() says it was not verified")
      c:close()
    end
  end)
end)

t.test("ca may be PEM text; an ECDSA P-256 certificate works", function()
  serving(d.ec_cert, d.ec_key, function(port)
    local c, err = net.dial("tls://localhost:" .. port,
      { ca = certs.read(d.ca), timeout = 10 })
    t.ok(c, "connected: " .. tostring(err))
    if c then
      t.ok(c:tls().verified, "verified")
      c:close()
    end
  end)
end)

t.test("a bad ca fails the dial, naming the file", function()
  serving(d.cert, d.key, function(port)
    local _, err = dial_err(port, { ca = d.dir .. "/nothere.pem" })
    t.like(err, "tls: cannot read .*nothere%.pem: no such file", "missing")
    _, err = dial_err(port, { ca = d.key })
    t.like(err, "tls: no CA certificate in", "not a certificate")
  end)
end)

t.test("SNI picks the certificate whose names match; else the first",
  function()
  local l = assert(net.listen("tls://127.0.0.1:0", echo, { certs = {
    { cert = d.cert, key = d.key },
    d.named["a.test"], d.named["b.test"], { cert = d.ec_cert, key = d.ec_key },
  } }))
  local function subject(sni)
    local c, err = net.dial(l:addr(), { ca = d.ca, sni = sni, timeout = 10 })
    if not c then return err end
    local peer = c:tls().peer
    c:close()
    return peer
  end
  t.is(subject("a.test"), "CN=a.test", "a.test")
  t.is(subject("b.test"), "CN=b.test", "b.test")
  t.is(subject("ec.test"), "CN=localhost", "ec.test: the ECDSA one (by SAN)")
  t.is(subject("localhost"), "CN=localhost", "localhost: the default")
  t.like(subject("c.test"), "hostname mismatch",
    "an unknown name gets the default")
  l:close()
end)

t.test("ALPN: the server's first protocol the client offers", function()
  local proto
  local l = assert(net.listen("tls://127.0.0.1:0", function(c)
    proto = (c:tls() or {}).alpn
    echo(c)
  end, { cert = d.cert, key = d.key, alpn = { "h2", "http/1.1" } }))
  local function dial(alpn)
    local c, err = net.dial(l:addr(), { ca = d.ca, alpn = alpn,
      sni = "localhost", timeout = 10 })
    if not c then return nil, err end
    local a = c:tls().alpn
    c:write("x")
    c:read()
    c:close()
    return a
  end
  t.is(dial { "http/1.1" }, "http/1.1", "http/1.1")
  t.is(proto, "http/1.1", "the server sees it too")
  t.is(dial { "http/1.1", "h2" }, "h2", "the server's preference wins")
  t.is(dial(nil), nil, "no ALPN offered: none")
  local a, err = dial { "spdy/1" }
  t.is(a, nil, "nothing in common")
  t.like(err, "tls: no common application protocol$", "refused, saying why")
  l:close()
end)

t.test("listen fails on missing, mismatched or broken certificate files",
  function()
  local function listen(opts)
    local l, err = net.listen("tls://127.0.0.1:0", echo, opts)
    if l then l:close() end
    return err
  end
  t.like(listen { cert = d.dir .. "/none.pem", key = d.key },
    "^listen tls://127%.0%.0%.1:0: tls: cannot read .*none%.pem: no such file",
    "a missing file")
  t.like(listen { cert = d.cert, key = d.ec_key },
    "tls: key .*ec%.key does not match certificate .*server%.pem$",
    "a key that does not match")
  t.like(listen { cert = d.key, key = d.key }, "tls: no certificate in",
    "a key given as the certificate")
  t.ok(listen { cert = certs.read(d.cert), key = certs.read(d.key) } == nil,
    "PEM text instead of files works")
  local ok, err = pcall(net.listen, "tls://127.0.0.1:0", echo)
  t.ok(not ok and err:find("bad argument #3 to 'listen'", 1, true),
    "no options raises: " .. tostring(err))
end)

t.test("bounds: at most 16 certificates; ALPN names of 1 to 255 bytes",
  function()
  local many = {}
  for i = 1, 17 do many[i] = { cert = d.cert, key = d.key } end
  local ok, err = pcall(net.listen, "tls://127.0.0.1:0", echo, { certs = many })
  t.ok(not ok and err:find("1 to 16 certificates", 1, true),
    "17 certificates raise: " .. tostring(err))
  many[17] = nil
  local l = net.listen("tls://127.0.0.1:0", echo, { certs = many })
  t.ok(l, "16 are fine")
  if l then l:close() end
  ok, err = pcall(net.listen, "tls://127.0.0.1:0", echo, { cert = d.cert,
    key = d.key, alpn = { string.rep("p", 256) } })
  t.ok(not ok and err:find("bad argument #3 to 'listen' (alpn: protocol "
    .. "names are 1 to 255 bytes)", 1, true), "a 256-byte name raises: "
    .. tostring(err))
  ok, err = pcall(net.dial, "tls://127.0.0.1:1", { alpn = { "" } })
  t.ok(not ok and err:find("bad argument #2 to 'dial'", 1, true),
    "so does an empty one, in dial: " .. tostring(err))
  l = net.listen("tls://127.0.0.1:0", echo, { cert = d.cert, key = d.key,
    alpn = { string.rep("p", 255) } })
  t.ok(l, "255 bytes are fine")
  if l then l:close() end
end)

t.test("nothing is left: connections, blocks, tasks", function()
  util.check_clean(t, base)
end)

require("lib.scratch").cleanup()
t.done()
