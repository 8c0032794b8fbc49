-- t/820-tls-peers.t: coronet's TLS against real peers: openssl s_client
-- and curl against `coronet --listen tls://`, coronet's client against
-- openssl s_server; TLS 1.2 and 1.3, session resumption, SNI from
-- repeated --tls-cert/--tls-key pairs, ALPN, renegotiation refused,
-- startup errors in one line, and SIGHUP certificate rotation with
-- connections open.
local t = require "lib.tap"
local util = require "lib.util"
local certs = require "lib.certs"
local scratch = require "lib.scratch"
local server = require "lib.server"
local coronet = require "coronet"
local net = require "coronet.net"

certs.need("openssl", "curl")
local d = certs.make()
local dir = scratch.dir("tlspeers")

-- line.lua answers one line (or one HTTP request) with what the session
-- negotiated, then closes.
local script = dir:write("line.lua", [[
return function(c)
  c:set_timeout(10)
  local line = c:read_line()
  if not line then return end
  local i = c:tls() or {}
  local what = string.format("%s %s alpn=%s sni=%s resumed=%s", line,
    tostring(i.version), tostring(i.alpn), tostring(i.sni),
    tostring(i.resumed))
  if line:find("^GET ") then
    repeat local h = c:read_line() until h == "" or not h
    c:write("HTTP/1.1 200 OK\r\nContent-Length: " .. #what + 1
      .. "\r\nConnection: close\r\n\r\n" .. what .. "\n")
  else
    c:write(what .. "\n")
  end
  c:close()
end
]])

