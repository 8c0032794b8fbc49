-- t/130-bytes.t: coronet.bytes: the in-memory Buffer (a Reader and a
-- Writer) and the string Reader.
local t = require "lib.tap"
local util = require "lib.util"
local kinds = require "lib.kinds"
local io = require "coronet.io"
local bytes = require "coronet.bytes"
local sub, concat = string.sub, table.concat

t.test("a buffer reads back what was written, in order", function()
  local b = bytes.buffer("ab")
  t.is(b:len(), 2, "len of the initial string")
  t.is(b:write("cd"), 2, "write returns the length")
  t.is(b:write({ "e", "", "fg" }), 3, "a fragment table counts its bytes")
  t.is(b:len(), 7, "len counts every unread byte")
  t.is(b:read(1), "a", "read(1)")
  t.is(b:read(100), "b", "read returns what it has in hand (1..n)")
  t.is(b:read(3), "cde", "then what was written")
  t.is(b:string(), "fg", "string() is the unread rest")
  t.is(b:len(), 2, "string() does not consume")
  t.is(tostring(b), "fg", "tostring too")
  t.is(b:read(), "fg", "read() with no size")
  local x, err = b:read(1)
  t.ok(x == nil and err == "eof", "empty: eof")
  b:write("more")
  t.is(b:read(10), "more", "writing after eof: readable again")
end)

t.test("a buffer never returns an empty string", function()
  local b = bytes.buffer()
  b:write("")
  b:write({ "", "" })
  t.is(b:len(), 0, "empty writes add nothing")
  t.is(select(2, b:read(5)), "eof", "eof, not an empty string")
  t.is(b:string(), "", "string() of nothing")
end)

t.test("reset, truncate and next", function()
  local b = bytes.buffer("hello")
  b:write(" world")
  b:truncate(7)
  t.is(b:string(), "hello w", "truncate keeps the first n unread bytes")
  t.ok(not pcall(b.truncate, b, 8), "truncate past the end raises")
  t.is(b:next(3), "hel", "next(3)")
  t.is(b:next(100), "lo w", "next returns what there is")
  t.is(b:next(1), "", "next at the end: empty")
  b:write("x")
  b:reset()
  t.is(b:len(), 0, "reset empties")
  t.is(select(2, b:read(1)), "eof", "reset: eof")
end)

t.test("interleaved writes and reads of odd sizes keep every byte",
  function()
    local s = util.random_bytes(50000, 13)
    local b = bytes.buffer()
    local out, off, i = {}, 0, 0
    while off < #s or b:len() > 0 do
      i = i + 1
      if off < #s then
        local k = math.min(i * 7 % 300 + 1, #s - off)
        b:write(sub(s, off + 1, off + k))
        off = off + k
      end
      local x = b:read(i * 13 % 250 + 1)
      if x then out[#out + 1] = x end
    end
    t.ok(concat(out) == s, "every byte in order after " .. i .. " rounds")
  end)

t.test("buffer write_to and read_from", function()
  local b = bytes.buffer("abc")
  b:write("def")
  local calls = 0
  local w = { write = function(_, s)
    calls = calls + 1
    return #s
  end }
  t.is(b:write_to(w), 6, "write_to returns the count")
  t.is(calls, 1, "in one write")
  t.is(b:len(), 0, "and empties the buffer")
  local bad = { write = function() return nil, "nope" end }
  b:write("xyz")
  local n, err = b:write_to(bad)
  t.ok(n == 0 and err == "nope", "a failed write_to reports the error")
  t.is(b:string(), "xyz", "and keeps the bytes")
  local s = util.random_bytes(9000, 2)
  t.is(b:read_from(kinds.chunked(s, { 5, 1 })), #s, "read_from counts")
  t.ok(b:string() == "xyz" .. s, "and appends")
end)

t.test("a string reader reads, seeks and says its length", function()
  local r = bytes.reader("hello world")
  t.is(r:size(), 11, "size")
  t.is(r:read(5), "hello", "read(5)")
  t.is(r:len(), 6, "len is what is left")
  t.is(r:seek(), 5, "seek() tells the position")
  t.is(r:seek("set", 6), 6, "seek set")
  t.is(r:read(), "world", "read the rest")
  t.is(select(2, r:read(1)), "eof", "then eof")
  t.is(r:seek("end", -5), 6, "seek from the end")
  t.is(r:read(100), "world", "read after seek")
  t.is(r:seek("cur", -11), 0, "seek back to the start")
  t.ok(r:seek("cur", -1) == nil, "a negative position fails")
  t.is(r:seek("set", 100), 100, "past the end is allowed")
  t.is(select(2, r:read(1)), "eof", "and reads eof")
  t.is(r:len(), 0, "len is 0 there")
  r:reset("again")
  t.is(r:read(10), "again", "reset with a new string")
  t.ok(not pcall(r.seek, r, "bad"), "a bad whence raises")
  t.ok(not pcall(r.read, r, 0), "read(0) raises")
  t.ok(not pcall(bytes.reader, 5), "reader of a number raises")
  t.ok(not pcall(bytes.buffer, {}), "buffer of a table raises")
end)

t.test("a string reader's write_to writes the rest at once", function()
  local r = bytes.reader("abcdef")
  r:read(2)
  local b = bytes.buffer()
  t.is(io.copy(b, r), 4, "copy uses write_to")
  t.is(b:string(), "cdef", "the rest")
  t.is(io.copy(b, r), 0, "nothing more")
  t.is(bytes.reader(""):write_to(b), 0, "empty")
end)

t.test("an empty string reader is at eof at once", function()
  local x, err = bytes.reader(""):read(1)
  t.ok(x == nil and err == "eof", "eof")
end)

t.done()
