-- t/720-http-router.t: http.router() and r:static, and
-- scripts/fileserver.lua against a hostile client (issue #10): routes
-- with captures and "*", HEAD by GET routes, 404 and 405 with Allow;
-- files with Content-Type, Last-Modified, If-Modified-Since and Range;
-- and what the old file server got wrong: a symlink to /etc/passwd,
-- ".." and encoded dots, FIFOs that blocked the thread pool, 2,000
-- headers, one header every few seconds, EMFILE answered as 404.
local t = require "lib.tap"
local util = require "lib.util"
local server = require "lib.server"
local httpc = require "lib.httpc"
local scratch = require "lib.scratch"
local ext = require "lib.ext"
local coronet = require "coronet"
local net = require "coronet.net"
local process = require "coronet.process"
local rep, format = string.rep, string.format

ext.need(t, "curl")

local dir = scratch.dir("static")
local root = dir.root
local function sh(cmd)
  local p = assert(process.spawn { "sh", "-c", cmd, stdout = "null" })
  return p:wait(10) == 0
end
local big = util.random_bytes(1024 * 1024, 11)
dir:write("index.html", "<p>home</p>\n")
dir:write("a.txt", "0123456789abcdefghij")
dir:write("big.bin", big)
dir:write("style.css", "p{}")
assert(sh(format("cd %s && mkdir -p sub empty && echo sub > sub/b.txt && "
  .. "ln -s /etc/passwd passwd && ln -s /etc etc && ln -s a.txt inside && "
  .. "ln -s ../a.txt sub/up && mkfifo fifo", root)))

local s = server.start { script = "t/lib/http_app.lua",
  args = { "static=" .. root } }

local function get(target, headers, srv, method)
  local c = (srv or s):connect()
  c:write(httpc.req(method or "GET", target, headers))
  local r, err = httpc.read(c, method == "HEAD")
  c:close()
  return r or { status = "<" .. tostring(err) .. ">", headers = {} }
end

t.test("routes capture :name segments and a trailing *", function()
  t.is(get("/users/42").body, "user 42\n", ":id")
  t.is(get("/users/7/posts/9").body, "user 7 post 9\n", "two captures")
  t.is(get("/rest/a/b/c").body, "rest=a/b/c\n", "* takes the rest")
  t.is(get("/rest/").body, "rest=\n", "* may be empty")
  t.is(get("/users/").status, 404, "an empty :name does not match")
end)

t.test("HEAD is answered by GET routes, without a body", function()
  local r = get("/big/100", nil, nil, "HEAD")
  t.is(r.status, 200, "200")
  t.is(r.headers["content-length"], "100", "GET's length")
end)

t.test("an unknown path is 404, a known path with another method 405",
  function()
    t.is(get("/nowhere").status, 404, "404")
    local r = get("/users/1", nil, nil, "PUT")
    t.is(r.status, 405, "405")
    t.is(r.headers.allow, "DELETE, GET, HEAD", "Allow lists the methods")
  end)

t.test("static files carry Content-Type, length and Last-Modified",
  function()
    local r = get("/static/a.txt")
    t.is(r.body, "0123456789abcdefghij", "the file")
    t.like(r.headers["content-type"], "^text/plain", "text/plain")
    t.like(get("/static/style.css").headers["content-type"], "^text/css",
      "text/css")
    t.like(r.headers["last-modified"], "^%a%a%a, %d%d %a%a%a %d+ .* GMT$",
      "Last-Modified")
    t.is(get("/static/").body, "<p>home</p>\n", "a directory's index.html")
    t.is(get("/static/empty/").status, 404, "a directory without one")
    t.is(get("/static/inside").body, "0123456789abcdefghij",
      "a symlink that stays inside is followed")
    t.is(get("/static/sub/up").body, "0123456789abcdefghij",
      "also through ..")
  end)

t.test("If-Modified-Since gives 304 for a file not changed since",
  function()
    local lm = get("/static/a.txt").headers["last-modified"]
    local r = get("/static/a.txt", { ["If-Modified-Since"] = lm })
    t.is(r.status, 304, "304")
    t.is(r.body, "", "no body")
    r = get("/static/a.txt",
      { ["If-Modified-Since"] = "Thu, 01 Jan 1970 00:00:00 GMT" })
    t.is(r.status, 200, "an older date gets the file")
  end)

t.test("a single Range gets 206 and those bytes", function()
  local r = get("/static/a.txt", { Range = "bytes=2-5" })
  t.is(r.status, 206, "206")
  t.is(r.body, "2345", "bytes 2 to 5")
  t.is(r.headers["content-range"], "bytes 2-5/20", "Content-Range")
  t.is(get("/static/a.txt", { Range = "bytes=-3" }).body, "hij", "a suffix")
  t.is(get("/static/a.txt", { Range = "bytes=15-" }).body, "fghij",
    "to the end")
  r = get("/static/a.txt", { Range = "bytes=30-40" })
  t.is(r.status, 416, "past the end: 416")
  t.is(r.headers["content-range"], "bytes */20", "with the size")
  t.is(get("/static/a.txt", { Range = "bytes=0-1,4-5" }).status, 200,
    "several ranges: the whole file")
  r = get("/static/big.bin", { Range = "bytes=1000000-1000009" })
  t.ok(r.body == big:sub(1000001, 1000010), "a range deep in a large file")
end)

t.test("a 1 MiB file arrives whole through curl", function()
  local code, out = ext.run({ "curl", "-sS", "http://" .. s.addr
    .. "/static/big.bin" }, nil, 30)
  t.is(code, 0, "curl succeeds")
  t.ok(out == big, "every byte (" .. #out .. ")")
end)

-- The hostile client, against scripts/fileserver.lua.
local fsrv = server.start { script = "scripts/fileserver.lua",
  args = { root, "header_timeout=1" } }

local function curl_status(args)
  local argv = { "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}",
    "--max-time", "20" }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local _, out = ext.run(argv, nil, 30)
  return out
end

t.test("fileserver: a symlink to /etc/passwd is not served", function()
  local base = "http://" .. fsrv.addr
  t.is(curl_status { base .. "/passwd" }, "404", "the link: 404")
  t.is(curl_status { base .. "/etc/passwd" }, "404", "a linked directory: 404")
  t.is(curl_status { base .. "/a.txt" }, "200", "a plain file: 200")
end)

t.test("fileserver: .. and encoded dots do not leave the root", function()
  local base = "http://" .. fsrv.addr
  for _, p in ipairs { "/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd",
    "/sub/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd", "/sub/..%2f..%2fetc/passwd",
    "/.%2e/.%2e/etc/passwd", "/sub/.." } do
    local st = curl_status { "--path-as-is", base .. p }
    t.ok(st == "404" or st == "400", p .. ": " .. st)
  end
end)

t.test("fileserver: FIFO requests are 404 at once and block no thread",
  function()
    local wg, statuses = coronet.waitgroup(), {}
    local t0 = coronet.now()
    for i = 1, 8 do
      wg:add(1)
      coronet.spawn(function()
        statuses[i] = get("/fifo", nil, fsrv).status
        wg:done()
      end)
    end
    wg:wait(20)
    local all = true
    for i = 1, 8 do all = all and statuses[i] == 404 end
    t.ok(all, "eight FIFO requests: all 404")
    t.ok(coronet.now() - t0 < 5, "at once")
    t.is(get("/a.txt", nil, fsrv).status, 200, "a file after them: 200")
    t.is(get("/static/fifo").status, 404, "the router too")
  end)

t.test("fileserver: 2,000 headers get 431, not a reset", function()
  local args = {}
  for i = 1, 2000 do
    args[#args + 1] = "-H"
    args[#args + 1] = "X-Many-" .. i .. ": 1"
  end
  args[#args + 1] = "http://" .. fsrv.addr .. "/a.txt"
  t.is(curl_status(args), "431", "curl sees 431")
end)

t.test("fileserver: one header line at a time meets the header timeout",
  function()
    local c = fsrv:connect()
    local t0 = coronet.now()
    c:write("GET /a.txt HTTP/1.1\r\nHost: x\r\n")
    coronet.spawn(function()
      for i = 1, 30 do
        coronet.sleep(0.4)
        if not c:write("X-" .. i .. ": 1\r\n") then break end
      end
    end)
    local r = httpc.read(c)
    t.is(r and r.status, 408, "408 once the head has taken 1 s")
    t.ok(httpc.closed(c), "then close")
    t.ok(coronet.now() - t0 < 4, "long before its headers stop")
  end)

t.test("out of file descriptors, a static file request gets 503", function()
  -- Accepting pauses before descriptors run out (a reserve stays free for
  -- the work of connections already accepted), so it takes a handler that
  -- holds many files to leave none for the next open.
  local small = server.start { script = "t/lib/http_app.lua",
    args = { "static=" .. root },
    prefix = { "sh", "-c", 'ulimit -n 48; exec "$@"', "sh" } }
  local c = small:connect()
  c:write(httpc.req("GET", "/hog/100"))
  local r = httpc.read(c)
  local held = tonumber(r and r.body)
  t.ok(held and held > 10 and held < 48, "a handler held "
    .. tostring(held) .. " files, until the descriptors ran out")
  c:write(httpc.req("GET", "/static/a.txt"))
  r = httpc.read(c)
  t.is(r and r.status, 503, "a file request then gets 503, not 404")
  t.is(r and r.headers["retry-after"], "1", "with Retry-After")
  c:write(httpc.req("GET", "/unhog"))
  t.is(httpc.read(c).status, 200, "the files are closed")
  c:write(httpc.req("GET", "/static/a.txt"))
  r = httpc.read(c)
  t.is(r and r.status, 200, "then the file is served again")
  c:close()
  t.is(small:stop(), 0, "that server exits cleanly")
end)

t.test("fileserver: out of descriptors, new clients wait instead of failing",
  function()
    local small = server.start { script = "scripts/fileserver.lua",
      args = { root },
      prefix = { "sh", "-c", 'ulimit -n 48; exec "$@"', "sh" } }
    local conns, stuck = {}, nil
    for _ = 1, 60 do
      local c = assert(net.dial(small.addr))
      c:set_timeout(0.5)
      c:write(httpc.req("GET", "/a.txt"))
      local r = httpc.read(c)
      if not r then
        stuck = c
        break
      end
      t.is(r.status, 200, "client " .. (#conns + 1) .. " is served")
      conns[#conns + 1] = c
    end
    t.ok(stuck ~= nil, "accepting paused after " .. #conns .. " connections")
    for i = 1, 4 do conns[i]:close() end
    if stuck then
      stuck:set_timeout(10)
      local r = httpc.read(stuck)
      t.is(r and r.status, 200, "once some close, the waiting one is served")
      stuck:close()
    end
    for i = 5, #conns do conns[i]:close() end
    t.is(small:stop(), 0, "that server exits cleanly")
  end)

t.test("json_api: create, read, update, delete", function()
  local ok, cjson = pcall(require, "cjson")
  if not ok then
    if os.getenv("CI") then t.fail("lua-cjson is installed") end
    return t.pass("# SKIP lua-cjson is not installed")
  end
  local api = server.start { script = "scripts/json_api.lua" }
  local c = api:connect()
  local function call(method, target, body, headers)
    c:write(httpc.req(method, target, headers, body))
    local r = httpc.read(c) or { status = 0, body = "" }
    r.json = r.body ~= "" and cjson.decode(r.body) or nil
    return r
  end
  local r = call("POST", "/notes", '{"text":"buy milk"}',
    { ["Content-Type"] = "application/json" })
  t.is(r.status, 201, "201 Created")
  t.ok(r.json and r.json.id == 1 and r.json.text == "buy milk", "the note")
  t.is(r.headers.location, "/notes/1", "its Location")
  r = call("GET", "/notes")
  t.ok(r.json and #r.json == 1 and r.json[1].text == "buy milk", "listed")
  r = call("PUT", "/notes/1", '{"text":"oat milk"}')
  t.ok(r.json and r.json.text == "oat milk", "updated")
  t.is(call("POST", "/notes", "{nope").status, 400, "bad JSON: 400")
  t.is(call("DELETE", "/notes/1").status, 204, "deleted")
  t.is(call("GET", "/notes/1").status, 404, "then gone")
  t.is(call("GET", "/notes").body, "[]\n", "an empty list is []")
  c:close()
  t.is(api:stop(), 0, "json_api exits cleanly")
end)

t.is(fsrv:stop(), 0, "the file server exits cleanly")
t.is(s:stop(), 0, "the server exits cleanly")
dir:remove()
scratch.cleanup()
t.done()