local function start(extra)
  local opts = { "--tls-cert", d.cert, "--tls-key", d.key }
  for _, v in ipairs(extra or {}) do opts[#opts + 1] = v end
  return scratch.start { script = script, listen = "tls://127.0.0.1:0",
    opts = opts }
end

local s = start { "--tls-cert", d.named["a.test"].cert,
  "--tls-key", d.named["a.test"].key, "--tls-alpn", "http/1.1" }
local hostport = s.addr:match("^tls://(.*)$")
local port = hostport:match(":(%d+)$")

local function s_client(args, input, hold)
  local argv = { "openssl", "s_client", "-connect", hostport,
    "-CAfile", d.ca }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  return certs.client(argv, input, 20, hold)
end

t.test("s_client (TLS 1.3) gets its line back over a verified session",
  function()
  t.like(s.addr, "^tls://127%.0%.0%.1:%d+$", "the startup line says tls://")
  local code, out = s_client({ "-servername", "localhost", "-ign_eof" },
    "hello\n")
  t.is(code, 0, "s_client exits 0")
  t.like(out, "hello TLSv1%.3 alpn=nil sni=localhost", "the answer")
  t.like(out, "Verify return code: 0 %(ok%)", "the chain verified")
end)

t.test("s_client -tls1_2 gets TLS 1.2 with an ECDHE AEAD suite", function()
  local code, out = s_client({ "-tls1_2", "-ign_eof" }, "twelve\n")
  t.is(code, 0, "s_client exits 0")
  t.like(out, "twelve TLSv1%.2 ", "the answer")
  t.like(out, "Cipher is ECDHE%-RSA%-AES%d+%-GCM%-SHA%d+",
    "a forward secret AEAD")
end)

t.test("a client offering only TLS 1.1 is refused", function()
  local code, out = s_client({ "-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0" },
    "old\n")
  t.isnt(code, 0, "s_client fails")
  t.ok(not out:find("old TLS", 1, true), "no answer")
  t.like(out, "alert protocol version", "the server says why")
end)

t.test("session tickets resume TLS 1.3 and TLS 1.2 sessions", function()
  for _, v in ipairs { "-tls1_3", "-tls1_2" } do
    local sess = dir:path("sess" .. v)
    local code = s_client({ v, "-sess_out", sess, "-ign_eof" }, "first\n")
    t.is(code, 0, v .. ": first connection")
    local _, out = s_client({ v, "-sess_in", sess, "-ign_eof" }, "second\n")
    t.like(out, "second TLSv1%.%d alpn=nil sni=nil resumed=true",
      v .. ": the server resumed it")
    t.like(out, "Reused, TLSv1%.%d", v .. ": s_client agrees")
  end
end)

t.test("ticket keys rotate: a ticket one period old is renewed, two "
  .. "periods old it is refused", function()
  local l = assert(net.listen("tls://127.0.0.1:0", function(c)
    c:set_timeout(10)
    local line = c:read_line()
    c:write(tostring(line) .. " resumed=" .. tostring(c:tls().resumed) .. "\n")
    c:close()
  end, { cert = d.cert, key = d.key, ticket_rotation = 1 }))
  local sess = dir:path("sess-rot")
  local function try(what)
    local _, out = certs.client({ "openssl", "s_client", "-connect",
      l:addr():match("^tls://(.*)$"), "-CAfile", d.ca, "-ign_eof",
      "-sess_" .. (what == "first" and "out" or "in"), sess }, what .. "\n")
    return out:match(what .. " resumed=(%a+)")
  end
  t.is(try("first"), "false", "a full handshake gives a ticket")
  t.is(try("now"), "true", "resumed at once")
  coronet.sleep(1.2)
  t.is(try("later"), "true", "resumed a period later (the key before)")
  coronet.sleep(1.2)
  t.is(try("late"), "false", "two periods later: a full handshake")
  l:close()
end)

t.test("a ticket from one worker resumes on the others", function()
  local w = scratch.start { script = script, listen = "tls://127.0.0.1:0",
    opts = { "--tls-cert", d.cert, "--tls-key", d.key, "--workers", "2" } }
  local sess = dir:path("sess-workers")
  local function try(what, io)
    local _, out = certs.client({ "openssl", "s_client", "-connect",
      w.addr:match("^tls://(.*)$"), "-CAfile", d.ca, "-ign_eof",
      "-sess_" .. io, sess }, what .. "\n")
    return out:match(what .. " TLSv1%.3 alpn=nil sni=nil resumed=(%a+)")
  end
  t.is(try("first", "out"), "false", "a full handshake gives a ticket")
  local resumed = 0
  for i = 1, 8 do
    if try("again" .. i, "in") == "true" then resumed = resumed + 1 end
  end
  t.is(resumed, 8, "8 of 8 resumed, whichever worker accepted them")
  t.is(scratch.stop(w), 0, "the server exits 0")
end)

t.test("SNI picks the certificate of repeated --tls-cert/--tls-key pairs",
  function()
  local _, out = s_client({ "-servername", "a.test", "-ign_eof" }, "a\n")
  t.like(out, "subject=CN = a%.test", "a.test gets its own")
  t.like(out, "a TLSv1%.3 alpn=nil sni=a%.test", "and the server saw the name")
  _, out = s_client({ "-servername", "zzz.test", "-ign_eof" }, "z\n")
  t.like(out, "subject=CN = localhost", "another name gets the first")
end)

t.test("curl --cacert fetches over https, ALPN http/1.1", function()
  local code, out = certs.client { "curl", "-sS", "--max-time", "10",
    "--cacert", d.ca, "https://localhost:" .. port .. "/x" }
  t.is(code, 0, "curl exits 0: " .. out)
  t.like(out, "^GET /x HTTP/1%.1 TLSv1%.3 alpn=http/1%.1 sni=localhost",
    "the answer")
  code, out = certs.client { "curl", "-sS", "--max-time", "10", "--tlsv1.2",
    "--tls-max", "1.2", "--cacert", d.ca, "https://127.0.0.1:" .. port .. "/" }
  t.like(out, "TLSv1%.2 alpn=http/1%.1", "TLS 1.2 too")
  code, out = certs.client { "curl", "-sS", "--max-time", "10",
    "https://localhost:" .. port .. "/" }
  t.isnt(code, 0, "without --cacert curl refuses the certificate")
end)

t.test("renegotiation is refused", function()
  local _, out = s_client({ "-tls1_2" }, "R\n", 1)
  t.like(out, "RENEGOTIATING", "s_client asks")
  t.like(out, "no renegotiation", "the server refuses")
  local code, again = s_client({ "-ign_eof" }, "still\n")
  t.is(code, 0, "the server goes on")
  t.like(again, "still TLSv1%.3", "serving others")
end)

t.test("coronet dials openssl s_server, TLS 1.3 and TLS 1.2", function()
  for _, v in ipairs { "-tls1_3", "-tls1_2" } do
    local p = certs.s_server { "-cert", d.cert, "-key", d.key, "-rev", v,
      "-alpn", "http/1.1" }
    local c, err = net.dial("tls://" .. p.addr, { ca = d.ca, sni = "localhost",
      alpn = { "http/1.1" }, timeout = 10 })
    t.ok(c, v .. ": dial: " .. tostring(err))
    if c then
      c:set_timeout(10)
      local i = c:tls()
      t.is(i.version, v == "-tls1_3" and "TLSv1.3" or "TLSv1.2",
        v .. ": version")
      t.is(i.alpn, "http/1.1", v .. ": ALPN")
      c:write("hello\n")
      t.is(c:read_line(), "olleh", v .. ": s_server -rev answers")
      c:write("last\n")
      t.ok(c:close_write(), v .. ": close_write sends close_notify")
      t.is(c:read_line(), "tsal", v .. ": what was sent before it arrives")
      local _, err = util.read_all(c)
      t.ok(err == "eof" or err == "reset", v .. ": then the peer ends: "
        .. tostring(err))
      c:close()
    end
    p:stop()
  end
end)

t.test("coronet's checks hold against s_server: wrong host, unknown ca",
  function()
  local p = certs.s_server { "-cert", d.wrong_cert, "-key", d.wrong_key }
  local _, err = net.dial("tls://localhost:" .. p.addr:match(":(%d+)$"),
    { ca = d.ca, timeout = 10 })
  t.like(err, "tls: certificate verify failed: hostname mismatch$",
    "wrong host")
  _, err = net.dial("tls://localhost:" .. p.addr:match(":(%d+)$"),
    { timeout = 10 })
  t.like(err, "tls: certificate verify failed: unknown ca$", "unknown ca")
  p:stop()
end)

t.test("a bad certificate at startup fails in one clear line", function()
  local function fails(args, pattern, name)
    local code, err = server.run(args)
    t.is(code, 1, name .. ": exit 1")
    local lines = util.count_lines(err)
    t.is(lines, 1, name .. ": one line")
    t.like(err, pattern, name .. ": says why")
  end
  fails({ script, "-l", "tls://127.0.0.1:0", "--tls-cert", dir:path("no.pem"),
    "--tls-key", d.key }, "^coronet: tls: cannot read .*no%.pem: no such file",
    "unreadable")
  fails({ script, "-l", "tls://127.0.0.1:0", "--tls-cert", d.cert,
    "--tls-key", d.ec_key },
    "^coronet: tls: key .*ec%.key does not match certificate .*server%.pem\n$",
    "mismatched")
  local code, err = server.run { script, "-l", "tls://127.0.0.1:0" }
  t.is(code, 2, "no certificate: a usage error")
  t.like(err, "tls:// addresses need %-%-tls%-cert and %-%-tls%-key",
    "saying so")
  code, err = server.run { script, "-l", "tls://127.0.0.1:0", "--tls-cert",
    d.cert }
  t.is(code, 2, "a certificate without its key: a usage error")
  t.like(err, "each %-%-tls%-cert needs its %-%-tls%-key", "saying so")
end)

t.test("SIGHUP rotates certificates: new sessions get the new one, open "
  .. "ones keep theirs, a broken file keeps the old", function()
  local cert, key = dir:copy(d.cert, "rot.pem"), dir:copy(d.key, "rot.key")
  local r = scratch.start { script = dir:write("echo.lua",
    'local io_ = require "coronet.io"\n'
    .. 'return function(c) c:set_timeout(20) io_.copy(c, c) end\n'),
    listen = "tls://127.0.0.1:0", opts = { "--tls-cert", cert,
    "--tls-key", key } }
  local function dial()
    local c = assert(net.dial(r.addr, { ca = d.ca, sni = "localhost",
      timeout = 10 }))
    c:set_timeout(10)
    return c
  end
  local old = dial()
  t.is(old:tls().peer, "CN=localhost", "first the old certificate")
  dir:replace("rot.pem", certs.read(d.alt_cert))
  dir:replace("rot.key", certs.read(d.alt_key))
  r:signal("HUP")
  t.ok(r:wait_log("reloaded certificate .*rot%.pem"), "the log says reloaded")
  local new = dial()
  t.is(new:tls().peer, "CN=localhost-2", "a new session gets the new one")
  old:write("old\n")
  t.is(old:read_line(), "old", "the open session goes on")
  t.is(old:tls().peer, "CN=localhost", "with its certificate")
  dir:replace("rot.pem", "not a certificate\n")
  r:signal("HUP")
  t.ok(r:wait_log("reloading certificates failed, the old ones stay: tls: "
    .. "no certificate in .*rot%.pem"), "a broken file: the log says why")
  local third = dial()
  t.is(third:tls().peer, "CN=localhost-2", "and the last good one stays")
  for _, c in ipairs { old, new, third } do c:close() end
  t.is(scratch.stop(r), 0, "the server exits 0")
end)

t.test("the server exits cleanly", function()
  t.is(scratch.stop(s), 0, "exit 0")
end)

scratch.cleanup()
t.done()
