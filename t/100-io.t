-- t/100-io.t: coronet.io's helpers on every kind of Reader and Writer
-- (string reader, byte buffer, user tables with awkward pieces, file,
-- pipe, connection, bufio, limit and multi readers), with several sizes.
local t = require "lib.tap"
local kinds = require "lib.kinds"
local util = require "lib.util"
local coronet = require "coronet"
local io = require "coronet.io"
local bytes = require "coronet.bytes"
local format, sub = string.format, string.sub

local SIZES = { 0, 1, 4097, 40000 }
local base_tasks = coronet.stats().tasks

-- same(got, want, name, input) checks bytes and, on failure, says which
-- input it was.
local function same(got, want, name, input)
  if not t.is(got, want, name) then
    t.diag(format("  input: %s; got %s bytes, wanted %d", input,
      tostring(got and #got), #want))
  end
end

local function payload(n)
  return util.random_bytes(n, n + 7)
end

for _, n in ipairs(SIZES) do
  local s = payload(n)
  for _, rk in ipairs(kinds.readers) do
    for _, wk in ipairs(kinds.writers) do
      local input = format("%d bytes from a %s to a %s", n, rk.name, wk.name)
      t.test("copy moves " .. input, function()
        local r, done = rk.make(s)
        local w, finish = wk.make()
        local count, err = io.copy(w, r)
        t.is(count, n, "copy returns the count: " .. input)
        t.is(err, nil, "copy ends without error at eof: " .. input)
        same(finish(), s, "the writer got every byte in order: " .. input,
          input)
        done()
      end)
    end
  end
end

local s = payload(40000)
local head, rest = sub(s, 1, 1000), sub(s, 1001)

for _, rk in ipairs(kinds.readers) do
  local what = " (" .. rk.name .. ")"
  t.test("read_full returns exactly n bytes, then the rest" .. what, function()
    local r, done = rk.make(s)
    same(io.read_full(r, 1000), head, "read_full(1000)" .. what, rk.name)
    same(io.read_full(r, #rest), rest, "read_full(rest)" .. what, rk.name)
    local x, err = io.read_full(r, 1)
    t.is(x, nil, "read_full at the end gives nothing" .. what)
    t.is(err, "eof", "read_full at the end: eof" .. what)
    done()
  end)

  t.test("read_full short at eof returns unexpected eof and the partial"
    .. what, function()
    local r, done = rk.make(head)
    local x, err, partial = io.read_full(r, 1001)
    t.is(x, nil, "no result" .. what)
    t.is(err, "unexpected eof", "unexpected eof" .. what)
    same(partial, head, "the partial bytes come third" .. what, rk.name)
    done()
  end)

  t.test("read_all reads to the end" .. what, function()
    local r, done = rk.make(s)
    same(io.read_all(r), s, "read_all" .. what, rk.name)
    t.is(io.read_all(r), "", "read_all again: empty" .. what)
    done()
  end)

  t.test("limit_reader stops at exactly n bytes" .. what, function()
    local r, done = rk.make(s)
    local lr = io.limit_reader(r, 1000)
    same(io.read_all(lr), head, "the first 1000 bytes" .. what, rk.name)
    t.is(lr.n, 0, "nothing left in the limit" .. what)
    local x, err = lr:read(10)
    t.ok(x == nil and err == "eof", "then eof" .. what)
    same(io.read_all(r), rest, "the reader still has the rest" .. what,
      rk.name)
    done()
  end)

  t.test("copy_n copies n bytes and leaves the rest" .. what, function()
    local r, done = rk.make(s)
    local b = bytes.buffer()
    t.is(io.copy_n(b, r, 1000), 1000, "copy_n returns n" .. what)
    same(b:string(), head, "the first n bytes" .. what, rk.name)
    local b2 = bytes.buffer()
    local count, err = io.copy_n(b2, r, #rest + 5)
    t.is(count, #rest, "copy_n past the end returns what there was" .. what)
    t.is(err, "eof", "and eof" .. what)
    same(b2:string(), rest, "the rest" .. what, rk.name)
    done()
  end)

  t.test("tee_reader writes what it reads" .. what, function()
    local r, done = rk.make(s)
    local b = bytes.buffer()
    same(io.read_all(io.tee_reader(r, b)), s, "read through the tee" .. what,
      rk.name)
    same(b:string(), s, "the tee's writer got the same" .. what, rk.name)
    done()
  end)

  t.test("multi_reader joins readers" .. what, function()
    local r, done = rk.make(head)
    local r2, done2 = rk.make(rest)
    same(io.read_all(io.multi_reader(r, bytes.reader(""), r2)), s,
      "both in order" .. what, rk.name)
    done()
    done2()
  end)
end

for _, wk in ipairs(kinds.writers) do
  local what = " (" .. wk.name .. ")"
  t.test("multi_writer writes each string to every writer" .. what,
    function()
      local w, finish = wk.make()
      local b = bytes.buffer()
      local mw = io.multi_writer(w, b)
      t.is(mw:write(head), #head, "write returns the length" .. what)
      t.is(mw:write({ sub(rest, 1, 7), sub(rest, 8) }), #rest,
        "a table of fragments too" .. what)
      same(finish(), s, "the writer got both writes" .. what, wk.name)
      same(b:string(), s, "the buffer too" .. what, wk.name)
    end)

  t.test("tee_reader and copy_n write to it" .. what, function()
    local w, finish = wk.make()
    local r = io.tee_reader(bytes.reader(head), w)
    t.is(io.read_all(r), head, "read through" .. what)
    t.is(io.copy_n(w, kinds.chunked(rest, { 3 }), #rest), #rest,
      "copy_n" .. what)
    same(finish(), s, "the writer got both" .. what, wk.name)
  end)
end

-- Readers that return data together with an error.

t.test("every helper keeps data that comes with an error", function()
  local function r() return kinds.failing("abc", "boom") end
  local n, err = io.copy(bytes.buffer(), r())
  t.ok(n == 3 and err == "boom", "copy: 3 bytes then boom")
  local x, e2, partial = io.read_all(r())
  t.ok(x == nil and e2 == "boom" and partial == "abc",
    "read_all: nil, boom, abc")
  x, e2, partial = io.read_full(r(), 5)
  t.ok(x == nil and e2 == "boom" and partial == "abc",
    "read_full: nil, boom, abc")
  t.is(io.read_full(r(), 3), "abc", "read_full of exactly what came")
  local lr = io.limit_reader(r(), 10)
  t.is(lr:read(10), "abc", "limit_reader: the data first")
  t.is(select(2, lr:read(10)), "boom", "then the error")
  local mr = io.multi_reader(r(), bytes.reader("z"))
  t.is(mr:read(10), "abc", "multi_reader: the data first")
  t.is(select(2, mr:read(10)), "boom", "then the error, not the next reader")
  local b = bytes.buffer()
  local tr = io.tee_reader(r(), b)
  t.is(tr:read(10), "abc", "tee_reader: the data first")
  t.is(select(2, tr:read(10)), "boom", "then the error")
  t.is(b:string(), "abc", "the tee wrote the data")
  local empty = kinds.failing("", "boom")
  t.is(select(2, io.read_all(empty)), "boom", "an error with no data")
end)

t.test("eof that comes with data ends the copy cleanly", function()
  local n, err = io.copy(bytes.buffer(), kinds.chunked("abcdef", { 4 }, true))
  t.is(n, 6, "all six bytes")
  t.is(err, nil, "no error")
end)

t.test("a failing writer ends copy and multi_writer with its error",
  function()
    local bad = { write = function() return nil, "disk full" end }
    local n, err = io.copy(bad, bytes.reader("abc"))
    t.ok(n == 0 and err == "disk full", "copy: 0, disk full")
    local b = bytes.buffer()
    local x, e2 = io.multi_writer(b, bad):write("abc")
    t.ok(x == nil and e2 == "disk full", "multi_writer fails")
    local short = { write = function() return 1 end }
    t.is(select(2, io.multi_writer(short):write("abc")), "io: short write",
      "a short write is an error")
    local tr = io.tee_reader(bytes.reader("abc"), bad)
    t.is(select(2, tr:read(3)), "disk full", "tee_reader fails its read")
  end)

t.test("a reader that only returns empty strings is given up on", function()
  local calls = 0
  local r = { read = function() calls = calls + 1 return "" end }
  local n, err = io.copy(bytes.buffer(), r)
  t.ok(n == 0 and err and err:find("no progress"), "copy: no progress")
  t.cmp_ok(calls, "<=", 100, "after a bounded number of reads")
  t.like(select(2, io.read_all(r)), "no progress", "read_all too")
  t.like(select(2, io.read_full(r, 3)), "no progress", "read_full too")
end)

t.test("discard takes everything; EOF is eof", function()
  t.is(io.discard:write("abc"), 3, "discard:write returns the length")
  t.is(io.discard:write({ "ab", "c" }), 3, "fragments too")
  t.is(io.copy(io.discard, bytes.reader(s)), #s, "copy to discard")
  t.is(io.EOF, "eof", "EOF is the string eof")
end)

t.test("helpers raise on what is not a Reader or Writer", function()
  t.like(select(2, pcall(io.copy, {}, bytes.reader(""))), "Writer expected",
    "copy to a table without write")
  t.like(select(2, pcall(io.copy, bytes.buffer(), "abc")), "Reader expected",
    "copy from a string")
  t.like(select(2, pcall(io.read_full, bytes.reader(""), -1)),
    "count >= 0 expected", "read_full with a negative count")
  t.like(select(2, pcall(io.limit_reader, 5, 1)), "Reader expected",
    "limit_reader of a number")
end)

t.test("no task is left behind", function()
  t.ok(util.wait_until(function()
    return coronet.stats().tasks <= base_tasks + 1
  end, 5), "tasks back to where they were")
end)

t.done()
