-- t/120-bufio.t: bufio's Reader and Writer over awkward Readers (one byte
-- per read, odd pieces, data together with an error) and several buffer
-- sizes, compared with what string.find says; bufio over connections.
local t = require "lib.tap"
local kinds = require "lib.kinds"
local util = require "lib.util"
local pair = require "lib.pair"
local relay = require "lib.relay"
local coronet = require "coronet"
local net = require "coronet.net"
local io = require "coronet.io"
local bufio = require "coronet.bufio"
local bytes = require "coronet.bytes"
local find, sub, format, concat = string.find, string.sub, string.format,
  table.concat

local PIECES = { { 1 }, { 2 }, { 3, 1, 7 }, { 4096 } }
local BUFSIZES = { 16, 17, 64, 4096 }

-- split(s, d) is the reference: the pieces of s between each d, and what
-- follows the last d if it is not empty.
local function split(s, d, strip_cr)
  local out, pos = {}, 1
  while true do
    local i = find(s, d, pos, true)
    if not i then break end
    local piece = sub(s, pos, i - 1)
    if strip_cr and sub(piece, -1) == "\r" then piece = sub(piece, 1, -2) end
    out[#out + 1] = piece
    pos = i + #d
  end
  if pos <= #s then out[#out + 1] = sub(s, pos) end
  return out
end

-- read_each collects read_until (or read_line) results to the end.
local function read_each(br, d, max)
  local out = {}
  for _ = 1, 100000 do
    local x, err
    if d then x, err = br:read_until(d, max) else x, err = br:read_line(max) end
    if not x then
      out.err = err
      return out
    end
    out[#out + 1] = x
  end
  out.err = "too many"
  return out
end

local function same_list(got, want, name, input)
  local ok = #got == #want
  for i = 1, #want do ok = ok and got[i] == want[i] end
  if not t.ok(ok, name) then
    t.diag("  input: " .. input)
    t.diag(format("  got %d pieces, wanted %d", #got, #want))
    for i = 1, math.max(#got, #want) do
      if got[i] ~= want[i] then
        t.diag(format("  first difference at %d: got %s, wanted %s", i,
          t.show(got[i]), t.show(want[i])))
        break
      end
    end
  end
end

local text = concat({
  "first line\n", "\n", "crlf line\r\n", "\r\n", "a\rb\n",
  string.rep("long ", 300) .. "\n", "x<>y<><>z<", "<>", "tail no newline" })

for _, pieces in ipairs(PIECES) do
  for _, size in ipairs(BUFSIZES) do
    local input = format("pieces of %s bytes, buffer of %d",
      concat(pieces, ","), size)
    t.test("read_line matches string.find: " .. input, function()
      local br = bufio.reader(kinds.chunked(text, pieces), size)
      local got = read_each(br)
      same_list(got, split(text, "\n", true), "every line: " .. input,
        input .. "; text " .. t.show(text))
      t.is(got.err, "eof", "then eof: " .. input)
    end)
    t.test("read_until matches string.find: " .. input, function()
      for _, d in ipairs { "<>", "\n", "<><", "ne" } do
        local br = bufio.reader(kinds.chunked(text, pieces), size)
        local got = read_each(br, d)
        local shown = d:gsub("\n", "\\n")
        same_list(got, split(text, d), "delimiter " .. shown .. ": "
          .. input, input .. "; delimiter " .. shown)
      end
    end)
  end
end

t.test("read_line across many tiny reads of random lines", function()
  local lines = {}
  local rnd = util.random_bytes(20000, 9)
  for i = 1, 400 do
    local len = rnd:byte(i) % 60
    lines[i] = (sub(rnd, i * 40, i * 40 + len):gsub("[\r\n]", "."))
  end
  local s = concat(lines, "\n") .. "\n"
  for _, pieces in ipairs(PIECES) do
    local br = bufio.reader(kinds.chunked(s, pieces), 16)
    same_list(read_each(br), lines, "400 lines, pieces of "
      .. concat(pieces, ","), "pieces " .. concat(pieces, ","))
  end
end)

t.test("a line longer than max fails with line too long, then reading goes "
  .. "on", function()
  for _, pieces in ipairs(PIECES) do
    local input = "pieces of " .. concat(pieces, ",")
    local s = "12345\n" .. string.rep("x", 200) .. "\nafter\n123456\nend"
    local br = bufio.reader(kinds.chunked(s, pieces), 16)
    t.is(br:read_line(5), "12345", "exactly max is fine: " .. input)
    local x, err = br:read_line(5)
    t.ok(x == nil and err == "line too long", "too long: " .. input)
    t.is(br:read_line(5), "after", "the next line: " .. input)
    t.is(select(2, br:read_line(5)), "line too long",
      "max + 1 is too long: " .. input)
    t.is(br:read_line(5), "end", "the last piece: " .. input)
    t.is(select(2, br:read_line(5)), "eof", "then eof: " .. input)
  end
end)

t.test("a too long line that the end cuts short gives eof", function()
  local br = bufio.reader(kinds.chunked(string.rep("y", 100), { 7 }), 16)
  t.is(select(2, br:read_line(10)), "line too long", "too long")
  t.is(select(2, br:read_line(10)), "eof", "then eof")
end)

t.test("read_line keeps data that came with an error", function()
  local br = bufio.reader(kinds.failing("one\ntwo", "boom"), 16)
  t.is(br:read_line(), "one", "the complete line")
  local x, err, partial = br:read_line()
  t.ok(x == nil and err == "boom", "then the error")
  t.is(partial, "two", "with the unfinished line as partial")
  t.is(br:buffered(), 3, "which stays buffered")
  t.is(br:read(10), "two", "and can still be read")
end)

t.test("peek leaves bytes unread; buffered counts them", function()
  for _, pieces in ipairs(PIECES) do
    local input = "pieces of " .. concat(pieces, ",")
    local br = bufio.reader(kinds.chunked("abcdefghij", pieces), 16)
    t.is(br:peek(0), "", "peek(0): " .. input)
    t.is(br:peek(4), "abcd", "peek(4): " .. input)
    t.cmp_ok(br:buffered(), ">=", 4, "buffered: " .. input)
    t.is(br:read(2), "ab", "read after peek: " .. input)
    t.is(br:peek(8), "cdefghij", "peek to the end: " .. input)
    local x, err, partial = br:peek(9)
    t.ok(x == nil and err == "unexpected eof" and partial == "cdefghij",
      "peek past the end: unexpected eof and the partial: " .. input)
    t.is(io.read_all(br), "cdefghij", "the rest is still there: " .. input)
    t.is(select(2, br:peek(1)), "eof", "peek at the end: eof: " .. input)
  end
end)

t.test("peek more than the buffer size works", function()
  local s = util.random_bytes(1000, 1)
  local br = bufio.reader(kinds.chunked(s, { 3 }), 16)
  t.ok(br:peek(1000) == s, "peek(1000) with a 16 byte buffer")
  t.ok(io.read_all(br) == s, "then read it all")
end)

t.test("read returns buffered bytes first, large reads go straight through",
  function()
    local s = util.random_bytes(10000, 2)
    local calls = {}
    local inner = kinds.chunked(s, { 5000 })
    local spy = { read = function(_, n)
      calls[#calls + 1] = n
      return inner:read(n)
    end }
    local br = bufio.reader(spy, 100)
    t.is(br:read(10), sub(s, 1, 10), "a small read fills the buffer")
    t.is(calls[1], 100, "asking for the buffer size")
    t.is(br:read(1000), sub(s, 11, 100), "then the buffered rest")
    t.is(#br:read(1000), 1000, "a large read")
    t.is(calls[2], 1000, "goes straight to the reader")
    t.ok(not pcall(br.read, br, 0), "read(0) raises")
  end)

t.test("lines() iterates to the end; other errors are raised", function()
  local br = bufio.reader(bytes.reader("a\nb\r\nc"))
  local got = {}
  for line in br:lines() do got[#got + 1] = line end
  t.is(concat(got, "|"), "a|b|c", "three lines")
  local bad = bufio.reader(kinds.failing("a\nb", "boom"))
  local ok, err = pcall(function()
    for _ in bad:lines() do end
  end)
  t.ok(not ok and err:find("boom"), "an error is raised")
end)

t.test("bufio.reader of a connection is the connection", function()
  local c, s, l = pair.pair()
  t.is(bufio.reader(c), c, "the same object")
  s:write("one\r\ntwo<>three\n")
  t.is(bufio.reader(c):read_line(), "one", "read_line natively")
  t.is(bufio.reader(c):read_until("<>"), "two", "read_until natively")
  t.is(c:buffered(), 6, "buffered natively")
  c:close()
  l:close()
end)

t.test("bufio.reader of a bufio reader is itself", function()
  local br = bufio.reader(bytes.reader("x"), 64)
  t.is(bufio.reader(br, 64), br, "the same size: the same reader")
  t.is(bufio.reader(br, 32), br, "a smaller size too")
  t.isnt(bufio.reader(br, 128), br, "a larger size wraps it")
end)

t.test("read_line over a connection through a byte-at-a-time relay",
  function()
    local lines = { "alpha", "", "beta gamma", string.rep("z", 300) }
    local l = assert(net.listen("127.0.0.1:0", function(conn)
      for i = 1, #lines do conn:write(lines[i] .. "\r\n") end
      conn:write("last")
    end))
    local rl = relay.start(l:addr(), 0)
    local c = assert(net.dial(rl.addr))
    c:set_timeout(10)
    local br = bufio.reader(c)
    same_list(read_each(br), { lines[1], lines[2], lines[3], lines[4],
      "last" }, "every line", "through the relay")
    c:close()
    rl.close()
    l:close()
  end)

t.test("bufio reader over a connection wrapped by a limit reader", function()
  local c, s, l = pair.pair()
  s:write("a\nb\nc\nd\n")
  local br = bufio.reader(io.limit_reader(c, 4), 16)
  local got = read_each(br)
  t.is(concat(got, ","), "a,b", "two lines within the limit")
  t.is(c:read_line(), "c", "the connection keeps the rest")
  c:close()
  l:close()
end)

t.test("write_to sends the buffered bytes, then the rest", function()
  local s = util.random_bytes(5000, 4)
  for _, size in ipairs(BUFSIZES) do
    local br = bufio.reader(kinds.chunked(s, { 3 }), size)
    br:peek(10)
    local out = bytes.buffer()
    t.is(io.copy(out, br), #s, "copy counts everything: size " .. size)
    t.ok(out:string() == s, "in order: size " .. size)
  end
end)

-- -- Writer --------------------------------------------------------------

t.test("a writer gathers small writes and writes them in one call",
  function()
    local calls = {}
    local w = { write = function(_, s)
      calls[#calls + 1] = s
      return #s
    end }
    local bw = bufio.writer(w, 16)
    t.is(bw:write("abc"), 3, "write returns the length")
    t.is(bw:write({ "de", "f" }), 3, "a fragment table too")
    t.is(#calls, 0, "nothing written yet")
    t.is(bw:buffered(), 6, "six gathered")
    t.is(bw:available(), 10, "ten more fit")
    t.is(bw:write("0123456789"), 10, "filling it")
    t.is(#calls, 1, "one write")
    t.is(calls[1], "abcdef0123456789", "of everything gathered")
    t.is(bw:write(string.rep("L", 40)), 40, "a large write")
    t.is(#calls, 2, "goes straight through")
    bw:write("tail")
    t.is(bw:flush(), true, "flush")
    t.is(calls[3], "tail", "writes the rest")
    t.is(bw:flush(), true, "flushing nothing is fine")
    t.is(#calls, 3, "and writes nothing")
  end)

t.test("a failed write makes every later call fail", function()
  local n = 0
  local w = { write = function(_, s)
    n = n + 1
    if n == 1 then return #s end
    return nil, "disk full"
  end }
  local bw = bufio.writer(w, 16)
  bw:write(string.rep("a", 20))
  bw:write("b")
  local ok, err = bw:flush()
  t.ok(ok == nil and err == "disk full", "the flush fails")
  t.is(select(2, bw:write("c")), "disk full", "so does the next write")
  t.is(select(2, bw:flush()), "disk full", "and the next flush")
end)

t.test("several buffer sizes, many small writes: the bytes arrive in order",
  function()
    local s = util.random_bytes(30000, 8)
    for _, size in ipairs(BUFSIZES) do
      local out = bytes.buffer()
      local bw = bufio.writer(out, size)
      local off, i = 0, 0
      while off < #s do
        i = i + 1
        local k = math.min(i % 37 + 1, #s - off)
        bw:write(sub(s, off + 1, off + k))
        off = off + k
      end
      bw:flush()
      t.ok(out:string() == s, "buffer size " .. size)
    end
  end)

t.test("bufio.writer of a connection writes straight to its chain",
  function()
    local c, s, l = pair.pair()
    local bw = bufio.writer(c)
    t.is(bw:write("hello "), 6, "write")
    t.is(bw:write({ "wor", "ld\n" }), 6, "a fragment table")
    t.is(bw:flush(), true, "flush")
    t.is(s:read_line(), "hello world", "the bytes arrived")
    t.is(bufio.writer(bw), bw, "wrapping again is a no-op")
    c:close()
    l:close()
  end)

t.test("writer:read_from flushes, then copies", function()
  local out = bytes.buffer()
  local bw = bufio.writer(out, 64)
  bw:write("head:")
  t.is(io.copy(bw, kinds.chunked("body", { 1 })), 4,
    "copy into a bufio writer")
  t.is(out:string(), "head:body", "everything is written through")
  t.is(bw:buffered(), 0, "nothing stays gathered")
  bw:write("x")
  t.is(io.copy(bw, bytes.reader("yz")), 2, "copy from a Reader with write_to")
  t.is(bw:flush(), true, "which gathers; flush")
  t.is(out:string(), "head:bodyxyz", "in order")
end)

t.test("sizes are checked", function()
  t.ok(not pcall(bufio.reader, bytes.reader(""), 0), "reader size 0")
  t.ok(not pcall(bufio.writer, bytes.buffer(), -1), "writer size -1")
  t.ok(not pcall(bufio.reader, "abc"), "a string is not a Reader")
  t.ok(not pcall(bufio.reader(bytes.reader("")).read_until,
    bufio.reader(bytes.reader("")), ""), "an empty delimiter")
end)

t.done()
