-- t/150-copy.t: io.copy on the host's fast paths: file -> socket -> file
-- (64 MiB, checked by hash), connection to connection (the pump), copy_n
-- with the pump's limit, backpressure and timeouts; and the example
-- scripts built on copy: scripts/proxy.lua and scripts/fileserver.lua.
local t = require "lib.tap"
local util = require "lib.util"
local kinds = require "lib.kinds"
local pair = require "lib.pair"
local server = require "lib.server"
local coronet = require "coronet"
local net = require "coronet.net"
local io = require "coronet.io"
local fs = require "coronet.fs"
local format, sub = string.format, string.sub

local MiB = 1048576
local base = coronet.stats()
local BIG = util.under_valgrind() and 8 or 64 -- MiB

local function spawn_wg(fn) return util.spawn_wg(fn, 120) end

-- hash_file returns the FNV-1a hash and the size of the file at p.
local function hash_file(p)
  local f = assert(fs.open(p))
  local h, n = nil, 0
  while true do
    local s = f:read(65536)
    if not s then break end
    h = util.fnv1a(s, h)
    n = n + #s
  end
  f:close()
  return h, n
end

t.test(format("copy of a %d MiB file to a socket to a file keeps every "
  .. "byte", BIG), function()
  local src, dst = kinds.path("src"), kinds.path("dst")
  local f = assert(fs.open(src, "w"))
  local want
  for i = 1, BIG do -- a different random MiB each time: order matters
    local block = util.random_bytes(MiB, i)
    want = util.fnv1a(block, want)
    assert(f:write(block) == MiB)
  end
  f:close()
  local c, s, l = pair.pair()
  local received = spawn_wg(function()
    local out = assert(fs.open(dst, "w"))
    local n, err = io.copy(out, s) -- connection -> file
    out:close()
    return n, err
  end)
  local in_ = assert(fs.open(src))
  local t0 = coronet.now()
  local sent, serr = io.copy(c, in_) -- file -> connection
  c:close_write()
  in_:close()
  local got, gerr = received()
  local dt = coronet.now() - t0
  t.is(sent, BIG * MiB, "copy file -> socket counts every byte")
  t.is(serr, nil, "without error")
  t.is(got, BIG * MiB, "copy socket -> file counts every byte")
  t.is(gerr, nil, "ending at eof")
  local h, size = hash_file(dst)
  t.is(size, BIG * MiB, "the copy has the size of the original")
  t.is(util.hex(h or 0), util.hex(want), "and its FNV-1a hash")
  fs.remove(src)
  fs.remove(dst)
  t.diag(format("  %d MiB in %.2f s (%.0f MiB/s)", BIG, dt, BIG / dt))
  c:close()
  l:close()
end, 300)

