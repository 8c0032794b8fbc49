-- t/220-deadlines.t: per-operation timeouts and absolute deadlines on
-- reads and writes: a timed-out read returns nil, "timeout" and the partial
-- bytes, loses nothing, and leaves the connection usable.
local t = require "lib.tap"
local pair = require "lib.pair"
local util = require "lib.util"
local coronet = require "coronet"
local io_ = require "coronet.io"
local now = coronet.now

local function done(c, l)
  c:close()
  l:close()
end

t.test("a read with nothing to read times out after the read timeout",
  function()
    local c, s, l = pair.pair()
    s:set_timeout(0.1)
    local t0 = now()
    local v, err, partial = s:read()
    local d = now() - t0
    t.is(v, nil, "no data")
    t.is(err, "timeout", "timeout")
    t.is(partial, nil, "no partial bytes")
    t.cmp_ok(d, ">=", 0.09, "after about 0.1 s")
    t.cmp_ok(d, "<", 5, "not much later")
    done(c, l)
  end)

t.test("the connection is usable after a read timed out", function()
  local c, s, l = pair.pair()
  s:set_timeout(0.05)
  t.is(select(2, s:read()), "timeout", "first read times out")
  c:write("late\n")
  t.is(s:read_line(), "late", "the next read gets what arrived later")
  s:write("reply\n")
  t.is(c:read_line(), "reply", "and writing works")
  t.is(select(2, s:read()), "timeout", "it can time out again")
  c:write("again")
  t.is(s:read(), "again", "and recover again")
  done(c, l)
end)

t.test("a timed-out read_full returns the partial bytes and keeps them",
  function()
    local c, s, l = pair.pair()
    s:set_timeout(0.1)
    c:write("abc")
    local v, err, partial = s:read_full(10)
    t.is(v, nil, "no value")
    t.is(err, "timeout", "timeout")
    t.is(partial, "abc", "the partial bytes come third")
    t.is(s:buffered(), 3, "they stay buffered")
    c:write("defghij")
    t.is(s:read_full(10), "abcdefghij", "the next read_full returns all ten")
    done(c, l)
  end)

t.test("a timed-out read_line keeps the partial line", function()
  local c, s, l = pair.pair()
  s:set_timeout(0.05)
  c:write("half a li")
  local v, err, partial = s:read_line()
  t.is(err, "timeout", "timeout")
  t.is(partial, "half a li", "partial line returned")
  c:write("ne\r\n")
  t.is(s:read_line(), "half a line", "then the whole line")
  done(c, l)
end)

t.test("a timed-out read_until and peek lose nothing", function()
  local c, s, l = pair.pair()
  s:set_timeout(0.05)
  c:write("key:val")
  t.is(select(2, s:read_until("\r\n")), "timeout", "read_until times out")
  t.is(select(2, s:peek(100)), "timeout", "peek times out")
  c:write("ue\r\n")
  t.is(s:read_until("\r\n"), "key:value", "then the whole piece")
  done(c, l)
end)

