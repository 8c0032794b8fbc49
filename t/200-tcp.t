-- t/200-tcp.t: TCP (and unix socket) connections seen from both ends inside
-- one process: reads, writes, addresses, peek/buffered, busy reading,
-- close and half-close, listeners on every address kind, accepting many
-- pending connections at once.
local t = require "lib.tap"
local pair = require "lib.pair"
local util = require "lib.util"
local server = require "lib.server"
local coronet = require "coronet"
local net = require "coronet.net"
local sched = require "coronet.c.sched"

-- settle() waits until this worker's blocks and connections are back to
-- the given counts (closing takes a loop turn or two).
local function settle(conns, blocks)
  return util.wait_until(function()
    local s = coronet.stats()
    return s.connections <= conns and s.blocks <= blocks
  end, 5)
end

t.test("a dialed connection and its accepted end agree on addresses",
  function()
    local c, s, l = pair.pair()
    local cl, cr = c:local_addr(), c:remote_addr()
    local sl, sr = s:local_addr(), s:remote_addr()
    t.like(cl, "^127%.0%.0%.1:%d+$", "client local address is host:port")
    t.is(cr, l.addr, "client remote address is the listener's")
    t.is(sl, l.addr, "server local address is the listener's")
    t.is(sr, cl, "server remote address is the client's local address")
    t.cmp_ok(s:id(), ">", 0, "ids are positive")
    t.isnt(s:id(), c:id(), "each connection has its own id")
    t.like(tostring(s), "^coronet%.conn %d+$", "tostring names the id")
    c:close()
    l:close()
  end)