t.test("copy between connections moves everything, through the pump",
  function()
    local a1, a2, la = pair.pair()
    local b1, b2, lb = pair.pair()
    local s = util.random_bytes(8 * MiB, 17)
    local moved = spawn_wg(function()
      local n, err = io.copy(b1, a2) -- a2's input goes out on b1
      b1:close_write()
      return n, err
    end)
    local got = spawn_wg(function() return io.read_all(b2) end)
    local w = spawn_wg(function()
      local n = a1:write(s)
      a1:close_write()
      return n
    end)
    t.is(w(), #s, "written")
    local n, err = moved()
    t.is(n, #s, "copy counts every byte")
    t.is(err, nil, "and ends at eof")
    t.ok(got() == s, "the bytes arrive in order")
    a1:close()
    b1:close()
    la:close()
    lb:close()
  end)

t.test("copy between connections starts with what the source buffered",
  function()
    local a1, a2, la = pair.pair()
    local b1, b2, lb = pair.pair()
    a1:write("header\nbody and more")
    a1:close_write()
    t.is(a2:read_line(), "header", "a line read first")
    t.is(io.copy(b1, a2), 13, "copy moves the rest")
    b1:close_write()
    t.is(io.read_all(b2), "body and more", "the rest arrived")
    a1:close()
    b1:close()
    la:close()
    lb:close()
  end)

t.test("copy_n between connections stops at exactly n bytes", function()
  local a1, a2, la = pair.pair()
  local b1, b2, lb = pair.pair()
  local s = util.random_bytes(300000, 19)
  coronet.spawn(function() a1:write(s) end)
  t.is(io.copy_n(b1, a2, 100000), 100000, "copy_n returns n")
  b1:close_write()
  t.ok(io.read_all(b2) == sub(s, 1, 100000), "the first n bytes arrived")
  t.ok(io.read_full(a2, 200000) == sub(s, 100001), "the source keeps the "
    .. "rest")
  a1:close_write()
  local n, err = io.copy_n(b2, a2, 10)
  t.ok(n == 0 and err == "eof", "copy_n at the source's end: 0, eof")
  a1:close()
  b1:close()
  la:close()
  lb:close()
end)

t.test("file to a slow reader: copy waits for the socket to drain",
  function()
    local p = kinds.path("slow")
    local s = util.random_bytes(2 * MiB, 23)
    fs.write_file(p, s)
    local c, srv, l = pair.pair()
    local got = spawn_wg(function()
      local parts = {}
      while true do
        local x = srv:read(4096)
        if not x then break end
        parts[#parts + 1] = x
        if #parts % 64 == 0 then coronet.sleep(0.002) end
      end
      return table.concat(parts)
    end)
    local f = assert(fs.open(p))
    t.is(io.copy(c, f), #s, "every byte sent")
    c:close_write()
    f:close()
    t.ok(got() == s, "and received in order")
    fs.remove(p)
    c:close()
    l:close()
  end)

t.test("connection to file with a read timeout: copy returns timeout",
  function()
    local c, srv, l = pair.pair()
    srv:set_timeout(0.05)
    local p = kinds.path("timeout")
    local f = assert(fs.open(p, "w"))
    c:write("some")
    local n, err = io.copy(f, srv)
    t.is(n, 4, "what came was written")
    t.is(err, "timeout", "then timeout")
    f:close()
    t.is(fs.read_file(p), "some", "the file has it")
    fs.remove(p)
    c:close()
    l:close()
  end)

t.test("copy to a closed connection fails with closed", function()
  local p = kinds.path("closed")
  fs.write_file(p, "abc")
  local c, srv, l = pair.pair()
  c:close()
  local f = assert(fs.open(p))
  local n, err = io.copy(c, f)
  t.ok(n == 0 and err == "closed", "file -> closed connection")
  f:close()
  local g = assert(fs.open(p, "w"))
  n, err = io.copy(g, c)
  t.ok(n == 0 and err == "closed", "closed connection -> file")
  g:close()
  fs.remove(p)
  l:close()
end)

-- -- An echo handed to the host ---------------------------------------------

-- echo_server(handler) -> listener, the connections its handler saw
local function echo_server(handler)
  local seen = {}
  local l = assert(net.listen("127.0.0.1:0", function(conn)
    seen[#seen + 1] = conn
    return handler(conn)
  end))
  return l, seen
end

t.test("return io.copy(conn, conn) hands the echo to the host: the task "
  .. "ends, the echo goes on", function()
    local l, seen = echo_server(function(conn) return io.copy(conn, conn) end)
    util.settle() -- earlier tests' connections finish closing
    local tasks, conns = coronet.stats().tasks, coronet.stats().connections
    local c = assert(net.dial(l:addr()))
    c:write("ping\n")
    t.is(c:read_line(), "ping", "echoed")
    t.is(coronet.stats().tasks, tasks, "no task waits in the echo")
    t.is(coronet.stats().connections, conns + 2, "its connection stays open")
    local conn = seen[1]
    t.ok(conn:write("from the object\n"), "its Lua object still writes")
    t.is(c:read_line(), "from the object", "and that arrives")
    local n, err = conn:read()
    t.ok(n == nil and err == "busy reading", "reading it is busy, as while a "
      .. "task copies")
    seen[1], conn = nil, nil
    collectgarbage()
    collectgarbage()
    local s = util.random_bytes(4 * MiB, 23)
    local got = spawn_wg(function() return io.read_all(c) end)
    c:write(s)
    c:close_write()
    t.ok(got() == s, "after its object is collected, 4 MiB come back whole, "
      .. "then the end: the echo closed at the client's")
    c:close()
    util.settle()
    t.is(coronet.stats().connections, conns, "the server side closed too")
    l:close()
  end)

t.test("the host's echo ends with the connection, at either end",
  function()
    local l, seen = echo_server(function(conn) return io.copy(conn, conn) end)
    util.settle()
    local conns = coronet.stats().connections
    local c1 = assert(net.dial(l:addr()))
    local c2 = assert(net.dial(l:addr()))
    c1:write("a\n")
    c2:write("b\n")
    t.is(c1:read_line(), "a", "the first echoes")
    t.is(c2:read_line(), "b", "the second echoes")
    c1:close()
    util.settle()
    t.is(coronet.stats().connections, conns + 2, "the client's close closed "
      .. "its server side")
    seen[2]:close()
    local n, err = c2:read()
    t.ok(n == nil and err == "eof", "closing the object ends the echo")
    c2:close()
    util.settle()
    t.is(coronet.stats().connections, conns, "both server sides closed")
    l:close()
  end)

t.test("an echo with a time limit, or with more to do, keeps its task",
  function()
    local ended = {}
    local l1 = echo_server(function(conn)
      conn:set_timeout(0.1)
      return io.copy(conn, conn)
    end)
    local l2 = echo_server(function(conn)
      local n, err = io.copy(conn, conn)
      ended[#ended + 1] = n
      return n, err
    end)
    local tasks = coronet.stats().tasks
    local c1 = assert(net.dial(l1:addr()))
    local c2 = assert(net.dial(l2:addr()))
    c1:write("x")
    c2:write("y")
    t.is(c1:read(1), "x", "the timed echo echoes")
    t.is(c2:read(1), "y", "the other too")
    t.is(coronet.stats().tasks, tasks + 2, "both tasks wait in their copy")
    local n, err = c1:read()
    t.ok(n == nil and err == "eof", "the time limit still ends the first")
    c2:close_write()
    t.is(c2:read(), nil, "the second ends at the client's end")
    util.settle()
    t.is(ended[1], 1, "and its task went on after the copy")
    c1:close()
    c2:close()
    l1:close()
    l2:close()
  end)

-- -- The example scripts ---------------------------------------------------

t.test("scripts/proxy.lua joins clients to the upstream, both ways",
  function()
    local echo = server.start { script = server.path("scripts/echo.lua") }
    local proxy = server.start { script = server.path("scripts/proxy.lua"),
      args = { echo.addr } }
    for round = 1, 2 do -- twice: no state leaks between connections
      local c = proxy:connect()
      local s = util.random_bytes(4 * MiB, round)
      local got = spawn_wg(function() return io.read_all(c) end)
      c:write(s)
      c:close_write() -- passed on: echo ends, proxy closes
      local back = got()
      if not t.ok(back == s, "4 MiB echoed through the proxy, round "
        .. round) then
        t.diag(format("  got %d bytes of %d", back and #back or -1, #s))
      end
      c:close()
    end
    local c = proxy:connect()
    c:write("line\n")
    t.is(c:read_line(), "line", "a line protocol works too")
    c:close()
    t.is(proxy:stop(), 0, "the proxy exits cleanly")
    echo:stop()
  end)

t.test("scripts/proxy.lua refuses to start without an upstream", function()
  local code, err = server.run { "--run", server.path("scripts/proxy.lua") }
  t.isnt(code, 0, "a failure status")
  t.like(err, "no upstream", "and says why")
end)

t.test("scripts/fileserver.lua streams files with one copy", function()
  local dir = kinds.path("www")
  local mk = require("coronet.process").spawn { "mkdir", "-p", dir }
  mk:wait(10)
  local body = util.random_bytes(3 * MiB + 5, 29)
  fs.write_file(dir .. "/data.bin", body)
  local srv = server.start { script = server.path("scripts/fileserver.lua"),
    args = { dir } }
  local function get(target)
    local c = srv:connect()
    c:write("GET " .. target .. " HTTP/1.0\r\nHost: x\r\n\r\n")
    local status = c:read_line()
    local headers = {}
    while true do
      local h = c:read_line()
      if not h or h == "" then break end
      local k, v = h:match("^([^:]+):%s*(.*)$")
      if k then headers[k:lower()] = v end
    end
    local rest = io.read_all(c)
    c:close()
    return status, headers, rest
  end
  local status, h, got = get("/data.bin")
  t.is(status, "HTTP/1.1 200 OK", "200 for a file")
  t.is(tonumber(h["content-length"]), #body, "its length")
  t.ok(got == body, "every byte of it")
  t.like(get("/missing"), "^HTTP/1.1 404", "404 for a missing file")
  t.like(get("/"), "^HTTP/1.1 404", "404 for a directory")
  t.like(get("/../etc/passwd"), "^HTTP/1.1 404", "404 for .. (issue #10)")
  t.is(srv:stop(), 0, "the server exits cleanly")
  fs.remove(dir .. "/data.bin")
  require("coronet.process").spawn({ "rmdir", dir }):wait(10)
end)

t.test("no connection, block or task is left behind", function()
  util.check_clean(t, base)
end)

t.done()
