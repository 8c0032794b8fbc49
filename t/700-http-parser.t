-- t/700-http-parser.t: the HTTP/1.1 request parser (host/cn_http.c) seen
-- from a raw client (issue #10): valid heads in every split, and the
-- request-smuggling battery: each hostile head gets its status and a
-- close, and nothing after it is served. Lines end in CRLF only: a lone
-- LF is refused everywhere (request line, fields, the end of the head,
-- chunk lines).
local t = require "lib.tap"
local util = require "lib.util"
local server = require "lib.server"
local relay = require "lib.relay"
local httpc = require "lib.httpc"
local rep, format = string.rep, string.format

local s = server.start { script = "t/lib/http_app.lua" }

-- exchange(raw [, addr]) sends raw bytes on a new connection and returns
-- the response and whether the server closed the connection after it.
local function exchange(raw, addr)
  local c = addr and assert(require("coronet.net").dial(addr)) or s:connect()
  c:set_timeout(10)
  c:write(raw)
  local r, err = httpc.read(c)
  local closed = r and httpc.closed(c, 5)
  c:close()
  return r, err, closed
end

-- refused(raw, status, name) checks that raw gets status and a close.
local function refused(raw, status, name)
  local r, err, closed = exchange(raw)
  if not t.is(r and r.status, status, name .. ": " .. status) then
    t.diag("  sent " .. util.show_bytes(raw) .. ", got " .. tostring(err))
  end
  t.ok(closed, name .. ": then the connection closes")
end

t.test("a plain GET is answered and the connection stays open", function()
  local c = s:connect()
  c:write(httpc.req("GET", "/info?a=1"))
  local r = assert(httpc.read(c))
  t.is(r.status, 200, "200")
  t.like(r.body, "method: GET\ntarget: /info%?a=1\npath: /info\nquery: a=1\n",
    "method, target, path and query")
  c:write(httpc.req("GET", "/"))
  r = assert(httpc.read(c))
  t.is(r and r.body, "hello\n", "a second request on the same connection")
  c:close()
end)

t.test("header names are lower-cased and repeated fields joined", function()
  local r = exchange("GET /info HTTP/1.1\r\nHost: x\r\nX-Thing: a\r\n"
    .. "x-thing: b\r\nACCEPT:  */* \r\n\r\n")
  t.like(r.body, "\naccept: %*/%*\n", "a value without its surrounding spaces")
  t.like(r.body, "\nx%-thing: a, b\n", "repeated fields joined with ', '")
end)

t.test("empty lines before a request line are skipped", function()
  local r = exchange("\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
  t.is(r and r.status, 200, "200")
end)

t.test("the path is percent-decoded, the query kept raw", function()
  local r = exchange(httpc.req("GET", "/info/%7Euser%20x?q=%20a+b"))
  t.is(r and r.status, 404, "routes see the decoded path")
  r = exchange(httpc.req("GET", "/users/a%20b"))
  t.is(r and r.body, "user a b\n", "a decoded capture")
  r = exchange(httpc.req("GET", "/users/a%2Fb"))
  t.is(r and r.status, 404, "an encoded slash is a slash: two segments")
  r = exchange(httpc.req("GET", "/info?q=%20a+b"))
  t.like(r and r.body, "query: q=%%20a%+b\n", "the query stays raw")
end)

t.test("an absolute-form target routes by its path", function()
  local r = exchange(httpc.req("GET", "http://example.com/users/7?x"))
  t.is(r and r.body, "user 7\n", "the path after the authority")
end)

t.test("HTTP/1.0 is answered and closed without keep-alive", function()
  local r, _, closed = exchange("GET / HTTP/1.0\r\n\r\n")
  t.is(r and r.status, 200, "200")
  t.is(r and r.version, "1.1", "the server speaks HTTP/1.1")
  t.ok(closed, "closed after the response")
end)

t.test("HTTP/1.0 with Connection: keep-alive keeps the connection", function()
  local c = s:connect()
  c:write("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
  local r = assert(httpc.read(c))
  t.is(r.headers.connection, "keep-alive", "the response says keep-alive")
  c:write("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
  r = httpc.read(c)
  t.is(r and r.status, 200, "a second request is served")
  c:close()
end)

t.test("framing fields among many others are read", function()
  local r, _, closed = exchange("GET / HTTP/1.0\r\nX-A: 1\r\nHist: 2\r\n"
    .. "connection: keep-alive\r\nUser-Agent: t\r\nAccept: */*\r\n\r\n")
  t.is(r and r.headers.connection, "keep-alive", "HTTP/1.0 kept alive")
  t.ok(not closed, "the connection stays open")
  r, _, closed = exchange("GET / HTTP/1.1\r\nX-A: 1\r\nHost: x\r\n"
    .. "Accept: */*\r\nConnection: close\r\n\r\n")
  t.is(r and r.headers.connection, "close", "a late Connection: close")
  t.ok(closed, "then the server closes")
end)

t.test("Connection: close is honoured", function()
  local r, _, closed = exchange(httpc.req("GET", "/",
    { Connection = "close" }))
  t.is(r and r.headers.connection, "close", "the response says close")
  t.ok(closed, "and the server closes")
end)

-- The smuggling battery: each gets its status, then a close; a valid
-- request behind it in the same segment is never answered.
local GET = "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
local battery = {
  { "Content-Length with Transfer-Encoding",
    "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
    .. "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400 },
  { "Transfer-Encoding with a space before the colon",
    "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n"
    .. "0\r\n\r\n", 400 },
  { "Transfer-Encoding whose last coding is not chunked",
    "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity"
    .. "\r\n\r\n0\r\n\r\n", 400 },
  { "chunked twice",
    "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
    .. "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400 },
  { "an unknown coding before chunked",
    "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked"
    .. "\r\n\r\n0\r\n\r\n", 501 },
  { "Transfer-Encoding in HTTP/1.0",
    "POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    400 },
  { "two different Content-Lengths",
    "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
    .. "Content-Length: 4\r\n\r\nabcd", 400 },
  { "a Content-Length list that disagrees",
    "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 4\r\n\r\nabcd", 400 },
  { "a signed Content-Length",
    "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc", 400 },
  { "obs-fold",
    "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", 400 },
  { "whitespace before the first field",
    "GET / HTTP/1.1\r\n Host: x\r\n\r\n", 400 },
  { "a NUL in a field value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n",
    400 },
  { "a NUL in a field name", "GET / HTTP/1.1\r\nHost: x\r\nX-\0A: a\r\n\r\n",
    400 },
  { "a bare CR in a field value",
    "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n", 400 },
  { "a lone LF ending the request line", "GET / HTTP/1.1\nHost: x\r\n\r\n",
    400 },
  { "a lone LF ending a field", "GET / HTTP/1.1\r\nHost: x\n\r\n", 400 },
  { "lone LFs throughout", "GET / HTTP/1.1\nHost: x\n\n", 400 },
  { "an invalid token in a field name",
    "GET / HTTP/1.1\r\nHost: x\r\nX(A): 1\r\n\r\n", 400 },
  { "an invalid token in the method", "G(T / HTTP/1.1\r\nHost: x\r\n\r\n",
    400 },
  { "a control byte in the target", "GET /a\1b HTTP/1.1\r\nHost: x\r\n\r\n",
    400 },
  { "two spaces in the request line", "GET  / HTTP/1.1\r\nHost: x\r\n\r\n",
    400 },
  { "no Host in HTTP/1.1", "GET / HTTP/1.1\r\n\r\n", 400 },
  { "two Host fields", "GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", 400 },
  { "an unknown major version", "GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505 },
  { "a malformed version", "GET / HTTP/1.10\r\nHost: x\r\n\r\n", 400 },
  { "an expectation other than 100-continue",
    "GET / HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\n\r\n", 417 },
  { "a bad percent escape in the path", "GET /a%zz HTTP/1.1\r\nHost: x\r\n\r\n",
    400 },
  { "an encoded NUL in the path", "GET /a%00 HTTP/1.1\r\nHost: x\r\n\r\n",
    400 },
  { "a Content-Length over the body limit",
    "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n", 413 },
  { "a request line of 1 MiB",
    "GET /" .. rep("a", 1024 * 1024) .. " HTTP/1.1\r\nHost: x\r\n\r\n", 414 },
  { "a method of 1 KiB", rep("G", 1024) .. " / HTTP/1.1\r\nHost: x\r\n\r\n",
    400 },
  { "2,000 header fields",
    "GET / HTTP/1.1\r\nHost: x\r\n" .. rep("X-A: 1\r\n", 2000) .. "\r\n", 431 },
  { "a header block over 16 KiB",
    "GET / HTTP/1.1\r\nHost: x\r\nX-A: " .. rep("a", 17000) .. "\r\n\r\n",
    431 },
  -- the scan notes where up to four framing fields are; past them, or
  -- for a name split between reads, every field is read again
  { "a second Host among names like framing ones",
    "GET / HTTP/1.1\r\nHost: x\r\nHist: 1\r\nEXPECX: 1\r\n"
    .. "Connectiom: close\r\nCONNECTION: x\r\nhOsT: y\r\n\r\n", 400 },
  { "a second Host as the fifth framing field",
    "GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n"
    .. "Content-Length: 0\r\nConnection: x\r\nHost: y\r\n\r\n", 400 },
  { "a bad expectation as the sixth framing field",
    "GET / HTTP/1.1\r\nHost: x\r\n" .. rep("Connection: x\r\n", 4)
    .. "Expect: nothing\r\n\r\n", 417 },
}

for _, case in ipairs(battery) do
  t.test("smuggling: " .. case[1], function()
    refused(case[2] .. GET, case[3], case[1])
  end)
end

t.test("identical Content-Length fields are one length", function()
  local r = exchange("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
    .. "Content-Length: 3\r\n\r\nabc")
  t.is(r and r.body, "abc", "the body of 3 bytes")
end)

t.test("a bad chunk size ends the request with 400", function()
  refused("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    .. "3x\r\nabc\r\n0\r\n\r\n" .. GET, 400, "junk after a chunk size")
  refused("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    .. "3\nabc\r\n0\r\n\r\n" .. GET, 400, "a chunk line ending in a lone LF")
  refused("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    .. "3\r\nabcd\r\n0\r\n\r\n" .. GET, 400, "chunk data longer than its size")
  refused("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    .. "fffffffffffffffff\r\n" .. GET, 400, "a chunk size past 2^60")
end)

t.test("chunk extensions and trailers are accepted and dropped", function()
  local r = exchange("POST /echo HTTP/1.1\r\nHost: x\r\n"
    .. "Transfer-Encoding: chunked\r\n\r\n3;name=\"v\"\r\nabc\r\n"
    .. "2 ; x\r\nde\r\n0\r\nX-Trailer: 1\r\n\r\n")
  t.is(r and r.body, "abcde", "the de-chunked body")
end)

-- The same requests, one byte per TCP segment: the parser sees every
-- split of every head.
local rl = relay.start(s.direct or s.addr, 0)

t.test("one byte per segment: a valid request with a chunked body",
  function()
    local body = httpc.chunked { "hello ", "chunked ", "world" }
    local r = exchange("POST /echo HTTP/1.1\r\nHost: x\r\n"
      .. "Transfer-Encoding: chunked\r\n\r\n" .. body, rl.addr)
    t.is(r and r.body, "hello chunked world", "the body arrives whole")
  end)

t.test("one byte per segment: hostile heads get the same statuses", function()
  for _, i in ipairs { 1, 2, 7, 10, 14, 16, 24, 34, 35, 36 } do
    local case = battery[i]
    local r = exchange(case[2], rl.addr)
    t.is(r and r.status, case[3], "relayed: " .. case[1])
  end
end)

t.test("nothing is left in the server's log but listening", function()
  t.is(s:log():match("listening on") and #s.lines, 1, "one line, no errors")
end)

rl.close()
t.is(s:stop(), 0, "the server exits cleanly")
t.done()