t.test("the read timeout bounds each read, not their sum", function()
  local c, s, l = pair.pair()
  s:set_timeout(0.2)
  coronet.spawn(function()
    for i = 1, 5 do
      coronet.sleep(0.06)
      c:write(i .. "\n")
    end
  end)
  local got = {}
  for _ = 1, 5 do got[#got + 1] = s:read_line() or "!" end
  t.is(table.concat(got, ","), "1,2,3,4,5", "five reads 60 ms apart, each in time")
  done(c, l)
end)

t.test("a read_full fed slowly times out as one operation", function()
  local c, s, l = pair.pair()
  s:set_timeout(0.15)
  local writer = coronet.spawn(function()
    for _ = 1, 20 do
      coronet.sleep(0.03)
      if not c:write("x") then return end
    end
  end)
  local t0 = now()
  local v, err, partial = s:read_full(20)
  t.is(err, "timeout", "timeout although bytes kept coming")
  t.cmp_ok(now() - t0, "<", 0.5, "near the 0.15 s bound")
  t.ok(partial and #partial >= 1, "with the bytes that came")
  done(c, l)
  util.wait_until(function() return not coronet.alive(writer) end)
end)

t.test("set_timeout(nil) removes the bound", function()
  local c, s, l = pair.pair()
  s:set_timeout(0.02)
  s:set_timeout(nil)
  coronet.spawn(function() coronet.sleep(0.1); c:write("x") end)
  t.is(s:read(), "x", "the read waited past the old bound")
  local ok = pcall(s.set_timeout, s, -1)
  t.ok(not ok, "a negative timeout raises")
  done(c, l)
end)

t.test("set_deadline is an absolute cutoff in now() time", function()
  local c, s, l = pair.pair()
  s:set_timeout(nil)
  local t0 = now()
  s:set_deadline(t0 + 0.1)
  t.is(select(2, s:read()), "timeout", "the read times out")
  local d = now() - t0
  t.cmp_ok(d, ">=", 0.09, "at the deadline")
  t.cmp_ok(d, "<", 5, "not much later")
  t.is(select(2, s:read()), "timeout", "a deadline in the past: at once")
  s:set_deadline(nil)
  c:write("ok")
  t.is(s:read(), "ok", "cleared, reads work")
  done(c, l)
end)

t.test("a deadline set while a read is parked applies to it", function()
  local c, s, l = pair.pair()
  s:set_timeout(nil)
  local result
  local t0 = now()
  coronet.spawn(function() result = { s:read() } end)
  coronet.sleep(0.02) -- the reader is parked with no bound
  s:set_read_deadline(now() + 0.05)
  util.wait_until(function() return result end, 5)
  t.is(result and result[2], "timeout", "the parked read timed out")
  t.cmp_ok(now() - t0, "<", 2, "soon after the new deadline")
  done(c, l)
end)

t.test("a deadline moved later while a read is parked lets it wait",
  function()
    local c, s, l = pair.pair()
    s:set_timeout(nil)
    s:set_deadline(now() + 0.05)
    local result
    coronet.spawn(function() result = { s:read() } end)
    coronet.sleep(0.01)
    s:set_deadline(now() + 5)
    coronet.sleep(0.1) -- past the first deadline
    t.is(result, nil, "the read is still waiting after the first deadline")
    c:write("in time")
    util.wait_until(function() return result end, 5)
    t.is(result and result[1], "in time", "it got the data")
    done(c, l)
  end)

t.test("a write to a peer that does not read times out, queue kept",
  function()
    local c, s, l = pair.pair()
    s:set_timeout(nil, 0.1)
    local chunk = string.rep("w", 65536)
    local total, n, err, queued = 0, nil, nil, nil
    for _ = 1, 2000 do
      n, err, queued = s:write(chunk)
      if not n then break end
      total = total + n
    end
    t.is(err, "timeout", "a write timed out after " .. total .. " bytes")
    t.is(type(queued), "number", "it says how much of it was queued")
    -- the peer drains everything: every byte written or queued arrives
    local want = total + (queued or 0)
    local got = 0
    c:set_timeout(5)
    while got < want do
      local x = c:read(65536)
      if not x then break end
      got = got + #x
    end
    t.is(got, want, "all queued bytes arrive once the peer reads")
    t.is(s:write("after"), 5, "writing works again")
    t.is(c:read(5), "after", "and arrives")
    done(c, l)
  end)

t.test("a write deadline alone (no timeout) ends a parked write", function()
  local c, s, l = pair.pair()
  s:set_timeout(nil)
  local t0 = now()
  s:set_write_deadline(t0 + 0.2)
  local chunk = string.rep("d", 65536)
  local err
  for _ = 1, 2000 do
    local n, e = s:write(chunk)
    if not n then err = e; break end
  end
  t.is(err, "timeout", "the write timed out")
  t.cmp_ok(now() - t0, "<", 5, "soon after the deadline")
  done(c, l)
end)

t.test("set_write_deadline leaves reads unbounded", function()
  local c, s, l = pair.pair()
  s:set_timeout(nil)
  s:set_write_deadline(now() - 1)
  coronet.spawn(function() coronet.sleep(0.05); c:write("r") end)
  t.is(s:read(), "r", "the read is not affected")
  t.is(s:write("small"), 5, "a write that need not park still succeeds")
  done(c, l)
end)

t.test("copy between connections times out when its source goes idle",
  function()
    local a, as, l1 = pair.pair()
    local b, bs, l2 = pair.pair()
    as:set_timeout(0.1)
    a:write("some bytes")
    local t0 = now()
    local n, err = io_.copy(bs, as)
    t.is(n, 10, "what arrived was copied")
    t.is(err, "timeout", "then it timed out")
    t.cmp_ok(now() - t0, "<", 5, "soon")
    t.is(b:read_full(10), "some bytes", "the bytes reached the other side")
    done(a, l1)
    done(b, l2)
  end)

t.test("no connection or block is left", function()
  t.ok(util.wait_until(function()
    local st = coronet.stats()
    return st.connections == 0 and st.blocks == 0
  end, 5), "connections and blocks back to zero")
end)

t.done()
