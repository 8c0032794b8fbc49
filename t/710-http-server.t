-- t/710-http-server.t: http.server with real clients (issue #10): curl
-- (keep-alive reuse, HEAD, chunked upload, 100-continue), Python's
-- http.client (pipelining, malformed requests), and a raw client for
-- keep-alive, pipelined batches in one writev, chunked and length-framed
-- responses, 204, Date, handler errors, body discard and the header,
-- idle and body timeouts.
local t = require "lib.tap"
local util = require "lib.util"
local server = require "lib.server"
local httpc = require "lib.httpc"
local ext = require "lib.ext"
local coronet = require "coronet"
local net = require "coronet.net"
local http = require "coronet.http"
local rep, format, concat = string.rep, string.format, table.concat

ext.need(t, "curl")
ext.need(t, "/usr/bin/python3")

local s = server.start { script = "t/lib/http_app.lua",
  args = { "header_timeout=1", "idle=1", "body_timeout=1", "discard=1000",
    "max_body=3000000", "write_timeout=1" } }
local base = "http://" .. s.addr
local host, port = s.addr:match("^(.*):(%d+)$")

local function curl(args, stdin)
  local argv = { "curl", "-sS", "--max-time", "20" }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  return ext.run(argv, stdin, 30)
end

local function python(args, stdin)
  local argv = { "/usr/bin/python3", server.path("t/py/http_raw.py"), host,
    port }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  return ext.run(argv, stdin, 30)
end

t.test("curl reuses one connection for two requests", function()
  local code, out, err = curl { "-v", base .. "/", base .. "/users/5" }
  t.is(code, 0, "curl succeeds")
  t.is(out, "hello\nuser 5\n", "both bodies")
  t.like(err, "Re%-using existing connection", "the second reuses the first's")
end)

t.test("curl HEAD gets GET's length and no body", function()
  local code, out = curl { "-i", "-I", base .. "/big/1234" }
  t.is(code, 0, "curl succeeds")
  t.like(out, "^HTTP/1%.1 200 OK\r\n", "200")
  t.like(out, "\r\nContent%-Length: 1234\r\n", "the GET's length")
  t.like(out, "\r\n\r\n$", "and no body")
end)

t.test("curl uploads a chunked body", function()
  local body = util.random_bytes(200000, 7)
  local code, out = curl({ "-H", "Transfer-Encoding: chunked",
    "--data-binary", "@-", base .. "/echo" }, body)
  t.is(code, 0, "curl succeeds")
  t.ok(out == body, "the body comes back whole (" .. #out .. " bytes)")
end)

t.test("curl's Expect: 100-continue gets a 100 before the body", function()
  local body = rep("z", 2000000)
  local code, out, err = curl({ "-v", "-H", "Expect: 100-continue",
    "--data-binary", "@-", base .. "/count" }, body)
  t.is(code, 0, "curl succeeds")
  t.like(err, "< HTTP/1%.1 100 Continue", "a 100 Continue came")
  t.is(out, "2000000\n", "the whole body was read")
end)

t.test("Python's http.client reads 16 pipelined responses in order",
  function()
    local code, out = python { "pipeline", "16" }
    t.is(code, 0, "python succeeds")
    local want = {}
    for i = 0, 15 do want[#want + 1] = "200 user " .. i end
    t.is(out, concat(want, "\n") .. "\n", "16 responses, in order")
  end)

t.test("Python's http.client sees malformed requests refused and closed",
  function()
    for _, case in ipairs {
      { "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n"
        .. "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "400" },
      { "GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n\tb\r\n\r\n", "400" },
      { "GET / HTTP/1.1\r\nHost: x\r\n" .. rep("X-Y: z\r\n", 2000) .. "\r\n",
        "431" },
      { "GET /" .. rep("a", 20000) .. " HTTP/1.1\r\nHost: x\r\n\r\n", "414" },
      { "GET / HTTP/3.0\r\nHost: x\r\n\r\n", "505" },
    } do
      local code, out = python({ "raw" }, case[1])
      t.is(code == 0 and out, case[2] .. "\nclosed\n",
        "python: " .. case[2] .. " then close for " .. util.show_bytes(case[1]))
    end
  end)

t.test("a pipelined batch is answered in one write", function()
  -- straight to the server: an edge relay splits what it writes
  local c = assert(net.dial(s.direct or s.addr, { timeout = 10 }))
  c:set_timeout(10)
  local reqs = {}
  for i = 1, 16 do reqs[i] = httpc.req("GET", "/users/" .. i) end
  c:write(concat(reqs))
  local got = c:read(65536)
  local n = 0
  for _ in (got or ""):gmatch("HTTP/1%.1 200 OK") do n = n + 1 end
  t.is(n, 16, "the first read holds all 16 responses")
  c:close()
end)

t.test("responses are chunked unless a length was set", function()
  local c = s:connect()
  c:write(httpc.req("GET", "/stream") .. httpc.req("GET", "/length"))
  local r = assert(httpc.read(c))
  t.is(r.headers["transfer-encoding"], "chunked", "chunked")
  t.is(r.body, "part 1\npart 2\npart 3\n", "three writes, one body")
  r = assert(httpc.read(c))
  t.is(r.headers["content-length"], "6", "Content-Length as set")
  t.is(r.headers["transfer-encoding"], nil, "not chunked")
  t.is(r.body, "abcdef", "two writes")
  c:close()
end)

t.test("an HTTP/1.0 stream ends at close", function()
  local c = s:connect()
  c:write("GET /stream HTTP/1.0\r\n\r\n")
  local r = assert(httpc.read(c))
  t.is(r.headers["transfer-encoding"], nil, "not chunked")
  t.is(r.body, "part 1\npart 2\npart 3\n", "the body up to the close")
  c:close()
end)

t.test("204 has no body and no length", function()
  local c = s:connect()
  c:write(httpc.req("GET", "/nocontent") .. httpc.req("GET", "/"))
  local r = assert(httpc.read(c))
  t.is(r.status, 204, "204")
  t.is(r.headers["content-length"], nil, "no Content-Length")
  r = httpc.read(c)
  t.is(r and r.body, "hello\n", "the next response follows at once")
  c:close()
end)

t.test("Date is an IMF-fixdate of now", function()
  local c = s:connect()
  c:write(httpc.req("GET", "/"))
  local r = assert(httpc.read(c))
  local http = require "coronet.http"
  local d = http.parse_date(r.headers.date)
  t.ok(d and math.abs(d - os.time()) <= 2, "Date " .. tostring(r.headers.date))
  c:close()
end)

t.test("a handler error gives 500 and one log line with the request line",
  function()
    local c = s:connect()
    c:write(httpc.req("GET", "/error?x=1"))
    local r = assert(httpc.read(c))
    t.is(r.status, 500, "500")
    t.ok(httpc.closed(c), "then close")
    local line = s:wait_log("http: GET /error%?x=1: ")
    t.like(line, "handler failed on purpose", "the error's message")
    t.ok(s:log():find("stack traceback:\n", 1, true), "and a traceback")
  end)

t.test("a handler error on a later request names that request", function()
  -- one protected call serves a connection's requests: the error of the
  -- second is still that request's 500 and log line
  local c = s:connect()
  c:write(httpc.req("GET", "/") .. httpc.req("GET", "/error?x=2"))
  local r1 = assert(httpc.read(c))
  t.is(r1.status, 200, "the first request is answered")
  local r2 = assert(httpc.read(c))
  t.is(r2.status, 500, "the second gets its 500")
  t.ok(httpc.closed(c), "then close")
  t.ok(s:wait_log("http: GET /error%?x=2: "), "logged with its request line")
end)

t.test("a handler error after the head closes the connection", function()
  local c = s:connect()
  c:write(httpc.req("GET", "/error-late"))
  local r, err = httpc.read(c)
  t.is(r, nil, "no complete response (" .. tostring(err) .. ")")
  t.ok(s:wait_log("handler failed after writing"), "logged")
end)

t.test("an unread small body is discarded and the connection kept", function()
  local c = s:connect()
  c:write(httpc.req("POST", "/ignore", nil, rep("b", 900))
    .. httpc.req("GET", "/"))
  t.is((httpc.read(c) or {}).body, "ignored\n", "the handler's answer")
  t.is((httpc.read(c) or {}).body, "hello\n", "the next request")
  c:close()
end)

t.test("an unread body past the discard limit ends the connection",
  function()
    local c = s:connect()
    c:write(httpc.req("POST", "/ignore", nil, rep("b", 5000)))
    t.is((httpc.read(c) or {}).body, "ignored\n", "the handler's answer")
    t.ok(httpc.closed(c), "then close")
  end)

t.test("a body over max_body is refused with 413", function()
  local c = s:connect()
  c:write("POST /echo HTTP/1.1\r\nHost: x\r\n"
    .. "Transfer-Encoding: chunked\r\n\r\n")
  local chunk = format("%x\r\n%s\r\n", 100000, rep("c", 100000))
  local r
  coronet.spawn(function()
    for _ = 1, 40 do
      if not c:write(chunk) then break end
    end
  end)
  r = httpc.read(c)
  t.is(r and r.status, 400, "the handler saw 'body too large'")
  t.is(r and r.body, "body too large\n", "its error")
  c:close()
end)

-- stalls(c, start, name) sends start, then a header line every 0.3 s,
-- and checks the 408 and close after the 1 s header timeout.
local function stalls(c, start, name)
  local t0 = coronet.now()
  c:write(start)
  coronet.spawn(function()
    for i = 1, 20 do
      coronet.sleep(0.3)
      if not c:write("X-Slow-" .. i .. ": 1\r\n") then break end
    end
  end)
  local r = httpc.read(c)
  t.is(r and r.status, 408, name .. ": 408 Request Timeout")
  t.ok(httpc.closed(c), "then close")
  local took = coronet.now() - t0
  t.ok(took > 0.9 and took < 3, format("after the 1 s limit (%.2f s)", took))
end

t.test("one header line every 0.3 s meets the header timeout", function()
  stalls(s:connect(), "GET / HTTP/1.1\r\n", "a head's lines")
end)

t.test("an idle kept-alive connection is closed after the idle time",
  function()
    local c = s:connect()
    c:write(httpc.req("GET", "/"))
    t.is((httpc.read(c) or {}).status, 200, "a first request")
    local t0 = coronet.now()
    t.ok(httpc.closed(c, 5), "then, idle, closed")
    local took = coronet.now() - t0
    t.ok(took > 0.8 and took < 3, format("after about 1 s (%.2f s)", took))
  end)

-- after a response the server parks for the next head through the FFI
-- (lcn_http_ffi_wait_head), not read_head: the same limits must hold
t.test("a kept-alive connection's next head, come late and in pieces, is "
  .. "served; one that stalls meets the header timeout", function()
    local c = s:connect()
    c:write(httpc.req("GET", "/"))
    t.is((httpc.read(c) or {}).status, 200, "a first request")
    coronet.sleep(0.3)
    local req = httpc.req("GET", "/users/7")
    for i = 1, #req, 5 do
      c:write(req:sub(i, i + 4))
      coronet.sleep(0.01)
    end
    local r = httpc.read(c)
    t.is(r and r.status, 200, "the second request, sent late in pieces")
    t.ok(r and r.body:find("7", 1, true), "its own answer")
    stalls(c, "GET / HTTP/1.1\r\nHost: x\r\n", "a third that stalls")
  end)

t.test("a body that stops coming meets the body timeout", function()
  local c = s:connect()
  c:write("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
  local r = httpc.read(c)
  t.is(r and r.body, "timeout\n", "the handler's read timed out")
  t.ok(httpc.closed(c), "then close")
end)

t.test("a connection that never sends is closed after the idle time",
  function()
    local c = s:connect()
    t.ok(httpc.closed(c, 5), "closed without a response")
  end)

t.test("a CR or LF in a header value raises: no response splitting",
  function()
    local c = s:connect()
    c:write(httpc.req("GET", "/split"))
    local r = httpc.read(c)
    t.is(r and r.status, 500, "500")
    t.is(r and r.headers["set-cookie"], nil, "no injected field")
    t.ok(s:wait_log("bad argument #2 to 'header'"), "the misuse is logged")
    c:close()
  end)

t.test("fields sent again and again are checked lines: still one each, "
  .. "still checked", function()
  local c = s:connect()
  for i = 1, 3 do
    c:write(httpc.req("GET", "/fields/ok"))
    local r = httpc.read(c) or { headers = {} }
    t.is(r.headers["x-same"], "v", "request " .. i .. ": X-Same once")
    t.is(r.headers["content-type"], "text/plain",
      "request " .. i .. ": Content-Type once")
  end
  c:write(httpc.req("GET", "/fields/late"))
  local r = httpc.read(c) or {}
  t.like(r.body or "", "^sent\nfalse .*the head was sent already",
    "a known field after the head still raises")
  c:write(httpc.req("GET", "/fields/bad"))
  r = httpc.read(c) or { headers = {} }
  t.is(r.status, 500, "a known name with a bad value still raises: 500")
  t.is(r.headers["x-evil"], nil, "and injects nothing")
  c:close()
  c = s:connect()
  c:write(httpc.req("GET", "/fields/close"))
  r = httpc.read(c) or { headers = {} }
  t.is(r.headers.connection, "close", "Connection: close after known fields")
  t.ok(httpc.closed(c), "and the connection ends")
end)

t.test("req:args decodes at most 100 arguments", function()
  local q = {}
  for i = 1, 150 do q[i] = format("a%03d=%d", i, i) end
  local c = s:connect()
  c:write(httpc.req("GET", "/args?x=1+2&y=%41&x=3&flag&" .. concat(q, "&")))
  local body = (httpc.read(c) or {}).body or ""
  local n = select(2, body:gsub("a%d%d%d=", ""))
  t.is(n, 96, "100 in all: x twice, y, flag and 96 more")
  t.like(body, "x=%[1 2,3%]", "a repeated name gives a list, + is a space")
  t.like(body, "y=A", "%41 is A")
  t.like(body, "flag=true", "a bare name is true")
  c:close()
end)

t.test("req.headers and req.body are made when first read, also late",
  function()
    local kept -- the first request, whose headers the second one reads
    local l = assert(net.listen("127.0.0.1:0", http.server(function(req, res)
      if req.path == "/keep" then
        kept = req
        return res:finish("kept\n")
      end
      local body = req:body()
      local same = rawequal(req.body, req.body)
        and rawequal(rawget(req, "body"), req.body)
      local fields = {}
      for k, v in pairs(req.headers) do fields[#fields + 1] = k .. "=" .. v end
      table.sort(fields)
      res:finish(format("%s|%s|%s|%s|%s\n", body, tostring(same),
        concat(fields, ","), req:header("X-Late"), kept.headers["x-kept"]))
    end)))
    local c = assert(net.dial(l:addr(), { timeout = 10 }))
    c:set_timeout(10)
    c:write("GET /keep HTTP/1.1\r\nHost: a\r\nX-Kept: yes\r\n\r\n"
      .. "POST /x HTTP/1.1\r\nHost: b\r\nX-Late: 1\r\nx-late:  2 \r\n"
      .. "Content-Length: 3\r\n\r\nabc")
    t.is((httpc.read(c) or {}).body, "kept\n", "the first request")
    t.is((httpc.read(c) or {}).body,
      "abc|true|content-length=3,host=b,x-late=1, 2|1, 2|yes\n",
      "the body, then every field, one Body object, and the headers of a "
      .. "request served before")
    c:close()
    l:close()
  end)

t.test("the head: a handler's Date replaces the server's, fields in order",
  function()
    local l = assert(net.listen("127.0.0.1:0", http.server(function(req, res)
      if req.path == "/dated" then
        res:header("Date", "Mon, 01 Jan 2001 00:00:00 GMT")
        res:header("X-A", "1")
      elseif req.path == "/many" then
        for i = 1, 12 do res:header("X-" .. i, i) end
      elseif req.path == "/stream" then
        res:write("o")
      end
      res:finish("ok\n")
    end)))
    local c = assert(net.dial(l:addr(), { timeout = 10 }))
    c:set_timeout(10)
    c:write("GET /dated HTTP/1.1\r\nHost: a\r\n\r\nGET /many HTTP/1.1\r\n"
      .. "Host: a\r\n\r\nGET /none HTTP/1.1\r\nHost: a\r\n\r\n"
      .. "GET /many HTTP/1.1\r\nHost: a\r\n\r\n")
    local got = {}
    while #got < 4 do
      local r = httpc.read(c)
      if not r then break end
      got[#got + 1] = r
    end
    local heads = {}
    for i = 1, 3 do
      heads[i] = got[i] and concat(got[i].raw_head, "\r\n") .. "\r\n\r\n"
        or ""
    end
    t.like(heads[1], "^HTTP/1%.1 200 OK\r\nDate: Mon, 01 Jan 2001 00:00:00 "
      .. "GMT\r\nX%-A: 1\r\nContent%-Length: 3\r\n\r\n$",
      "the handler's Date alone, then X-A, then the length")
    local want = {}
    for i = 1, 12 do want[i] = "X%-" .. i .. ": " .. i .. "\r\n" end
    t.like(heads[2], "^HTTP/1%.1 200 OK\r\nDate: [^\r]+ GMT\r\n"
      .. concat(want) .. "Content%-Length: 3\r\n\r\n$", "twelve fields in order")
    t.like(heads[3], "^HTTP/1%.1 200 OK\r\nDate: [^\r]+ GMT\r\n"
      .. "Content%-Length: 3\r\n\r\n$", "no field but the server's")
    -- the head's table is the connection's, emptied for each request
    c:write("GET /stream HTTP/1.1\r\nHost: a\r\n\r\n")
    local r = httpc.read(c)
    t.like(r and concat(r.raw_head, "\r\n") or "", "^HTTP/1%.1 200 OK\r\n"
      .. "Date: [^\r]+ GMT\r\nTransfer%-Encoding: chunked$",
      "after twelve fields, a streamed response's head has none")
    t.is(r and r.body, "ook\n", "and its body")
    c:close()
    l:close()
  end)

t.test("conn:write of a table of pieces keeps their order, small and large",
  function()
    -- pieces around the host's gathering buffer (2 KiB), and more pieces
    -- than one FFI call takes (16)
    local sizes = { { 3, 19, 2048, 1, 0, 2047, 5000, 7 }, { 2049 },
      { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1 },
      { 1000, 1000, 1000, 3 } }
    local want, batches = {}, {}
    for b, list in ipairs(sizes) do
      local t_ = {}
      for i, n in ipairs(list) do
        t_[i] = rep(string.char(64 + (b * 7 + i) % 26), n)
      end
      batches[b] = t_
      want[#want + 1] = concat(t_)
    end
    want = concat(want)
    local l = assert(net.listen("127.0.0.1:0", function(conn)
      for _, t_ in ipairs(batches) do
        local n, err = conn:write(t_)
        if n ~= #concat(t_) then conn:write("bad count " .. tostring(err)) end
      end
      conn:close()
    end))
    local c = assert(net.dial(l:addr(), { timeout = 10 }))
    c:set_timeout(10)
    local got = util.read_all(c, #want + 100)
    t.ok(got == want, format("the bytes in order (%d of %d)", #got, #want))
    c:close()
    l:close()
  end)

t.test("a chunk line over 4 KiB is a 400", function()
  local c = s:connect()
  c:write("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
    .. "\r\n\r\n5;" .. rep("e", 5000) .. "\r\nhello\r\n0\r\n\r\n")
  local r = httpc.read(c)
  t.is(r and r.status, 400, "400")
  t.is(r and r.body, "bad chunk\n", "the handler saw 'bad chunk'")
  c:close()
end)

t.test("trailers over 16 KiB are refused", function()
  local c = s:connect()
  c:write("POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked"
    .. "\r\n\r\n5\r\nhello\r\n0\r\nX-T: " .. rep("t", 17000)
    .. "\r\n\r\n")
  local r = httpc.read(c)
  t.is(r and r.body, "trailers too large\n", "the handler saw why")
  t.ok(httpc.closed(c), "then close")
end)

t.test("a client that stops reading meets the write timeout", function()
  local c = s:connect()
  c:write(httpc.req("GET", "/big/50000000"))
  coronet.sleep(2.5) -- the server's writes wait, 1 s at most
  c:set_timeout(5)
  local got, err = util.read_all(c, 60000000)
  t.ok(#got < 50000000, format("the response was cut (%d bytes, %s)", #got,
    tostring(err)))
end)

t.test("at shutdown, idle connections close and busy ones finish",
  function()
    local idle = s:connect()
    idle:write(httpc.req("GET", "/"))
    t.is((httpc.read(idle) or {}).status, 200, "an idle kept-alive connection")
    local busy = s:connect()
    busy:write(httpc.req("GET", "/sleep/500"))
    coronet.sleep(0.1)
    local t0 = coronet.now()
    s:signal("TERM")
    t.ok(httpc.closed(idle, 5), "the idle one closes at once")
    t.ok(coronet.now() - t0 < 0.5, "without waiting for the grace period")
    local r = httpc.read(busy)
    t.is(r and r.body, "slept 500\n", "the busy one gets its response")
    t.is(r and r.headers.connection, "close", "saying close")
    t.is(s:stop(), 0, "the server exits cleanly")
  end)

t.is(s:stop(), 0, "the server exits cleanly")
t.done()
