-- t/730-http-client.t: http.request, the client (issue #10): against
-- coronet's own server and Python's http.server; Content-Length,
-- chunked and until-close bodies, string and Reader request bodies, HEAD,
-- the keep-alive pool (reuse, a stale pooled connection, Connection:
-- close), redirects off by default, timeouts and errors.
local t = require "lib.tap"
local util = require "lib.util"
local server = require "lib.server"
local ext = require "lib.ext"
local coronet = require "coronet"
local http = require "coronet.http"
local io = require "coronet.io"
local rep = string.rep

local s = server.start { script = "t/lib/http_app.lua", args = { "idle=0.5" } }
local base0 = coronet.stats() -- with the server's two pipes
local base = "http://" .. s.addr

local function get(path, o)
  o = o or {}
  o.url = base .. path
  local r, err = http.request(o)
  if not r then return nil, err end
  r.text = r:read_all()
  return r
end

t.test("a GET gets status, headers and body", function()
  local r = assert(get("/users/3"))
  t.is(r.status, 200, "200")
  t.is(r.reason, "OK", "reason")
  t.is(r.version, "1.1", "version")
  t.is(r.headers["content-length"], "7", "headers, lower-case")
  t.is(r.text, "user 3\n", "body")
end)

t.test("headers go out; a Host given replaces the client's own", function()
  local r = assert(get("/info", { headers = { ["X-Test"] = "yes",
    Host = "example.org" } }))
  t.like(r.text, "\nx%-test: yes\n", "X-Test")
  t.like(r.text, "\nhost: example.org\n", "Host: example.org")
  local ok = pcall(http.request, { url = base, headers = { X = "a\r\nb" } })
  t.ok(not ok, "a CR or LF in a value raises")
end)

t.test("keep-alive: the second request reuses the pooled connection",
  function()
    assert(get("/"))
    local n = http.pool_size()
    t.is(n, 1, "one idle connection in the pool")
    assert(get("/"))
    t.is(http.pool_size(), 1, "still one: it was reused")
  end)

t.test("a chunked response body is de-chunked", function()
  local r = assert(get("/stream"))
  t.is(r.headers["transfer-encoding"], "chunked", "chunked")
  t.is(r.text, "part 1\npart 2\npart 3\n", "the body")
end)

t.test("a string body is sent with its length", function()
  local body = util.random_bytes(100000, 3)
  local r = assert(get("/echo", { method = "POST", body = body }))
  t.ok(r.text == body, "it comes back whole")
end)

t.test("a Reader body is sent chunked", function()
  local body = rep("r", 50000)
  local r = assert(get("/echo", { method = "PUT",
    body = io.multi_reader(require("coronet.bytes").reader(body)) }))
  t.is(#r.text, 50000, "it comes back whole")
end)

t.test("HEAD and 204 have no body to read", function()
  local r = assert(get("/big/500", { method = "HEAD" }))
  t.is(r.headers["content-length"], "500", "HEAD: GET's length")
  t.is(r.text, "", "no body")
  r = assert(get("/nocontent"))
  t.is(r.status, 204, "204")
  t.is(r.text, "", "no body")
  t.is(assert(get("/")).text, "hello\n", "the connection goes on")
end)

t.test("redirects are not followed unless asked", function()
  local r = assert(get("/redirect"))
  t.is(r.status, 302, "302 by default")
  t.is(r.headers.location, "/users/9", "with its Location")
  r = assert(get("/redirect", { redirects = 3 }))
  t.is(r.status, 200, "followed when asked")
  t.is(r.text, "user 9\n", "to the new place")
end)

t.test("Connection: close keeps the connection out of the pool",
  function()
    http.close_idle()
    local r = assert(get("/close"))
    t.is(r.text, "bye\n", "the body")
    t.is(http.pool_size(), 0, "not pooled")
  end)

t.test("a pooled connection the server closed is replaced", function()
  assert(get("/"))
  coronet.sleep(1) -- the server's idle time (0.5 s) passes
  local r, err = get("/users/8")
  t.is(r and r.text, "user 8\n",
    "the request succeeds (" .. tostring(err) .. ")")
end)

t.test("the pool keeps at most pool.per_host idle connections a host",
  function()
    http.close_idle()
    local per_host = http.pool.per_host
    http.pool.per_host = 3
    local wg = coronet.waitgroup()
    for _ = 1, 6 do
      wg:add(1)
      coronet.spawn(function()
        get("/sleep/100")
        wg:done()
      end)
    end
    wg:wait(20)
    t.is(http.pool_size(), 3, "six at once, three kept")
    http.pool.per_host = per_host
  end)

t.test("a pooled connection idle past pool.idle is not reused", function()
  http.close_idle()
  local idle = http.pool.idle
  http.pool.idle = 0.1
  local r = assert(http.request { url = base .. "/" })
  local conn = r.body.e.conn
  r:read_all()
  coronet.sleep(0.3)
  r = assert(http.request { url = base .. "/" })
  t.ok(r.body.e.conn ~= conn, "a fresh connection")
  r:read_all()
  http.pool.idle = idle
end)

t.test("a slow answer meets the timeout", function()
  local t0 = coronet.now()
  local r, err = get("/sleep/2000", { timeout = 0.3 })
  t.is(r, nil, "no response")
  t.is(err, "timeout", "timeout")
  t.ok(coronet.now() - t0 < 1.5, "soon")
end)

t.test("errors: refused, bad URL, unsupported scheme", function()
  local l = assert(require("coronet.net").listen("127.0.0.1:0", function() end))
  local addr = l:addr()
  l:close()
  local r, err = http.request { url = "http://" .. addr .. "/" }
  t.is(r, nil, "refused: nil")
  t.like(err, "refused", "connection refused")
  r, err = http.request { url = "nonsense" }
  t.like(err, "^bad url", "a bad URL")
  r, err = http.request { url = "gopher://x/" }
  t.like(err, "unsupported scheme", "gopher")
  local ok = pcall(http.request, { url = base, method = "BAD METHOD" })
  t.ok(not ok, "a bad method raises")
end)

t.test("Python's http.server: an HTTP/1.0 answer ends at close", function()
  if not ext.need(t, "/usr/bin/python3") then return end
  local scratch = require "lib.scratch"
  local d = scratch.dir("pyhttp")
  d:write("f.txt", "from python\n")
  local p = ext.start { "/usr/bin/python3", "-u", "-m", "http.server",
    "--bind", "127.0.0.1", "--directory", d.root, "0" }
  p.stdout:set_timeout(10)
  local line = p.stdout:read_line() or ""
  local port = line:match("port (%d+)")
  t.ok(port, "python serves: " .. line)
  local r, err = http.request { url = "http://127.0.0.1:" .. port .. "/f.txt" }
  t.is(r and r:read_all(), "from python\n",
    "the file (" .. tostring(err) .. ")")
  t.is(http.pool_size("http://127.0.0.1:" .. port), 0, "HTTP/1.0: not pooled")
  p:kill()
  p:wait(5)
  p.stdout:close()
  p.stderr:close()
  d:remove()
end)

t.is(s:stop(), 0, "the server exits cleanly")
t.test("close_idle closes the pooled connections: nothing is left",
  function()
    http.close_idle()
    t.is(http.pool_size(), 0, "the pool is empty")
    util.check_clean(t, base0)
  end)
t.done()
