-- t/210-lines.t: read_line and read_until over the read chain: "\n" and
-- "\r\n", lines split across 16 KiB blocks, across many small writes and
-- across one-byte segments (t/lib/relay.lua), over-long lines, the last
-- piece at EOF.
local t = require "lib.tap"
local pair = require "lib.pair"
local relay = require "lib.relay"
local util = require "lib.util"
local coronet = require "coronet"
local net = require "coronet.net"

-- Bytes of data per 16 KiB block: 16384 less a small header whose size
-- the tests do not assume; they sweep every offset near the boundary.
local BLOCK = 16384
local SWEEP = util.under_valgrind() and 8 or 48 -- header sizes covered

-- through_relay() -> client, server, listener, relay: a pair whose bytes
-- pass one per segment.
local function through_relay(gap)
  local l = assert(pair.listen())
  local r = relay.start(l.addr, gap)
  local c = assert(net.dial(r.addr, { timeout = 10 }))
  local s = assert(l:accept())
  c:set_timeout(20)
  s:set_timeout(20)
  return c, s, l, r
end

local function done(c, l, r)
  if c then c:close() end
  l:close()
  if r then r.close() end
end

t.test("read_line drops \\n and one \\r before it", function()
  local c, s, l = pair.pair()
  c:write("plain\nwindows\r\ntwo\r\r\nmid\rdle\n\n\r\nlast")
  c:close_write()
  t.is(s:read_line(), "plain", "\\n line")
  t.is(s:read_line(), "windows", "\\r\\n line")
  t.is(s:read_line(), "two\r", "only one \\r is dropped")
  t.is(s:read_line(), "mid\rdle", "a \\r inside the line stays")
  t.is(s:read_line(), "", "an empty line")
  t.is(s:read_line(), "", "an empty \\r\\n line")
  t.is(s:read_line(), "last", "the last piece at eof, without newline")
  local v, err = s:read_line()
  t.is(v, nil, "then nil")
  t.is(err, "eof", "eof")
  done(c, l)
end)

t.test("a lone \\r at eof is returned as it is", function()
  local c, s, l = pair.pair()
  c:write("x\r")
  c:close_write()
  t.is(s:read_line(), "x\r", "the \\r of an unfinished line is kept")
  done(c, l)
end)

