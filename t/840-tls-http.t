-- t/840-tls-http.t: coronet.http over TLS: http.server on a tls://
-- listener (ALPN http/1.1) answers http.request("https://...") and curl;
-- the client checks certificates, keeps connections alive, and names a
-- failed check.
local t = require "lib.tap"
local util = require "lib.util"
local certs = require "lib.certs"
local scratch = require "lib.scratch"
local coronet = require "coronet"
local net = require "coronet.net"
local http = require "coronet.http"

certs.need("openssl", "curl")
local d = certs.make()
local base -- taken once http.server runs (it keeps a shutdown watcher)

local conns = {} -- server connection ids seen, in order
local l = assert(net.listen("tls://127.0.0.1:0", http.server(function(req, res)
  local i = req.conn:tls() or {}
  conns[#conns + 1] = req.conn:id()
  res:header("Content-Type", "text/plain")
  res:finish(req.method .. " " .. req.path .. " " .. tostring(i.version)
    .. " alpn=" .. tostring(i.alpn) .. " body=" .. (req:body() or ""))
end), { cert = d.cert, key = d.key, alpn = { "http/1.1" } }))
local port = l:addr():match(":(%d+)$")

t.test("http.request over https checks the certificate and gets the page",
  function()
  local res, err = http.request { url = "https://localhost:" .. port .. "/a",
    tls = { ca = d.ca }, timeout = 10, headers = { connection = "close" } }
  t.ok(res, "a response: " .. tostring(err))
  if not res then return end
  t.is(res.status, 200, "200")
  t.like(res:read_all(), "^GET /a TLSv1%.3 alpn=http/1%.1 body=$",
    "over TLS 1.3 with ALPN http/1.1")
  base = coronet.stats()
end)

t.test("a POST body goes through, and the connection is kept alive",
  function()
  local before = #conns
  for i = 1, 3 do
    local res = assert(http.request { method = "POST",
      url = "https://127.0.0.1:" .. port .. "/p", body = "n" .. i,
      tls = { ca = d.ca }, timeout = 10,
      headers = { connection = i == 3 and "close" or nil } })
    t.like(res:read_all(), "^POST /p .* body=n" .. i .. "$", "request " .. i)
  end
  t.is(conns[before + 2], conns[before + 3], "one connection serves the "
    .. "next requests")
end)

t.test("a connection checked one way is not reused by a request that "
  .. "checks another", function()
  local res = assert(http.request { url = "https://localhost:" .. port
    .. "/k", tls = { verify = false }, timeout = 10 })
  res:read_all()
  local res2, err = http.request { url = "https://localhost:" .. port
    .. "/k", timeout = 10 }
  t.is(res2, nil, "the request that checks does not get the unchecked "
    .. "connection")
  t.like(err, "unknown ca$", "it dials and checks")
  res = assert(http.request { url = "https://localhost:" .. port .. "/k",
    tls = { verify = false }, timeout = 10,
    headers = { connection = "close" } })
  res:read_all()
end)

t.test("https to a server whose certificate is not trusted fails, saying "
  .. "why", function()
  local res, err = http.request { url = "https://localhost:" .. port .. "/",
    timeout = 10 }
  t.is(res, nil, "no response")
  t.like(err, "tls: certificate verify failed: unknown ca$", "the cause")
  res, err = http.request { url = "https://127.0.0.1:" .. port .. "/",
    tls = { ca = d.ca, sni = "elsewhere.example" }, timeout = 10 }
  t.like(err, "hostname mismatch$", "a name the certificate is not for")
  res = http.request { url = "https://localhost:" .. port .. "/v",
    tls = { verify = false }, timeout = 10,
    headers = { connection = "close" } }
  t.ok(res and res.status == 200, "verify = false gets through")
  if res then res:read_all() end
end)

t.test("curl --cacert fetches from http.server over TLS", function()
  local code, out = certs.client { "curl", "-sS", "--max-time", "10",
    "--cacert", d.ca, "-d", "x=1", "https://localhost:" .. port .. "/c" }
  t.is(code, 0, "curl exits 0")
  t.like(out, "^POST /c TLSv1%.3 alpn=http/1%.1 body=x=1$", "the answer")
  code, out = certs.client { "curl", "-sS", "--max-time", "10", "--http1.1",
    "--tlsv1.2", "--tls-max", "1.2", "--cacert", d.ca,
    "https://localhost:" .. port .. "/c12" }
  t.like(out, "^GET /c12 TLSv1%.2 alpn=http/1%.1", "TLS 1.2 too")
end)

t.test("nothing is left: connections, blocks, tasks", function()
  t.is(http.pool_size(), 0, "no connection pooled")
  l:close()
  util.check_clean(t, base)
end)

scratch.cleanup()
t.done()
