-- t/110-pipe.t: io.pipe between tasks: synchronous hand-over, a writer
-- faster than its reader, closing either end (with and without an error),
-- several writers and readers, pipes inside copies.
local t = require "lib.tap"
local util = require "lib.util"
local pair = require "lib.pair"
local coronet = require "coronet"
local io = require "coronet.io"
local bytes = require "coronet.bytes"
local concat, sub, format = table.concat, string.sub, string.format

local base_tasks = coronet.stats().tasks

-- spawn_wg runs fn in a task; the returned function waits for its end and
-- returns what fn returned.
local spawn_wg = util.spawn_wg

t.test("a write returns only once the reader took all of it", function()
  local r, w = io.pipe()
  local taken = 0
  local done = spawn_wg(function()
    while true do
      local s = r:read(3)
      if not s then return end
      taken = taken + #s
      coronet.sleep(0.001)
    end
  end)
  local total = 0
  for i = 1, 20 do
    local piece = string.rep(string.char(64 + i), i)
    t.is(w:write(piece), i, "write returns the length")
    total = total + i
    if taken ~= total then
      t.fail("write " .. i .. " returned before its bytes were read",
        format("  taken %d of %d", taken, total))
    end
  end
  w:close()
  done()
  t.is(taken, total, "the reader took every byte")
end)

t.test("a writer faster than its reader: every byte, in order", function()
  local r, w = io.pipe()
  local s = util.random_bytes(300000, 11)
  local wrote = spawn_wg(function()
    local off, i = 0, 0
    while off < #s do -- pieces of 1..4096 bytes, as fast as it can
      i = i + 1
      local k = math.min((i * 997) % 4096 + 1, #s - off)
      local n, err = w:write(sub(s, off + 1, off + k))
      if n ~= k then return nil, err end
      off = off + k
    end
    w:close()
    return off
  end)
  local parts, reads = {}, 0
  while true do -- small reads, with a pause now and then
    local x, err = r:read(333)
    if not x then
      t.is(err, "eof", "the reader ends with eof")
      break
    end
    reads = reads + 1
    parts[#parts + 1] = x
    if reads % 100 == 0 then coronet.sleep(0.001) end
  end
  t.is(wrote(), #s, "the writer wrote everything")
  local got = concat(parts)
  if not t.ok(got == s, "the reader got every byte in order") then
    t.diag(format("  got %d bytes of %d", #got, #s))
  end
end)

t.test("closing the writer: eof, or the error given", function()
  local r, w = io.pipe()
  local done = spawn_wg(function() return w:write("abc") end)
  t.is(r:read(10), "abc", "the bytes first")
  t.is(done(), 3, "the write finished")
  w:close()
  t.is(select(2, r:read(10)), "eof", "then eof")
  t.is(select(2, r:read(10)), "eof", "and eof again")
  t.is(select(2, w:write("x")), "closed", "writing after close: closed")
  local r2, w2 = io.pipe()
  w2:close("upstream broke")
  t.is(select(2, r2:read(10)), "upstream broke", "close(err): the reader "
    .. "gets err")
  t.is(w2:close(), true, "closing twice is fine")
end)

t.test("closing the reader: the writer gets closed, or the error given",
  function()
    local r, w = io.pipe()
    local done = spawn_wg(function() return w:write("abcdef") end)
    t.is(r:read(2), "ab", "part of the write")
    r:close()
    local n, err, taken = done()
    t.ok(n == nil and err == "closed", "the parked write fails with closed")
    t.is(taken, 2, "and says how much was taken")
    t.is(select(2, w:write("x")), "closed", "later writes fail at once")
    t.is(select(2, r:read(1)), "closed", "reading a closed reader: closed")
    local r2, w2 = io.pipe()
    r2:close("stop")
    t.is(select(2, w2:write("x")), "stop", "close(err): writers get err")
  end)

t.test("closing the writer fails a write in progress", function()
  local r, w = io.pipe()
  local done = spawn_wg(function() return w:write("abcdef") end)
  t.is(r:read(2), "ab", "part of the write")
  w:close()
  local n, err, taken = done()
  t.ok(n == nil and err == "closed", "the write fails with closed")
  t.is(taken, 2, "after 2 bytes")
  t.is(select(2, r:read(10)), "eof", "the reader sees eof")
end)

t.test("writes from several tasks are not interleaved", function()
  local r, w = io.pipe()
  local waits = {}
  for i = 1, 5 do
    waits[i] = spawn_wg(function()
      return w:write(string.rep(tostring(i), 1000))
    end)
  end
  local seen = {}
  for _ = 1, 5 do
    local x = io.read_full(r, 1000)
    local c = x and sub(x, 1, 1)
    t.ok(x == string.rep(c, 1000), "a write arrives whole")
    seen[#seen + 1] = c
  end
  for i = 1, 5 do t.is(waits[i](), 1000, "writer " .. i .. " finished") end
  table.sort(seen)
  t.is(concat(seen), "12345", "every writer's bytes came")
end)

t.test("several readers share one write", function()
  local r, w = io.pipe()
  local got = {}
  local readers = {}
  for i = 1, 3 do
    readers[i] = spawn_wg(function()
      local parts = {}
      while true do
        local x = r:read(10)
        if not x then break end
        parts[#parts + 1] = x
        coronet.sleep(0.001)
      end
      got[i] = concat(parts)
    end)
  end
  local s = util.random_bytes(5000, 3)
  t.is(w:write(s), #s, "one big write")
  w:close()
  for i = 1, 3 do readers[i]() end
  t.is(#got[1] + #got[2] + #got[3], #s, "the readers took it all")
  t.cmp_ok(#got[1] * #got[2] * #got[3], ">", 0, "each took some")
end)

t.test("an empty write returns 0 at once; read sizes are checked",
  function()
    local r, w = io.pipe()
    t.is(w:write(""), 0, "empty write")
    t.is(w:write({}), 0, "empty fragment table")
    t.ok(not pcall(r.read, r, 0), "read(0) raises")
    t.ok(not pcall(w.write, w, 5), "writing a number raises")
  end)

t.test("a pipe joins two copies: connection to pipe to buffer", function()
  local c, srv, l = pair.pair()
  local r, w = io.pipe()
  local s = util.random_bytes(200000, 5)
  local fed = spawn_wg(function()
    local n, err = io.copy(w, srv) -- connection -> pipe
    w:close(err)
    return n, err
  end)
  local out = bytes.buffer()
  local drained = spawn_wg(function() return io.copy(out, r) end)
  c:write(s)
  c:close_write()
  t.is(fed(), #s, "copy into the pipe moved everything")
  t.is(drained(), #s, "copy out of the pipe too")
  t.ok(out:string() == s, "the bytes arrived in order")
  c:close()
  l:close()
end)

t.test("a pipe's fragment write is one write", function()
  local r, w = io.pipe()
  local done = spawn_wg(function() return w:write({ "ab", "", "cd" }) end)
  t.is(io.read_full(r, 4), "abcd", "the fragments in order")
  t.is(done(), 4, "the count")
end)

t.test("no task is left behind", function()
  t.ok(util.wait_until(function()
    return coronet.stats().tasks <= base_tasks + 1
  end, 5), "tasks back to where they were")
end)

t.done()