t.test("lines that straddle block boundaries come out whole", function()
  -- the server peeks the whole stream first, so that the read chain holds
  -- it from the start of a block: the end of the first line then falls on
  -- every position around the first block boundary in turn, \n and \r\n
  local bad, cases = 0, 0
  for n = BLOCK - SWEEP, BLOCK + 1 do
    for _, nl in ipairs { "\n", "\r\n" } do
      local c, s, l = pair.pair()
      local line1 = string.rep("a", n)
      local line2 = string.rep("b", BLOCK * 2 + 7) -- spans three blocks
      local stream = line1 .. nl .. line2 .. nl .. "c" .. nl
      coronet.spawn(function() c:write(stream) end)
      local whole = s:peek(#stream)
      local g1, g2, g3 = s:read_line(), s:read_line(), s:read_line()
      cases = cases + 1
      if not (whole and g1 == line1 and g2 == line2 and g3 == "c") then
        bad = bad + 1
        t.diag(string.format("first line of %d bytes + %s: got %s, %s, %s",
          n, nl == "\n" and "\\n" or "\\r\\n", tostring(g1 and #g1),
          tostring(g2 and #g2), tostring(g3)))
      end
      done(c, l)
    end
  end
  t.is(bad, 0, cases .. " streams with the first line ending at "
    .. (BLOCK - SWEEP) .. ".." .. (BLOCK + 1) .. ": every line whole")
end)

t.test("read_until finds a 4-byte delimiter split over two blocks", function()
  local bad, cases = 0, 0
  for n = BLOCK - SWEEP - 4, BLOCK do
    local c, s, l = pair.pair()
    local head = string.rep("h", n)
    local stream = head .. "\r\n\r\n" .. "body"
    coronet.spawn(function() c:write(stream) end)
    s:peek(#stream)
    local got, rest = s:read_until("\r\n\r\n"), s:read_full(4)
    cases = cases + 1
    if got ~= head or rest ~= "body" then
      bad = bad + 1
      t.diag("delimiter at offset " .. n .. ": got " .. tostring(got and #got))
    end
    done(c, l)
  end
  t.is(bad, 0, cases .. " positions of the delimiter around the boundary")
end)

t.test("lines of many lengths in one stream all come out", function()
  local c, s, l = pair.pair()
  local want, parts = {}, {}
  local len = 0
  for i = 1, 120 do
    len = (len * 7 + i * 331) % 40000
    local line = string.rep(string.char(97 + i % 26), len)
    want[i] = line
    parts[i] = line .. (i % 3 == 0 and "\r\n" or "\n")
  end
  coronet.spawn(function() c:write(parts); c:close_write() end)
  local bad = 0
  for i = 1, 120 do
    local got, err = s:read_line()
    if got ~= want[i] then
      bad = bad + 1
      if bad == 1 then
        t.diag(string.format("line %d: got %s (%s), want %d bytes", i,
          got and #got or "nil", tostring(err), #want[i]))
      end
    end
  end
  t.is(bad, 0, "120 lines of 0..40000 bytes, \\n and \\r\\n, all right")
  t.is(select(2, s:read_line()), "eof", "then eof")
  done(c, l)
end)

t.test("a line sent one byte per write is read whole", function()
  local c, s, l = pair.pair()
  local line = "one byte at a time, \r\n"
  coronet.spawn(function()
    for i = 1, #line do
      c:write(line:sub(i, i))
      coronet.yield() -- each write leaves on its own
    end
  end)
  t.is(s:read_line(), "one byte at a time, ", "whole line, \\r\\n dropped")
  done(c, l)
end)

t.test("many lines from many small writes, read as lines", function()
  local c, s, l = pair.pair()
  local n = 500
  coronet.spawn(function()
    for i = 1, n do
      local line = "line " .. i .. "\n"
      for j = 1, #line, 3 do
        c:write(line:sub(j, j + 2))
        if j % 2 == 1 then coronet.yield() end
      end
    end
  end)
  local bad = 0
  for i = 1, n do
    if s:read_line() ~= "line " .. i then bad = bad + 1 end
  end
  t.is(bad, 0, n .. " lines written 3 bytes at a time")
  done(c, l)
end)

t.test("a line of exactly max bytes is accepted", function()
  local c, s, l = pair.pair()
  c:write("12345\nabc\n")
  t.is(s:read_line(5), "12345", "5 bytes with max 5")
  t.is(s:read_line(5), "abc", "the next line")
  done(c, l)
end)

t.test("a line one byte over max fails and is discarded to its newline",
  function()
    local c, s, l = pair.pair()
    c:write("123456\nnext\n")
    local v, err = s:read_line(5)
    t.is(v, nil, "no line")
    t.is(err, "line too long", "line too long")
    t.is(s:read_line(5), "next", "the next line is intact")
    done(c, l)
  end)

t.test("an over-long line fails without waiting for its newline", function()
  local c, s, l = pair.pair()
  c:write(string.rep("x", 100))
  local v, err = s:read_line(50)
  t.is(err, "line too long", "fails once max is passed")
  -- the rest of the long line arrives later, then a good line
  coronet.spawn(function()
    c:write(string.rep("y", 70000))
    coronet.sleep(0.01)
    c:write("zzz\nafter\n")
  end)
  t.is(s:read_line(50), "after", "the whole long line was skipped")
  done(c, l)
end)

t.test("the default max is the read high-water mark (64 KiB)", function()
  local c, s, l = pair.pair()
  local ok_line = string.rep("k", 65536)
  coronet.spawn(function()
    c:write(ok_line .. "\n" .. string.rep("o", 65537) .. "\nshort\n")
  end)
  local got = s:read_line()
  t.is(got and #got, 65536, "a 64 KiB line is read")
  t.is(select(2, s:read_line()), "line too long", "64 KiB + 1 is too long")
  t.is(s:read_line(), "short", "then the next line")
  done(c, l)
end)

t.test("a \\r\\n line of exactly max bytes is accepted", function()
  -- max counts the line without its "\r\n"
  local c, s, l = pair.pair()
  c:write("12345\r\nabc\r\n")
  local v, err = s:read_line(5)
  t.is(v, "12345", "5 bytes + \\r\\n with max 5")
  if err then t.diag("error: " .. err) end
  t.is(s:read_line(5), "abc", "the next line")
  done(c, l)
end)

t.test("an over-long line cut short by eof leaves eof", function()
  local c, s, l = pair.pair()
  c:write(string.rep("x", 30))
  c:close_write()
  t.is(select(2, s:read_line(10)), "line too long", "too long")
  t.is(select(2, s:read_line(10)), "eof", "then eof")
  done(c, l)
end)

t.test("read_until at eof with a last piece past max fails once, then eof",
  function()
    -- regression: the too-long last piece (no delimiter, eof) was never
    -- consumed, so every later read_until failed with "line too long"
    local c, s, l = pair.pair()
    c:write("abcdefgh")
    c:close_write()
    t.is(select(2, s:read_until("\r\n\r\n", 5)), "line too long",
      "8 bytes then eof with max 5: too long")
    t.is(select(2, s:read_until("\r\n\r\n", 5)), "eof", "then eof")
    done(c, l)
  end)

t.test("a line of max bytes and a \r cut by eof: too long, then eof",
  function()
    local c, s, l = pair.pair()
    c:write("12345\r")
    c:close_write()
    t.is(select(2, s:read_line(5)), "line too long", "6 bytes at eof")
    t.is(select(2, s:read_line(5)), "eof", "then eof")
    done(c, l)
  end)

t.test("read_until returns the bytes before the delimiter", function()
  local c, s, l = pair.pair()
  c:write("key=value;a;;b\0c\0")
  t.is(s:read_until("="), "key", "1-byte delimiter")
  t.is(s:read_until(";"), "value", "consumed the delimiter")
  t.is(s:read_until(";"), "a", "next")
  t.is(s:read_until(";"), "", "empty piece between two delimiters")
  t.is(s:read_until("\0"), "b", "NUL delimiter")
  t.is(s:read_until("\0"), "c", "again")
  done(c, l)
end)

t.test("read_until with a delimiter that arrives in pieces", function()
  local c, s, l = pair.pair()
  coronet.spawn(function()
    for _, p in ipairs { "abc-", "-", "-E", "N", "--", "-EN", "D!" } do
      c:write(p)
      coronet.sleep(0.002)
    end
  end)
  t.is(s:read_until("--END"), "abc---EN-",
    "false starts, then a delimiter completed by later writes")
  t.is(s:read(), "!", "the byte after it")
  done(c, l)
end)

t.test("read_until with max fails past max", function()
  local c, s, l = pair.pair()
  c:write("aaaaaaaaaa|ok|")
  t.is(select(2, s:read_until("|", 5)), "line too long", "too long")
  t.is(s:read_until("|", 5), "ok", "the next piece")
  done(c, l)
end)

t.test("read_until checks its delimiter", function()
  local c, s, l = pair.pair()
  local ok, err = pcall(s.read_until, s, "")
  t.ok(not ok, "an empty delimiter raises")
  t.like(err, "delimiter must be 1 to 8 bytes", "saying why")
  ok = pcall(s.read_until, s, "123456789")
  t.ok(not ok, "a 9-byte delimiter raises")
  ok = pcall(s.read_line, s, -1)
  t.ok(not ok, "a negative max raises")
  done(c, l)
end)

t.test("lines pass through the one-byte relay", function()
  local c, s, l, r = through_relay()
  c:write("first\r\nsecond\n\nthird")
  c:close_write()
  t.is(s:read_line(), "first", "\\r\\n split into segments")
  t.is(s:read_line(), "second", "\\n line")
  t.is(s:read_line(), "", "empty line")
  t.is(s:read_line(), "third", "last piece at eof")
  t.is(select(2, s:read_line()), "eof", "eof passes the relay")
  done(c, l, r)
end)

t.test("an over-long line through the relay, then a good one", function()
  local c, s, l, r = through_relay(0.0001)
  c:write(string.rep("L", 40) .. "\r\nfine\r\n")
  t.is(select(2, s:read_line(20)), "line too long", "too long")
  t.is(s:read_line(20), "fine", "the next line")
  done(c, l, r)
end)

t.test("read_until through the relay", function()
  local c, s, l, r = through_relay(0.0001)
  c:write("HEAD\r\n\r\nBODY")
  t.is(s:read_until("\r\n\r\n"), "HEAD", "a 4-byte delimiter, byte by byte")
  t.is(s:read_full(4), "BODY", "then the body")
  done(c, l, r)
end)

t.test("replies to lines come back through the relay in both directions",
  function()
    local c, s, l, r = through_relay(0.0001)
    coronet.spawn(function()
      for line in s:lines() do s:write(line:upper() .. "\n") end
      s:close()
    end)
    for _, w in ipairs { "abc", "", "x y z" } do
      c:write(w .. "\n")
      t.is(c:read_line(), w:upper(), "reply to " .. util.show_bytes(w))
    end
    done(c, l, r)
  end)

-- issue #13: lines() raised on ordinary client behaviour
t.test("lines() ends without raising at a timeout; lines_error() says why",
  function()
    local l = assert(pair.listen())
    local c = assert(net.dial(l.addr, { timeout = 10 }))
    local s = assert(l:accept())
    s:set_timeout(0.1)
    c:write("one\ntwo\n")
    local got = {}
    local ok, err = pcall(function()
      for line in s:lines() do got[#got + 1] = line end
    end)
    t.ok(ok, "no error raised: " .. tostring(err))
    t.is(table.concat(got, ","), "one,two", "the lines before the timeout")
    t.is(s:lines_error(), "timeout", "lines_error() is the timeout")
    s:close()
    done(c, l)
  end)

t.test("lines() skips an over-long line as read_line does, and goes on",
  function()
    local l = assert(pair.listen())
    local c = assert(net.dial(l.addr, { timeout = 10 }))
    local s = assert(l:accept())
    s:set_timeout(10)
    c:write("short\n" .. string.rep("L", 50) .. "\nafter\n")
    c:close_write()
    local got = {}
    for line in s:lines(20) do got[#got + 1] = line end
    t.is(table.concat(got, ","), "short,after", "the long line is skipped")
    local e, skipped = s:lines_error()
    t.is(e, nil, "the loop ended at eof: no error")
    t.is(skipped, 1, "one line skipped")
    s:close()
    done(c, l)
  end)

t.test("lines() ends at a reset; lines_error() says so", function()
  local l = assert(pair.listen())
  local c = assert(net.dial(l.addr, { timeout = 10 }))
  local s = assert(l:accept())
  s:set_timeout(10)
  s:write("unread by the peer\n")
  c:write("hello\n")
  coronet.sleep(0.05)
  c:close() -- with unread bytes: the kernel sends a reset
  local got = {}
  local ok = pcall(function()
    for line in s:lines() do got[#got + 1] = line end
  end)
  t.ok(ok, "no error raised")
  t.is(got[1], "hello", "the line before it")
  local e = s:lines_error()
  t.ok(e == nil or e:find("reset"), "ended by the reset (or eof): "
    .. tostring(e))
  s:close()
  done(nil, l)
end)

t.test("a handler looping over lines() logs nothing when clients reset, "
  .. "time out or send an over-long line", function()
  local server = require "lib.server"
  local path = util.tmpfile([[
return function(conn)
  conn:set_timeout(0.2)
  for line in conn:lines(100) do conn:write(line .. "\n") end
end
]])
  local srv = server.start { script = path }
  local a = srv:connect()
  a:write("x\n")
  a:read_line()
  srv:connect() -- idles into the timeout
  local b = srv:connect()
  b:write(string.rep("y", 300) .. "\nok\n")
  t.is(b:read_line(), "ok", "the line after the over-long one is served")
  local r = srv:connect()
  r:write("z\n")
  coronet.sleep(0.05)
  r:close() -- "z\n" came back unread: a reset
  a:close()
  b:close()
  coronet.sleep(0.5)
  t.is(#srv.lines, 1, "nothing logged but the startup line")
  if #srv.lines > 1 then t.diag(srv:log()) end
  t.is(srv:stop(), 0, "exit 0")
  util.cleanup()
end)

t.test("no connection or block is left", function()
  t.ok(util.wait_until(function()
    local st = coronet.stats()
    return st.connections == 0 and st.blocks == 0
  end, 5), "connections and blocks back to zero")
end)

t.done()