t.test("bytes written on one end are read on the other, binary safe",
  function()
    local c, s, l = pair.pair()
    local all = {}
    for i = 0, 255 do all[#all + 1] = string.char(i) end
    local bytes = table.concat(all) .. "\0\r\n\0"
    t.is(c:write(bytes), #bytes, "write returns the byte count")
    t.is(s:read_full(#bytes), bytes, "every byte value arrives unchanged")
    t.is(s:write(""), 0, "writing nothing returns 0")
    c:close()
    l:close()
  end)

t.test("read(n) returns at most n bytes and leaves the rest", function()
  local c, s, l = pair.pair()
  c:write("abcdef")
  t.is(s:peek(6), "abcdef", "all six arrived")
  t.is(s:read(2), "ab", "read(2)")
  t.is(s:read(100), "cdef", "read(100) returns what is there")
  local ok = pcall(s.read, s, 0)
  t.ok(not ok, "read(0) raises")
  c:close()
  l:close()
end)

t.test("writes that fit and writes that wait keep their order", function()
  -- a write that fits below the write high-water mark (64 KiB) is queued
  -- through the FFI; a larger one, or one after a larger one, waits in
  -- the host: the bytes still leave in the order they were written
  local c, s, l = pair.pair()
  local big = string.rep("b", 200000)
  local done
  coronet.spawn(function()
    local n1 = c:write("head:")
    local n2 = c:write(big)
    local n3 = c:write({ ":", "tail", 7 })
    done = { n1, n2, n3 }
  end)
  t.is(s:read_full(5 + #big + 6), "head:" .. big .. ":tail7",
    "small, large, then fragments arrive in order")
  t.ok(util.wait_until(function() return done end, 5), "the writer ended")
  t.is(table.concat(done, " "), "5 " .. #big .. " 6",
    "each write returned its length")
  t.ok(c:close_write(), "close_write")
  local n, err = c:write("late")
  t.is(n, nil, "a write after close_write fails")
  t.is(err, "closed", "as closed")
  local m, err2 = c:write({ "late", "r" })
  t.is(m, nil, "fragments too")
  t.is(err2, "closed", "as closed")
  t.is(s:read(), nil, "the peer sees EOF after the bytes written")
  c:close()
  s:close()
  l:close()
end)

t.test("write of a table of fragments sends them joined, in order",
  function()
    local c, s, l = pair.pair()
    local frags = { "GET ", "/", "", "index.html", " HTTP/1.0\r\n", 42, "\n" }
    t.is(c:write(frags), 29, "write returns the total length")
    t.is(s:read_full(29), "GET /index.html HTTP/1.0\r\n42\n",
      "fragments arrive joined, a number as its text")
    local big = {}
    for i = 1, 300 do big[i] = string.rep(string.char(64 + i % 26), i) end
    local want = table.concat(big)
    t.is(c:write(big), #want, "300 fragments, " .. #want .. " bytes")
    t.is(s:read_full(#want), want, "arrive joined")
    local ok, err = pcall(c.write, c, { "a", {}, "b" })
    t.ok(not ok, "a table inside the fragments raises")
    t.like(err, "fragment 2 is a table", "naming the fragment")
    t.is(c:write({}), 0, "an empty table writes nothing")
    c:close()
    l:close()
  end)

t.test("peek returns bytes without consuming them", function()
  local c, s, l = pair.pair()
  coronet.spawn(function()
    c:write("he")
    coronet.sleep(0.02)
    c:write("llo world")
  end)
  t.is(s:peek(5), "hello", "peek(5) waits for five bytes")
  t.is(s:peek(2), "he", "a smaller peek sees the same start")
  t.is(s:read(5), "hello", "read returns the peeked bytes")
  t.is(s:peek(0), "", "peek(0) is the empty string")
  t.is(s:read_full(6), " world", "the rest follows")
  c:close()
  l:close()
end)

t.test("buffered counts the bytes read from the peer and not consumed",
  function()
    local c, s, l = pair.pair()
    t.is(s:buffered(), 0, "nothing yet")
    c:write("0123456789")
    s:peek(10)
    t.is(s:buffered(), 10, "ten bytes after they arrived")
    s:read(4)
    t.is(s:buffered(), 6, "six after reading four")
    s:read_full(6)
    t.is(s:buffered(), 0, "zero after reading all")
    c:close()
    l:close()
    t.is(s:buffered(), 0, "a closed connection buffers nothing")
  end)

t.test("read_full waits for exactly n bytes across several writes",
  function()
    local c, s, l = pair.pair()
    coronet.spawn(function()
      for i = 1, 10 do
        c:write(tostring(i % 10))
        coronet.sleep(0.002)
      end
    end)
    t.is(s:read_full(10), "1234567890", "ten one-byte writes make one read")
    c:close()
    l:close()
  end)

t.test("read_full at EOF returns the partial bytes with unexpected eof",
  function()
    local c, s, l = pair.pair()
    c:write("abc")
    c:close_write()
    local v, err, partial = s:read_full(5)
    t.is(v, nil, "no value")
    t.is(err, "unexpected eof", "unexpected eof")
    t.is(partial, "abc", "the partial bytes come third")
    t.is(s:read(), "abc", "and stay buffered for the next read")
    t.is(select(2, s:read()), "eof", "then eof")
    c:close()
    l:close()
  end)

t.test("after the peer closes, reads drain the data then return eof",
  function()
    local c, s, l = pair.pair()
    c:write("last words")
    c:close()
    t.is(s:read_full(10), "last words", "data written before close arrives")
    local v, err = s:read()
    t.is(v, nil, "then nil")
    t.is(err, "eof", "eof")
    t.is(select(2, s:read()), "eof", "eof again on the next read")
    t.is(select(2, s:read_line()), "eof", "read_line at eof is eof too")
    l:close()
  end)

t.test("two tasks reading one connection: the second gets busy reading",
  function()
    local c, s, l = pair.pair()
    local first
    coronet.spawn(function() first = { s:read_line() } end)
    coronet.sleep(0.01) -- the spawned reader is parked now
    local v, err = s:read()
    t.is(v, nil, "the second read fails")
    t.is(err, "busy reading", "with busy reading")
    t.is(select(2, s:read_line()), "busy reading", "read_line too")
    t.is(select(2, s:peek(1)), "busy reading", "peek too")
    c:write("for the first\n")
    util.wait_until(function() return first end)
    t.is(first and first[1], "for the first", "the first reader got its line")
    c:write("x")
    t.is(s:read(1), "x", "reading works again once the first is done")
    c:close()
    l:close()
  end)

t.test("close wakes a parked reader with closed", function()
  local c, s, l = pair.pair()
  local got
  coronet.spawn(function() got = { s:read() } end)
  coronet.sleep(0.01)
  t.is(got, nil, "the reader is parked")
  s:close()
  util.wait_until(function() return got end)
  t.is(got and got[1], nil, "it woke with nil")
  t.is(got and got[2], "closed", "and closed")
  t.is(select(2, s:read()), "closed", "later reads: closed")
  t.is(select(2, s:write("x")), "closed", "writes: closed")
  t.is(select(2, s:close_write()), "closed", "close_write: closed")
  t.is(select(2, s:local_addr()), "closed", "local_addr: closed")
  t.is(s:remote_addr(), c:local_addr(), "remote_addr is still known, for logs")
  t.ok(s:close(), "a second close is harmless")
  local v, err = c:read()
  t.is(err, "eof", "the peer sees eof")
  c:close()
  l:close()
end)

t.test("close wakes a writer parked on a full write chain with closed",
  function()
    local c, s, l = pair.pair()
    local got, writes = nil, 0
    local chunk = string.rep("w", 65536)
    coronet.spawn(function()
      -- nobody reads c: s's write chain fills up and the writer parks
      for _ = 1, 1000 do
        writes = writes + 1
        local n, err = s:write(chunk)
        if not n then got = err; return end
      end
      got = "never parked"
    end)
    -- parked: the count of writes stops moving (kernel buffers are full)
    local last, still = -1, 0
    for _ = 1, 500 do
      coronet.sleep(0.01)
      if writes == last then still = still + 1 else still = 0 end
      last = writes
      if still >= 5 then break end
    end
    t.cmp_ok(still, ">=", 5, "the writer parked after " .. writes .. " writes")
    s:close()
    util.wait_until(function() return got end)
    t.is(got, "closed", "the parked writer woke with closed")
    c:close()
    l:close()
  end)

t.test("close_write sends eof to the peer and reading goes on", function()
  local c, s, l = pair.pair()
  c:write("request")
  t.ok(c:close_write(), "close_write returns true")
  t.is(util.read_all(s), "request", "the peer reads the bytes")
  t.is(select(2, s:read()), "eof", "then eof")
  t.is(select(2, c:write("more")), "closed", "writing after it fails: closed")
  t.is(select(2, c:close_write()), "closed", "a second close_write: closed")
  s:write("response")
  s:close()
  t.is(util.read_all(c), "response", "the half-closed side still reads")
  l:close()
end)

t.test("close_write waits for queued bytes before the eof", function()
  local c, s, l = pair.pair()
  local payload = util.random_bytes(1024 * 1024, 7)
  local got
  coronet.spawn(function() got = util.read_all(s) end)
  t.is(c:write(payload), #payload, "1 MiB queued")
  c:close_write()
  util.wait_until(function() return got end, 20)
  t.is(got and #got, #payload, "all of it arrived before the eof")
  t.ok(got == payload, "unchanged")
  c:close()
  l:close()
end)

t.test("bytes written just before close still reach the peer", function()
  local c, s, l = pair.pair()
  local payload = util.random_bytes(512 * 1024, 9)
  local got
  coronet.spawn(function() got = util.read_all(c) end)
  s:write(payload)
  s:close()
  util.wait_until(function() return got end, 20)
  t.is(got and #got, #payload, "all 512 KiB arrived")
  t.ok(got == payload, "unchanged")
  l:close()
end)

t.test("a handler's connection closes when the handler returns", function()
  local l = assert(net.listen("127.0.0.1:0", function(conn)
    conn:write("bye\n")
  end))
  local c = assert(net.dial(l:addr()))
  c:set_timeout(10)
  t.is(c:read_line(), "bye", "the reply arrives")
  t.is(select(2, c:read()), "eof", "then eof: the server side closed")
  c:close()
  l:close()
end)

t.test("conn:lines iterates lines until eof", function()
  local c, s, l = pair.pair()
  c:write("one\ntwo\r\n\nthree")
  c:close_write()
  local got = {}
  for line in s:lines() do got[#got + 1] = "[" .. line .. "]" end
  t.is(table.concat(got), "[one][two][][three]", "every line, the last without \\n")
  c:close()
  l:close()
end)

t.test("an idle connection holds no buffer block", function()
  local base = coronet.stats().blocks
  local c, s, l = pair.pair()
  c:write(string.rep("x", 40000))
  t.is(#s:read_full(40000), 40000, "40000 bytes read")
  s:write(string.rep("y", 40000))
  t.is(#c:read_full(40000), 40000, "40000 bytes back")
  t.ok(util.wait_until(function() return coronet.stats().blocks <= base end, 5),
    "once drained, the blocks went back to the pool")
  t.diag("blocks in use: " .. coronet.stats().blocks .. " (before: " .. base .. ")")
  c:close()
  l:close()
end)

t.test("dial to a closed port fails with a message naming it", function()
  local l = assert(net.listen("127.0.0.1:0", function() end))
  local addr = l:addr()
  l:close()
  local c, err = net.dial(addr, { timeout = 5 })
  t.is(c, nil, "no connection")
  t.is(err, "dial " .. addr .. ": connection refused", "the message")
end)

t.test("dial of a malformed address fails at once", function()
  local c, err = net.dial("no-port-here")
  t.is(c, nil, "no connection")
  t.like(err, "bad address 'no%-port%-here'", "names the address")
end)

t.test("a closed listener refuses new connections; accepted ones go on",
  function()
    local c, s, l = pair.pair()
    l.l:close()
    local c2, err = net.dial(l.addr, { timeout = 5 })
    t.is(c2, nil, "a new dial fails")
    t.like(err, "connection refused", "refused")
    c:write("still here\n")
    t.is(s:read_line(), "still here", "the old connection still works")
    c:close()
    l:close()
  end)

t.test("a unix:PATH listener serves and removes its socket file", function()
  local path = "/tmp/coronet-test-" .. util.pid() .. ".sock"
  os.remove(path)
  local c, s, l = pair.pair("unix:" .. path)
  t.is(l.addr, "unix:" .. path, "the listener's address")
  local ok = os.execute("test -S " .. path)
  t.ok(ok == 0 or ok == true, "it is a socket")
  c:write("over unix\n")
  t.is(s:read_line(), "over unix", "bytes go one way")
  s:write("and back\n")
  t.is(c:read_line(), "and back", "and the other")
  t.like(s:local_addr(), "^unix:", "the server's local address is unix:")
  c:close()
  t.is(select(2, s:read()), "eof", "eof after the client closes")
  l:close()
  util.wait_until(function()
    local r = os.execute("test -e " .. path)
    return not (r == 0 or r == true)
  end, 2)
  local r = os.execute("test -e " .. path)
  t.ok(not (r == 0 or r == true), "closing the listener removed the file")
  os.remove(path)
end)

t.test("a unix socket path left by a dead process is taken over", function()
  local path = "/tmp/coronet-test-" .. util.pid() .. "-stale.sock"
  os.remove(path)
  -- a listener whose file is left behind: a child binds it and is killed
  local script = util.tmpfile(
    'local net = require "coronet.net"\n' ..
    'assert(net.listen("unix:' .. path .. '", function() end))\n' ..
    'io.stdout:write("up\\n") io.stdout:flush()\n' ..
    'require("coronet").sleep(30)\n')
  local process = require "coronet.process"
  local p = assert(process.spawn { server.bin, "--run", script,
    stdout = "pipe" })
  p.stdout:set_timeout(10)
  t.is(p.stdout:read_line(), "up", "the child listens")
  p:kill("KILL")
  p:wait(10)
  local l, err = pair.listen("unix:" .. path)
  t.ok(l, "listening on the stale path works: " .. tostring(err))
  if l then
    local c = assert(net.dial(l.addr))
    t.ok(l:accept(), "and accepts")
    c:close()
    l:close()
  end
  os.remove(path)
  util.cleanup()
end)

t.test("an IPv6 [::1]:0 listener serves", function()
  local probe = net.listen("[::1]:0", function() end)
  if not probe then
    t.pass("skipped: ::1 is not available here")
    return
  end
  probe:close()
  local c, s, l = pair.pair("[::1]:0")
  t.like(l.addr, "^%[::1%]:%d+$", "the address is [::1]:PORT")
  t.is(c:remote_addr(), l.addr, "client's remote address")
  t.like(s:remote_addr(), "^%[::1%]:%d+$", "server's remote address in brackets")
  c:write("six\n")
  t.is(s:read_line(), "six", "bytes arrive")
  c:close()
  l:close()
end)

t.test("every pending connection is accepted when the listener is ready",
  function()
    local n = util.under_valgrind() and 50 or 300
    local turn, starts = 0, {}
    local l = assert(net.listen("127.0.0.1:0", function(conn)
      starts[#starts + 1] = turn
      conn:set_timeout(10)
      conn:read_line()
    end))
    local port = l:addr():match(":(%d+)$")
    local running = true
    coronet.spawn(function() -- counts loop turns
      while running do turn = turn + 1; coronet.yield() end
    end)
    coronet.sleep(0)
    -- a child process connects n times while this loop is blocked in
    -- os.execute, so all n wait in the kernel's accept queue at once
    local script = util.tmpfile(string.format([[
local net = require "coronet.net"
local conns = {}
for i = 1, %d do
  conns[i] = assert(net.dial("127.0.0.1:%s"))
  conns[i]:write("hello " .. i .. "\n")
end
]], n, port))
    local rc = os.execute(server.bin .. " --run " .. script)
    t.ok(rc == 0 or rc == true, "the child made " .. n .. " connections")
    local t0 = turn
    util.wait_until(function() return #starts >= n end, 10)
    running = false
    t.is(#starts, n, "all " .. n .. " were accepted")
    local last = 0
    for _, v in ipairs(starts) do last = math.max(last, v) end
    t.cmp_ok(last - t0, "<=", 3, "within a few loop turns, not one per turn")
    t.diag(string.format("handlers started within %d loop turns", last - t0))
    l:close()
    util.cleanup()
  end)

t.test("dial from a spawned task while another task waits", function()
  local c, s, l = pair.pair()
  local results = {}
  for i = 1, 5 do
    coronet.spawn(function()
      local x = assert(net.dial(l.addr))
      local y = l:accept()
      x:write("n" .. i .. "\n")
      results[i] = y:read_line()
      x:close()
    end)
  end
  util.wait_until(function() return #results == 5 end)
  local ok = true
  for i = 1, 5 do ok = ok and results[i] ~= nil end
  t.ok(ok, "five concurrent dial/accept pairs worked")
  c:close()
  l:close()
end)

t.test("an unreferenced connection is closed by the garbage collector",
  function()
    local l = assert(pair.listen())
    do
      local x = assert(net.dial(l.addr))
      x:write("hi\n")
    end
    local s = assert(l:accept())
    s:set_timeout(10)
    t.is(s:read_line(), "hi", "its bytes arrived")
    collectgarbage()
    collectgarbage()
    t.is(select(2, s:read()), "eof", "the peer sees eof after collection")
    l:close()
  end)

t.test("read_full and peek of more than the read high-water mark work",
  function()
    local c, s, l = pair.pair()
    local payload = util.random_bytes(1024 * 1024, 3)
    coronet.spawn(function() c:write(payload) end)
    t.is(#s:peek(100000), 100000, "peek(100000) waits past the 64 KiB mark")
    local got = s:read_full(#payload)
    t.is(got and #got, #payload, "read_full(1 MiB) returns 1 MiB")
    t.ok(got == payload, "unchanged")
    c:close()
    l:close()
  end)

t.test("a second writer while the first is parked gets busy writing",
  function()
    local c, s, l = pair.pair()
    local first, second
    coronet.spawn(function()
      -- nobody reads c: this write parks once the kernel buffers are full
      first = { s:write(string.rep("1", 64 * 1024 * 1024)) }
    end)
    local deadline = coronet.now() + 20
    repeat
      coronet.sleep(0.01)
      second = { s:write(string.rep("2", 100000)) }
    until second[1] == nil or first or coronet.now() > deadline
    t.is(second[2], "busy writing", "the second writer is refused")
    t.is(second[3], 0, "having queued nothing")
    c:close()
    util.wait_until(function() return first end)
    t.is(first and first[2], "reset", "the first fails once the peer is gone")
    l:close()
  end, 60)

t.test("writing to a peer that has gone fails with reset", function()
  local c, s, l = pair.pair()
  c:close()
  t.is(select(2, s:read()), "eof", "eof first")
  local err
  for _ = 1, 100 do
    local n, e = s:write("are you there?\n")
    if not n then err = e; break end
    coronet.sleep(0.005)
  end
  t.is(err, "reset", "a later write fails with reset")
  t.is(select(2, s:write("x")), "reset", "and every write after it")
  l:close()
end)

t.test("dial of a unix path that does not exist names it", function()
  local c, err = net.dial("unix:/nonexistent/coronet.sock")
  t.is(c, nil, "no connection")
  t.is(err, "dial unix:/nonexistent/coronet.sock: no such file or directory",
    "the message")
end)

-- issue #13: misuse of a blocking method said "bad argument #2 to 'raw'"
-- (or '?') at a line inside coronet
t.test("a bad argument to a connection method names the method and the "
  .. "caller's line", function()
  local l = assert(net.listen("127.0.0.1:0", function(c) c:read() end))
  local c = assert(net.dial(l:addr(), { timeout = 10 }))
  local f = assert(require("coronet.fs").open("/dev/null"))
  local here = debug.getinfo(1, "S").short_src
  for _, case in ipairs {
    { function() c:read("x") end, "read", "number expected, got string" },
    { function() c:read_line({}) end, "read_line", "number expected, got table" },
    { function() c:read_until(1) end, "read_until", "string expected, got number" },
    { function() c:read_full() end, "read_full", "number expected, got nil" },
    { function() c:write(nil) end, "write", "string expected, got nil" },
    { function() c:set_timeout("x") end, "set_timeout", "number expected" },
    { function() f:read("x") end, "read", "number expected, got string" },
    { function() f:seek({}) end, "seek", "string expected, got table" },
  } do
    local ok, err = pcall(case[1])
    t.ok(not ok, case[2] .. " raises")
    t.like(err, "^" .. here:gsub("%p", "%%%0") .. ":%d+: bad argument #1 to '"
      .. case[2] .. "' %(" .. case[3], case[2] .. ": " .. tostring(err))
  end
  f:close()
  c:close()
  l:close()
end)

-- cleanup: values of the right type that the host refuses said "bad
-- argument #2 to 'raw'" at a line inside coronet
t.test("a bad value to a connection or file method names the method and "
  .. "the caller's line", function()
  local l = assert(net.listen("127.0.0.1:0", function(c) c:read() end))
  local c = assert(net.dial(l:addr(), { timeout = 10 }))
  local f = assert(require("coronet.fs").open("/dev/null"))
  for _, case in ipairs {
    { function() c:read(-1) end, "read", "size must be positive" },
    { function() c:read_full(-1) end, "read_full", "size must not be negative" },
    { function() c:peek(-1) end, "peek", "size must not be negative" },
    { function() c:read_line(-1) end, "read_line",
      "maximum must not be negative" },
    { function() c:read_until("") end, "read_until",
      "delimiter must be 1 to 8 bytes" },
    { function() c:read_until("\n", -1) end, "read_until",
      "maximum must not be negative", 2 },
    { function() c:write({ "a", {} }) end, "write", "fragment 2 is a table" },
    { function() f:read(0) end, "read", "size must be positive" },
    { function() f:seek("middle") end, "seek", "invalid option 'middle'" },
    { function() f:write({ true }) end, "write", "fragment 1 is a boolean" },
  } do
    util.bad_arg(t, case[1], case[4] or 1, case[2], case[3], case[2])
  end
  f:close()
  c:close()
  l:close()
end)

t.test("no connection or block is left after the tests above", function()
  t.ok(settle(0, 0), "connections and blocks back to zero")
  local st = coronet.stats()
  t.is(st.connections, 0, "no connection")
  t.is(st.blocks, 0, "no block in use")
end)

t.done()
