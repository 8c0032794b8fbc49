-- t/215-fast-reads.t: read, read_line and read_until are served through
-- LuaJIT's FFI when what they ask for is buffered in one block; every
-- other case falls back to the classic path. Both must give the same
-- answers, errors and argument checks (t/210-lines.t covers the line
-- contract itself: blocks, \r\n, long lines, EOF).
local t = require "lib.tap"
local pair = require "lib.pair"
local util = require "lib.util"
local coronet = require "coronet"
local conn = require "coronet.conn"

local spawn, sleep = coronet.spawn, coronet.sleep

-- buffered(s, n) waits until s holds n unread bytes.
local function buffered(s, n)
  return util.wait_until(function() return s:buffered() >= n end, 5)
end

t.test("reads of each kind interleave on buffered bytes", function()
  local c, s, l = pair.pair()
  local data = "one\ntwo\r\nthree;four;;fivesix\n"
  c:write(data)
  t.ok(buffered(s, #data), "all bytes are buffered")
  t.is(s:read_line(), "one", "read_line")
  t.is(s:read_line(), "two", "read_line drops \\r\\n")
  t.is(s:read_until(";"), "three", "read_until")
  t.is(s:read_until(";;"), "four", "a two-byte delimiter")
  t.is(s:read(4), "five", "read(n) takes n of more")
  t.is(s:read(), "six\n", "read() takes what is left")
  c:close()
  l:close()
end)

t.test("a line of max bytes passes, one byte more is too long", function()
  local c, s, l = pair.pair()
  c:write("12345\n123456\nok\nabcde\r\n")
  t.ok(buffered(s, 23), "all bytes are buffered")
  t.is(s:read_line(5), "12345", "max bytes")
  local v, err = s:read_line(5)
  t.is(tostring(v) .. "/" .. tostring(err), "nil/line too long", "max + 1")
  t.is(s:read_line(5), "ok", "the next line after the long one")
  t.is(s:read_line(5), "abcde", "a \\r before \\n does not count")
  c:close()
  l:close()
end)

t.test("bad arguments raise as before", function()
  local c, s, l = pair.pair()
  c:write("x\n")
  t.ok(buffered(s, 2), "bytes are buffered")
  local function raises(pattern, fn, ...)
    local ok, err = pcall(fn, ...)
    return not ok and tostring(err):find(pattern) ~= nil
  end
  t.ok(raises("must not be negative", s.read_line, s, -1), "read_line(-1)")
  t.ok(raises("must be positive", s.read, s, 0), "read(0)")
  t.ok(raises("1 to 8 bytes", s.read_until, s, ""), "read_until('')")
  t.ok(raises("1 to 8 bytes", s.read_until, s, "123456789"),
    "a 9-byte delimiter")
  t.ok(raises("coronet.conn expected", conn.methods.read_line, {}),
    "read_line on a table")
  t.ok(raises("coronet.conn expected", conn.methods.read, io.stdout),
    "read on another userdata")
  t.is(s:read_line(), "x", "the bytes are still there")
  c:close()
  l:close()
end)

t.test("a second reader is told busy even when a line is there", function()
  local c, s, l = pair.pair()
  c:write("partial")
  t.ok(buffered(s, 7), "a partial line is buffered")
  local first = util.spawn_wg(function() return s:read_line() end)
  sleep(0.01) -- the first reader waits for the rest of its line
  c:write("\nnext\n")
  local v, err = s:read_line() -- may find whole lines buffered already
  if v == nil then
    t.is(err, "busy reading", "the second reader is busy")
  else
    t.is(v, "next", "or the first one is done and this is the next line")
  end
  t.is(first(), "partial", "the first reader got its line")
  c:close()
  l:close()
end)

t.test("reads of a closed connection fail as before", function()
  local c, s, l = pair.pair()
  c:write("a\nb\n")
  t.ok(buffered(s, 4), "bytes are buffered")
  s:close()
  local v, err = s:read_line()
  t.is(tostring(v) .. "/" .. tostring(err), "nil/closed", "read_line")
  v, err = s:read()
  t.is(tostring(v) .. "/" .. tostring(err), "nil/closed", "read")
  c:close()
  l:close()
end)

t.test("a fast read leaves no deadline behind", function()
  local c, s, l = pair.pair()
  s:set_timeout(30)
  local deadlines = coronet.stats().deadlines
  c:write("a\nb\n")
  t.ok(buffered(s, 4), "bytes are buffered")
  t.is(s:read_line(), "a", "a line")
  t.is(s:read(2), "b\n", "two bytes")
  t.is(coronet.stats().deadlines, deadlines, "the wheel is as it was")
  local r = util.spawn_wg(function() return s:read_line() end)
  sleep(0.01)
  t.is(coronet.stats().deadlines, deadlines + 1,
    "a parked read has its deadline")
  c:write("c\n")
  t.is(r(), "c", "the next line")
  t.is(coronet.stats().deadlines, deadlines, "gone once the read is done")
  c:close()
  l:close()
end)

t.test("thousands of lines in a tight loop", function()
  local c, s, l = pair.pair()
  local lines = {}
  for i = 1, 5000 do lines[i] = ("line %d %s"):format(i, ("x"):rep(i % 90)) end
  spawn(function()
    c:write(table.concat(lines, "\n") .. "\n")
    c:close()
  end)
  s:set_timeout(10)
  local bad, n = 0, 0
  for line in s:lines() do
    n = n + 1
    if line ~= lines[n] then bad = bad + 1 end
  end
  t.is(n, 5000, "every line")
  t.is(bad, 0, "each as it was sent")
  l:close()
end)

t.test("no task or connection is left over", function()
  util.no_leftovers(t)
end)

t.done()
