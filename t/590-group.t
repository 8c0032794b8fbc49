-- t/590-group.t: coronet.group (issue #8, DESIGN.md "Fan-out in the
-- host"): send reaches every member but the one excepted; a member that
-- never reads is closed at its limit while the others receive everything;
-- members that close leave by themselves; send_batch hands several
-- messages out in one block, each but to the member it leaves out;
-- send_to writes to one; wait
-- paces a sender until no member is behind, drop_behind closes those that
-- stay behind.
local t = require "lib.tap"
local coronet = require "coronet"
local net = require "coronet.net"
local util = require "lib.util"
local format, rep = string.format, string.rep

local base = coronet.stats()

-- A listener whose handler puts each connection into the current group
-- (with the limit asked for) and holds it until the peer closes.
local g, limit
local served = {}
local l = assert(net.listen("127.0.0.1:0", function(conn)
  assert(g:add(conn, limit and { limit = limit } or nil))
  served[#served + 1] = conn
  conn:read(1) -- until the peer closes, or the group closes conn
end))

-- members(n) connects n clients and waits until the group holds them.
local function members(n)
  local cs = {}
  local before = g:len()
  for i = 1, n do
    cs[i] = assert(net.dial(l:addr(), { timeout = 5 }))
    cs[i]:set_timeout(10)
  end
  util.wait_until(function() return g:len() == before + n end, 5)
  return cs
end

local function close_all(cs)
  for _, c in ipairs(cs) do c:close() end
end

t.test("send reaches every member, except the one named", function()
  g, limit = coronet.group(), nil
  local cs = members(3)
  t.is(g:len(), 3, "three members")
  t.is(g:send("one\n"), 3, "send counts the members it reached")
  t.is(g:send("two\n", served[#served]), 2, "one excepted")
  for i, c in ipairs(cs) do
    t.is(c:read_line(), "one", "member " .. i .. " got the first line")
  end
  t.is(cs[1]:read_line(), "two", "member 1 got the second")
  t.is(cs[2]:read_line(), "two", "member 2 got the second")
  cs[3]:set_timeout(0.1)
  t.is(select(2, cs[3]:read_line()), "timeout", "the excepted one did not")
  t.is(g:send(""), 0, "an empty send sends nothing")
  close_all(cs)
  t.ok(util.wait_until(function() return g:len() == 0 end, 5),
    "members whose connection closed left by themselves")
  served = {}
end)

-- lines(c, n) -> the next n lines c reads, joined by ","
local function lines(c, n)
  local got = {}
  for i = 1, n do got[i] = c:read_line() or "?" end
  return table.concat(got, ",")
end

t.test("send_batch gives each member the parts that are for it, in order",
  function()
  g, limit = coronet.group(), nil
  local cs = members(3)
  local m1, m2 = served[1], served[2]
  t.is(g:send_batch({ "a\n", "b\n", "c\n", "d\n" },
    { m1, false, m2, m1 }), 3, "all three got some")
  t.is(lines(cs[1], 2), "b,c", "member 1 was left out of a and d")
  t.is(lines(cs[2], 3), "a,b,d", "member 2 was left out of c")
  t.is(lines(cs[3], 4), "a,b,c,d", "member 3 got every part")
  t.is(g:send_batch({ "e\n", "f\n", "not sent\n" }, { m1, m1 }, 2), 2,
    "a member left out of every part is not counted; n parts go")
  t.is(lines(cs[2], 2), "e,f", "member 2 got the first n parts")
  t.is(lines(cs[3], 2), "e,f", "so did member 3")
  cs[1]:set_timeout(0.1)
  t.is(select(2, cs[1]:read_line()), "timeout", "member 1 got nothing")
  t.is(g:len(), 3, "and stays")
  t.is(g:send_batch({}, {}), 0, "an empty batch sends nothing")
  close_all(cs)
  t.ok(util.wait_until(function() return g:len() == 0 end, 5), "all left")
  served = {}
end)

t.test("send_batch closes a member that it would take past its limit, "
  .. "whether it was left out of a part or not", function()
  g, limit = coronet.group(), 1000
  local cs = members(3)
  local big = rep("x", 599) .. "\n"
  t.is(g:send_batch({ big, "small\n" }, { false, served[3] }), 3,
    "600 bytes fit under the limit of each")
  t.is(g:send_batch({ big, "tiny\n" }, { served[1], false }), 1,
    "another 600 do not: only the one left out of them got some")
  t.ok(util.wait_until(function() return g:len() == 1 end, 5),
    "the two taken past 1000 bytes were closed and left")
  t.is(cs[1]:read_line(), big:sub(1, -2), "the one that stays got the "
    .. "first batch")
  t.is(cs[1]:read_line(), "small", "whole")
  t.is(cs[1]:read_line(), "tiny", "and its part of the second")
  for i = 2, 3 do
    local data, e = util.read_all(cs[i], 4096)
    t.ok(e == "eof" or e == "reset" or e == "connection reset by peer",
      format("member %d was closed (%s after %d bytes)", i, tostring(e),
        #data))
  end
  close_all(cs)
  served = {}
end)

t.test("a member that never reads is closed at its limit; the others get "
  .. "everything", function()
  g, limit = coronet.group(), 256 * 1024
  local readers = members(2)
  local deaf = members(1)[1] -- never reads
  local deaf_server = served[#served]
  local line = rep("x", 1999) .. "\n"
  local got = { 0, 0 }
  local wg = coronet.waitgroup()
  local LINES = 12000 -- 24 MB: more than the kernel buffers on loopback
  for i, c in ipairs(readers) do
    wg:add(1)
    coronet.spawn(function()
      for _ = 1, LINES do
        local s = c:read_line()
        if s ~= line:sub(1, -2) then break end
        got[i] = got[i] + 1
      end
      wg:done()
    end)
  end
  local reached = 0
  for _ = 1, LINES do
    reached = g:send(line)
    coronet.yield() -- the readers read
  end
  wg:wait(30)
  t.is(g:len(), 2, "the deaf member left the group")
  t.is(reached, 2, "later sends reach the two readers")
  t.is(g:dropped(), 1, "dropped() counts it")
  t.ok(got[1] == LINES and got[2] == LINES, format("both readers got all "
    .. "%d lines (%d, %d)", LINES, got[1], got[2]))
  local data, err = util.read_all(deaf, 64 * 1024 * 1024)
  t.ok(err == "eof" or err == "reset" or err == "connection reset by peer",
    format("the deaf member's connection was closed (%s after %d bytes)",
      tostring(err), #data))
  t.cmp_ok(#data, "<", LINES * #line, "before it got everything")
  t.is(select(2, deaf_server:write("x")), "closed", "its handler sees a "
    .. "closed connection")
  close_all(readers)
  deaf:close()
  served = {}
end, 60)

t.test("send_to writes to one member, under its limit", function()
  g, limit = coronet.group(), 1000
  local cs = members(2)
  t.is(g:send_to(served[1], "just you\n"), true, "send_to one member")
  t.is(cs[1]:read_line(), "just you", "it got the line")
  cs[2]:set_timeout(0.1)
  t.is(select(2, cs[2]:read_line()), "timeout", "the other did not")
  local v, err = g:send_to(served[1], rep("y", 2000))
  t.ok(v == nil and err == "closed", "past the limit: nil, \"closed\"")
  t.is(g:len(), 1, "and the member was closed and left")
  local outsider = assert(net.dial(l:addr()))
  util.wait_until(function() return g:len() == 2 end, 5)
  g:remove(served[#served])
  v, err = g:send_to(served[#served], "x")
  t.ok(v == nil and err == "not found", "send_to a non-member: nil, "
    .. "\"not found\"")
  t.is(g:remove(served[#served]), false, "remove of a non-member is false")
  outsider:close()
  close_all(cs)
  served = {}
end)

t.test("wait paces a sender until no member is behind; drop_behind closes "
  .. "those that stay behind", function()
  g, limit = coronet.group(), 8 * 1024 * 1024
  local reader = members(1)[1]
  local deaf = members(1)[1]
  local chunk = rep("z", 16383) .. "\n"
  local reading = true
  coronet.spawn(function()
    while reading and reader:read_line() do end
  end)
  local sent = 0
  while g:behind() == 0 and sent < 2000 do
    g:send(chunk)
    sent = sent + 1
    coronet.yield()
  end
  t.is(g:behind(), 1, format("after %d sends of 16 KiB one member is "
    .. "behind", sent))
  local t0 = coronet.now()
  local v, err = g:wait(0.2)
  t.ok(v == nil and err == "timeout", "wait times out while it stays "
    .. "behind")
  t.cmp_ok(coronet.now() - t0, ">=", 0.19, "after the timeout")
  t.is(g:drop_behind(), 1, "drop_behind closes it")
  t.is(g:behind(), 0, "none is behind now")
  t.is(g:wait(1), true, "so wait returns at once")
  t.is(g:len(), 1, "the reader stays")
  -- a reader that falls behind and catches up releases a waiting sender
  reading = false
  util.settle()
  local waited
  coronet.spawn(function()
    while g:behind() == 0 do g:send(chunk) coronet.yield() end
    local w0 = coronet.now()
    waited = { g:wait(10) }
    waited.secs = coronet.now() - w0
  end)
  util.wait_until(function() return g:behind() == 1 end, 5)
  reading = true
  coronet.spawn(function()
    while reading and reader:read_line() do end
  end)
  util.wait_until(function() return waited end, 10)
  t.ok(waited and waited[1] == true, "a reader that drains wakes the "
    .. "waiting sender")
  reading = false
  reader:close()
  deaf:close()
  served = {}
end, 60)

t.test("misuse raises, naming the method", function()
  g = coronet.group()
  local c = assert(net.dial(l:addr()))
  util.wait_until(function() return #served == 1 end, 5)
  local function err(f)
    local ok, e = pcall(f)
    return not ok and tostring(e) or "no error"
  end
  t.like(err(function() g:send(1) end), "bad argument #1 to 'send' "
    .. "%(string expected", "send takes a string")
  t.like(err(function() g:send_batch({ "a", 1 }, {}) end),
    "bad argument #1 to 'send_batch' %(frames%[2%] is number",
    "send_batch takes strings")
  t.like(err(function() g:send_batch({ "a" }, { "b" }) end),
    "bad argument #2 to 'send_batch' %(excepts%[1%] is not a connection",
    "and connections (or false) to leave out")
  t.like(err(function() g:send_batch({ "a" }) end),
    "bad argument #2 to 'send_batch' %(table expected",
    "excepts is a table")
  t.like(err(function() g:add(served[1], { limit = 0 }) end),
    "bad argument #2 to 'add'", "limits are positive")
  c:close()
  served = {}
end)

t.test("nothing is left", function()
  g = nil
  l:close()
  util.check_clean(t, base)
end)

t.done()
