-- chat_proto: what a chat member's bytes mean, in plain Lua (no I/O), so
-- that a fuzz harness can drive it. A decoder turns bytes, in pieces of
-- any size, into events:
--   { "line", text }      a line without its "\n" (and a "\r" before
--                         it), with control bytes other than tab removed
--   { "long" }            a line longer than max was skipped
--   { "telnet", cmd, opt } a telnet command: "ip" (interrupt process,
--                         Ctrl-C), "do", "will" (with the option byte),
--                         "ayt", "brk", ...
-- Telnet commands (IAC, byte 255) are taken out of the stream wherever
-- they are, also inside a line and without a newline after them, as
-- telnet sends Ctrl-C: IAC IP IAC DO TIMING-MARK. reply(cmd, opt) gives
-- the bytes to answer one with: telnet waits for the answer to DO
-- TIMING-MARK.
local byte, char, find, sub, gsub = string.byte, string.char, string.find,
  string.sub, string.gsub
local setmetatable = setmetatable

local _M = {}

local IAC, SB, SE = 255, 250, 240
local WILL, WONT, DO, DONT = 251, 252, 253, 254
local TIMING_MARK = 6
local NAMES = { [241] = "nop", [242] = "dm", [243] = "brk", [244] = "ip",
  [245] = "ao", [246] = "ayt", [247] = "ec", [248] = "el", [249] = "ga",
  [WILL] = "will", [WONT] = "wont", [DO] = "do", [DONT] = "dont" }

-- Control bytes a line may not carry to others: C0 but tab, DEL, and the
-- bytes a telnet peer would take for commands.
local CONTROL = "[%z\1-\8\10-\31\127\255]"

-- clean(text) -> text without control bytes other than tab
local function clean(text)
  if find(text, CONTROL) then text = gsub(text, CONTROL, "") end
  return text
end
_M.clean = clean

local Decoder = {}
Decoder.__index = Decoder

-- decoder([max]) -> a decoder of lines up to max bytes (default 4096).
-- Fields: rest (the unfinished line, or nil), skip (inside a line that is
-- too long), tn (inside a telnet command).
function _M.decoder(max)
  return setmetatable({ max = max or 4096 }, Decoder)
end

-- add appends the piece s of the current line.
local function add(d, s)
  if d.skip or s == "" then return end
  local rest = d.rest
  if (rest and #rest or 0) + #s > d.max + 1 then -- + 1: a "\r" before "\n"
    d.skip, d.rest = true, nil
    return
  end
  d.rest = rest and rest .. s or s
end

-- finish_line ends the current line at a "\n".
local function finish_line(d, out)
  if d.skip then
    d.skip = false
    out[#out + 1] = { "long" }
    return
  end
  local line = d.rest or ""
  d.rest = nil
  if byte(line, -1) == 13 then line = sub(line, 1, -2) end
  if #line > d.max then
    out[#out + 1] = { "long" }
  else
    out[#out + 1] = { "line", clean(line) }
  end
end

-- telnet consumes the telnet command at data[i] (after an IAC, which may
-- have ended the last piece: d.tn keeps the state between pieces).
-- Returns the next index.
local function telnet(d, data, i, out)
  local n = #data
  while i <= n and d.tn do
    local b = byte(data, i)
    local st = d.tn
    if st == "iac" then
      d.tn = nil
      if b == SB then
        d.tn = "sb"
      elseif b >= WILL and b < IAC then
        d.tn = b
      elseif NAMES[b] then
        out[#out + 1] = { "telnet", NAMES[b] }
      elseif b < SE then -- no command: a stray 255, dropped; b is data
        return i
      end -- IAC IAC is a data byte 255, not passed on (a control byte)
    elseif st == "sb" then -- subnegotiation: skip to IAC SE
      if b == IAC then d.tn = "sbiac" end
    elseif st == "sbiac" then
      if b == SE then d.tn = nil else d.tn = "sb" end
    else -- WILL, WONT, DO or DONT: b is the option
      out[#out + 1] = { "telnet", NAMES[st], b }
      d.tn = nil
    end
    i = i + 1
  end
  return i
end

-- d:feed(data) -> list of the events data completes
function Decoder:feed(data)
  local out, i, n = {}, 1, #data
  while i <= n do
    if self.tn then i = telnet(self, data, i, out) end
    if i > n then break end
    local j = find(data, "[\n\255]", i)
    if not j then
      add(self, sub(data, i))
      break
    end
    add(self, sub(data, i, j - 1))
    if byte(data, j) == 10 then
      finish_line(self, out)
    else
      self.tn = "iac"
    end
    i = j + 1
  end
  return out
end

-- d:pending() -> bytes of an unfinished line (dropped if the peer leaves:
-- a line cut off by a disconnect is not sent)
function Decoder:pending() return self.rest and #self.rest or 0 end

-- reply(cmd, opt) -> the bytes that answer a telnet command, or nil: DO
-- TIMING-MARK gets WILL TIMING-MARK (the mark is reached at once), any
-- other DO gets WONT and any WILL gets DONT (no option is supported).
function _M.reply(cmd, opt)
  if cmd == "do" then
    return char(IAC, opt == TIMING_MARK and WILL or WONT, opt)
  elseif cmd == "will" then
    return char(IAC, DONT, opt)
  end
  return nil
end

_M.IAC = IAC
_M.TIMING_MARK = TIMING_MARK

return _M
