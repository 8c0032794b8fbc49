-- t/600-chat.t: scripts/chat.lua, the chat protocol line by line (issue
-- #5, DESIGN.md "Example services"): the welcome, joined and left
-- notices, /nick, /who, /quit, unknown commands, "NAME: text" to every
-- other member, "\r\n", empty and over-long lines, control bytes (issue
-- #13), a byte-per-segment relay. Every test runs twice, on one server
-- per round: one worker, then two (issue #8: one room over both workers;
-- the round checks that members were served by each); each test leaves
-- the room empty, and the round ends by checking that it is. A third
-- round spreads the members over two processes sharing a Redis (--bus).
local t = require "lib.tap"
local chat = require "lib.chat"
local scratch = require "lib.scratch"
local server = require "lib.server"
local relay = require "lib.relay"
local format, rep = string.format, string.rep

local NOTICE = "* a name is 1 to 32 letters, digits, '_', '-' or '.'"

local s -- the round's server

-- members(n) joins n members, each seeing the later ones join.
local function members(n)
  local ms = {}
  for i = 1, n do
    ms[i] = chat.must_join(s)
    for j = 1, i - 1 do
      ms[j]:expect("* " .. ms[i].name .. " joined")
    end
  end
  return unpack(ms)
end

-- quit_all(...) makes each member /quit: "* bye", then EOF; the members
-- still there see it leave.
local function quit_all(...)
  local ms = { ... }
  for i, m in ipairs(ms) do
    m:say("/quit")
    local line = m:line()
    for _ = 1, 1000 do -- skip what was queued for m before its bye
      if not line or line == "* bye" then break end
      line = m:line()
    end
    t.ok(line == "* bye" and m:eof(), m.name .. " quits")
    for j = i + 1, #ms do ms[j]:expect("* " .. m.name .. " left") end
    m:close()
  end
end

local tests = {}
local function test(name, fn) tests[#tests + 1] = { name, fn } end

test("a new member gets the welcome notice; the others see it join",
  function()
    local a = chat.must_join(s)
    t.like(a.welcome, chat.WELCOME, "the welcome names the commands")
    t.like(a.name, "^guest%d+$", "the first name is guestN")
    t.is(a:who(), "* 1 here: " .. a.name, "/who lists the one member")
    local b = chat.must_join(s)
    a:expect("* " .. b.name .. " joined", "a sees b join")
    t.is(tonumber(b.name:match("%d+")), tonumber(a.name:match("%d+")) + 1,
      "guest numbers count up")
    b:quiet("b is not told of its own joining")
    a:quiet("a got nothing else")
    quit_all(a, b)
  end)

test("a line goes to every other member as NAME: text, never back to its "
  .. "sender", function()
  local a, b, c = members(3)
  a:say("hello, world")
  b:expect(a.name .. ": hello, world", "b gets a's line")
  c:expect(a.name .. ": hello, world", "c gets a's line")
  a:quiet("a does not get its own line")
  c:say("  spaced  out  ")
  a:expect(c.name .. ":   spaced  out  ", "spaces are kept")
  b:expect(c.name .. ":   spaced  out  ")
  b:say("* " .. a.name .. " left")
  a:expect(b.name .. ": * " .. a.name .. " left",
    "a line that looks like a notice comes with its sender's name")
  c:expect(b.name .. ": * " .. a.name .. " left")
  b:say("caf\195\169 \0 \t tab\1\27[31m\127\255")
  a:expect(b.name .. ": caf\195\169  \t tab[31m", "control bytes but tab "
    .. "are dropped (issue #13), the others pass unchanged")
  c:expect(b.name .. ": caf\195\169  \t tab[31m")
  quit_all(a, b, c)
end)

test("\\r\\n ends a line like \\n; the \\r is dropped, an inner one too",
  function()
    local a, b = members(2)
    a.conn:write("one\r\ntwo\nthree\r\n")
    b:expect(a.name .. ": one", "\\r\\n")
    b:expect(a.name .. ": two", "\\n")
    b:expect(a.name .. ": three", "\\r\\n again, in the same write")
    a.conn:write("in\rside\r\n")
    b:expect(a.name .. ": inside", "an inner \\r is dropped: a control byte")
    a.conn:write("/who\r\n")
    t.like(a:line(), "^%* 2 here: ", "a command ending in \\r\\n works")
    a.conn:write("spl")
    a.conn:write("it\r")
    a.conn:write("\n")
    b:expect(a.name .. ": split", "a line split over three writes")
    quit_all(a, b)
  end)

test("empty lines are not sent", function()
  local a, b = members(2)
  a.conn:write("\n\r\n\n")
  a:say("after")
  b:expect(a.name .. ": after", "the line after three empty ones comes "
    .. "first")
  b:quiet()
  a:quiet("no notice for empty lines either")
  quit_all(a, b)
end)

test("/nick renames: the member is told, the others see OLD is now NEW",
  function()
    local a, b, c = members(3)
    local old = a.name
    a:say("/nick alice")
    a:expect("* you are now alice")
    b:expect("* " .. old .. " is now alice")
    c:expect("* " .. old .. " is now alice")
    a.name = "alice"
    a:say("hi")
    b:expect("alice: hi", "lines come under the new name")
    c:expect("alice: hi")
    a:say("/nick   al.ice_-2  ")
    a:expect("* you are now al.ice_-2", "spaces around the name are trimmed")
    b:expect("* alice is now al.ice_-2")
    c:expect("* alice is now al.ice_-2")
    a.name = "al.ice_-2"
    local long = rep("n", 32)
    b:say("/nick " .. long)
    b:expect("* you are now " .. long, "a 32-byte name is fine")
    a:expect("* " .. b.name .. " is now " .. long)
    c:expect("* " .. b.name .. " is now " .. long)
    b.name = long
    b:say("hey")
    a:expect(long .. ": hey")
    c:expect(long .. ": hey")
    quit_all(a, b, c)
  end)

test("/nick refuses bad and taken names, telling only the member", function()
  local a, b = members(2)
  local cases = { "/nick", "/nick ", "/nick " .. rep("x", 33),
    "/nick two words", "/nick bad!", "/nick caf\195\169", "/nick a/b" }
  for _, cmd in ipairs(cases) do
    a:say(cmd)
    a:expect(NOTICE, format("%q is refused", cmd))
  end
  b:say("/nick bob")
  b:expect("* you are now bob")
  a:expect("* " .. b.name .. " is now bob")
  b.name = "bob"
  a:say("/nick bob")
  a:expect("* the name bob is taken", "a taken name is refused")
  b:say("/nick bob")
  b:expect("* you are bob already", "taking one's own name changes nothing")
  a:quiet("a hears nothing of it")
  b:quiet("b hears nothing of a's attempts")
  a:say("x")
  b:expect(a.name .. ": x", "a keeps its name")
  quit_all(a, b)
end)

test("a member who took the next guest name makes the next joiner "
  .. "guestN_", function()
    local a = chat.must_join(s)
    local next = "guest" .. (tonumber(a.name:match("%d+")) + 1)
    a:say("/nick " .. next)
    a:expect("* you are now " .. next)
    local b = chat.must_join(s)
    t.is(b.name, next .. "_", "the joiner's name gets a '_'")
    a:expect("* " .. next .. "_ joined")
    t.is(b:who(), format("* 2 here: %s, %s_", next, next), "both listed")
    a.name = next
    quit_all(a, b)
  end)

test("/who lists every member, sorted, in one notice", function()
  local a, b, c = members(3)
  for m, name in pairs { [a] = "carol", [b] = "alice", [c] = "bob" } do
    local old = m.name
    m:say("/nick " .. name)
    m:expect("* you are now " .. name)
    for _, o in ipairs { a, b, c } do
      if o ~= m then o:expect("* " .. old .. " is now " .. name) end
    end
    m.name = name
  end
  for _, m in ipairs { a, b, c } do
    t.is(m:who(), "* 3 here: alice, bob, carol", m.name .. "'s /who")
  end
  a:say("/who   ")
  t.is(a:line(), "* 3 here: alice, bob, carol", "/who with trailing spaces")
  a:quiet()
  b:quiet()
  quit_all(a, b, c)
end)

test("/quit says bye and closes; the others see NAME left", function()
  local a, b, c = members(3)
  b:say("/quit")
  b:expect("* bye")
  t.ok(b:eof(), "then the server closes the connection")
  a:expect("* " .. b.name .. " left")
  c:expect("* " .. b.name .. " left")
  t.is(a:who(), format("* 2 here: %s", table.concat(
    (function() local l = { a.name, c.name } table.sort(l) return l end)(),
    ", ")), "b is no longer listed")
  a:say("still here")
  c:expect(a.name .. ": still here", "the others go on")
  b:close()
  quit_all(a, c)
end)

-- issue #5: /quit wrote "* bye" at once and the connection closed, so
-- what was queued for the member before it (replies to earlier commands,
-- others' lines) was lost.
test("/quit comes after what was queued before it", function()
  local a, b = members(2)
  b.conn:write("/who\n/nick bee\n/quit\n")
  t.like(b:line(), "^%* 2 here: ", "the /who reply")
  b:expect("* you are now bee", "the /nick reply")
  b:expect("* bye", "then the bye")
  t.ok(b:eof(), "then the close")
  a:expect("* " .. b.name .. " is now bee")
  a:expect("* bee left")
  b:close()
  quit_all(a)
end)

test("a member who closes the connection leaves; the others are told",
  function()
    local a, b, c = members(3)
    c:say("last words")
    c:close()
    a:expect(c.name .. ": last words", "a line sent just before the close "
      .. "arrives")
    a:expect("* " .. c.name .. " left", "then the leave")
    b:expect(c.name .. ": last words")
    b:expect("* " .. c.name .. " left")
    b:say("/who")
    b.conn:close_write() -- half-close: the server sees EOF
    a:expect("* " .. b.name .. " left", "EOF after a half-close leaves too")
    t.like(b:line(), "^%* 2 here: ",
      "the half-closed member still gets what was queued for it")
    t.ok(b:eof(), "then the server closes")
    b:close()
    quit_all(a)
  end)

test("an unknown command gets a notice, and nothing is sent", function()
  local a, b = members(2)
  a:say("/foo bar")
  a:expect("* unknown command /foo; try /nick NAME, /who or /quit")
  a:say("/")
  a:expect("* unknown command /; try /nick NAME, /who or /quit")
  a:say("/WHO")
  a:expect("* unknown command /WHO; try /nick NAME, /who or /quit",
    "commands are lowercase")
  b:quiet("b got nothing")
  quit_all(a, b)
end)

test("a line of 4096 bytes is sent; a longer one gets a notice and is "
  .. "not", function()
  local a, b = members(2)
  local max = rep("m", 4095) .. "x"
  a:say(max)
  b:expect(a.name .. ": " .. max, "4096 bytes arrive whole")
  a:say(max .. "\r")
  b:expect(a.name .. ": " .. max, "4096 bytes and \\r\\n too")
  a:say(max .. "y")
  a:expect("* line too long: at most 4096 bytes; not sent",
    "4097 bytes: the sender is told")
  a:say(rep("z", 100000))
  a:expect("* line too long: at most 4096 bytes; not sent",
    "100000 bytes: one notice")
  a:say("after")
  b:expect(a.name .. ": after", "the next line is whole")
  b:quiet("and the long ones were not sent")
  a:quiet("one notice each")
  quit_all(a, b)
end)

test("through a byte-per-segment relay every line still arrives whole",
  function()
    local r = relay.start(s.addr, 0.0002)
    local rs = { addr = r.addr, connect = s.connect }
    local a = chat.must_join(s)
    local b = chat.must_join(rs)
    a:expect("* " .. b.name .. " joined")
    b:say("split\r")
    a:expect(b.name .. ": split", "b's line, one byte at a time")
    b:say("/nick trickle")
    b:expect("* you are now trickle", "a command, one byte at a time")
    a:expect("* " .. b.name .. " is now trickle")
    b.name = "trickle"
    a:say("back")
    b:expect(a.name .. ": back", "a's line reaches b one byte at a time")
    quit_all(b, a)
    r.close()
  end)

-- Round 3 (issue #9): members over two processes sharing a Redis (--bus),
-- taken in turn.
local pair = require "lib.chat_pair"
for round = 1, pair.available() and 3 or 2 do
  if round == 3 then
    s = pair.start(2)
  else
    s = chat.start(server.path("scripts/chat.lua"), round)
  end
  for _, tc in ipairs(tests) do
    t.test(tc[1] .. format(" (round %d)", round), tc[2], 30)
  end
  t.test(format("the room is empty after the round's tests (round %d)",
    round), function()
    local m = chat.must_join(s)
    t.is(m:who(), "* 1 here: " .. m.name, "only the newcomer is there")
    quit_all(m)
    if s.pair then return s:check(t) end
    chat.check_spread(s, round)
    local errs = chat.odd_lines(s)
    t.is(#errs, 0, "the server logged nothing but its start")
    if #errs > 0 then t.diag(table.concat(errs, "\n")) end
    t.is(scratch.stop(s), 0, "the server exits 0 at SIGTERM")
  end)
end

scratch.cleanup()
t.done()
