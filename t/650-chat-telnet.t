-- t/650-chat-telnet.t: scripts/chat.lua and telnet (issue #13): telnet's
-- Ctrl-C (IAC IP, IAC DO TIMING-MARK) is answered and makes the member
-- leave; other option requests are refused; subnegotiations and IAC IAC
-- are taken out; no IAC byte or control byte but tab ever reaches another
-- member, and a line cut off by leaving is not sent.
local t = require "lib.tap"
local chat = require "lib.chat"
local scratch = require "lib.scratch"
local server = require "lib.server"
local util = require "lib.util"

local IAC, WILL, WONT, DO, DONT, SB, SE, IP = "\255", "\251", "\252",
  "\253", "\254", "\250", "\240", "\244"
local ECHO, TM, NAWS, TTYPE = "\1", "\6", "\31", "\24"

local s = chat.start(server.path("scripts/chat.lua"), 1)

-- raw(m, n) -> the next n bytes m gets
local function raw(m, n)
  return m.conn:read_full(n)
end

t.test("telnet commands are answered or dropped, never passed on",
  function()
    local a = chat.must_join(s)
    local b = chat.must_join(s)
    a:expect("* " .. b.name .. " joined")
    a.conn:write("hel" .. IAC .. DO .. ECHO .. "lo\n")
    t.is(util.show_bytes(raw(a, 3)), util.show_bytes(IAC .. WONT .. ECHO),
      "DO ECHO inside a line is refused: WONT ECHO")
    b:expect(a.name .. ": hello", "the line around it arrives whole")
    a.conn:write(IAC .. WILL .. NAWS .. "x" .. IAC .. IAC .. "y\n")
    t.is(util.show_bytes(raw(a, 3)), util.show_bytes(IAC .. DONT .. NAWS),
      "WILL NAWS is refused: DONT NAWS")
    b:expect(a.name .. ": xy", "IAC IAC is dropped (a 255 byte)")
    a.conn:write(IAC .. SB .. TTYPE .. "\0xterm" .. IAC .. SE .. "z\n")
    b:expect(a.name .. ": z", "a subnegotiation is taken out")
    a.conn:write("stray " .. IAC .. "!\n")
    b:expect(a.name .. ": stray !", "a stray IAC is dropped")
    a.conn:write(IAC)
    a.conn:write(DO)
    a.conn:write(TM .. "split\n")
    t.is(util.show_bytes(raw(a, 3)), util.show_bytes(IAC .. WILL .. TM),
      "a command split over three writes is answered: WILL TIMING-MARK")
    b:expect(a.name .. ": split")
    a:quiet("a got nothing else")
    b:quiet("b got nothing else")
    a.conn:write("cut off" .. IAC .. IP .. IAC .. DO .. TM)
    a:expect("* bye", "Ctrl-C in telnet (IAC IP) leaves, with a bye")
    local answer = raw(a, 3)
    if server.edge == "relay" and answer == nil then
      -- telnet sends IAC IP IAC DO TM in one write; the byte-per-segment
      -- relay splits it, and the leave may close before DO TM arrives
      t.pass("# SKIP the relay split IAC IP from its DO TIMING-MARK")
    else
      t.is(util.show_bytes(answer), util.show_bytes(IAC .. WILL .. TM),
        "and the DO TIMING-MARK after it is answered, so telnet does not "
        .. "hang")
    end
    t.ok(a:eof(), "then the connection closes")
    b:expect("* " .. a.name .. " left", "b sees a leave")
    b:quiet("the line cut off by leaving was not sent")
    b.conn:set_timeout(0.2)
    b:say("/quit")
    local rest = util.read_all(b.conn, 65536)
    t.is(rest, "* bye\n", "b's last bytes")
    b:close()
    a:close()
  end)

t.test("no IAC or control byte but tab reaches another member", function()
  local a = chat.must_join(s)
  local b = chat.must_join(s)
  a:expect("* " .. b.name .. " joined")
  local all = {}
  for i = 0, 255 do all[#all + 1] = string.char(i) end
  local bytes = table.concat(all)
  b.conn:write(bytes:gsub("\n", "") .. "\n")
  b:say("end")
  local got = {}
  while true do
    local line = a:line()
    if not line or line == b.name .. ": end" then break end
    got[#got + 1] = line
  end
  t.is(#got, 1, "one line came")
  local line = got[1] or ""
  t.ok(not line:find("[%z\1-\8\10-\31\127\255]"), "with no control byte "
    .. "but tab and no 255: " .. util.show_bytes(line:sub(1, 80)))
  t.ok(line:find("\t", 1, true) and line:find("\128", 1, true)
    and line:find("\254", 1, true), "tab and the bytes 128..254 pass")
  a:say("/quit")
  b:say("/quit")
  a:close()
  b:close()
end)

t.test("the server logged nothing unexpected", function()
  local odd = chat.odd_lines(s)
  t.is(#odd, 0, "a clean log")
  t.is(scratch.stop(s), 0, "the server exits 0 at SIGTERM")
end)

scratch.cleanup()
t.done()
