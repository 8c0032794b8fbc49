-- t/lib/wsraw.lua: raw WebSocket frames for the 7xx tests, written apart
-- from coronet.websocket so that the two check each other.
--   local wsraw = require "lib.wsraw"
--   local c = wsraw.connect(s, "/echo")        -- handshake done
--   c:write(wsraw.frame(1, "hi"))              -- a masked text frame
--   local f = wsraw.read(c)   -- {fin=, op=, data=, code=, reason=}
local bit = require "bit"
local httpc = require "lib.httpc"
local band, bor, bxor, rshift = bit.band, bit.bor, bit.bxor, bit.rshift
local char, byte, concat, floor = string.char, string.byte, table.concat,
  math.floor

local _M = {}

local KEY = "dGhlIHNhbXBsZSBub25jZQ=="
_M.ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

-- connect(s, path) -> a connection past a WebSocket handshake with server
-- s, and the 101 response; raises when refused.
function _M.connect(s, path)
  local c = s:connect()
  c:write(httpc.req("GET", path, { Upgrade = "websocket",
    Connection = "Upgrade", ["Sec-WebSocket-Key"] = KEY,
    ["Sec-WebSocket-Version"] = "13" }))
  local r = assert(httpc.read(c, true))
  if r.status ~= 101 then error("handshake refused: " .. r.status, 2) end
  return c, r
end

local function be(n, bytes)
  local out = {}
  for i = bytes, 1, -1 do
    out[i] = char(n % 256)
    n = floor(n / 256)
  end
  return concat(out)
end

-- frame(op, data [, o]) -> a frame's bytes: o.fin (default true),
-- o.mask (default true), o.len (a length to announce instead of #data),
-- o.rsv (bits 0x70), o.form ("short", 126 or 127: force a length form).
function _M.frame(op, data, o)
  o = o or {}
  local fin = o.fin == nil or o.fin
  local masked = o.mask == nil or o.mask
  local len = o.len or #data
  local b0 = bor(fin and 0x80 or 0, o.rsv or 0, op)
  local mbit = masked and 0x80 or 0
  local lenbytes
  if (len < 126 and not o.form) or o.form == "short" then
    lenbytes = char(bor(mbit, len))
  elseif (len < 65536 and not o.form) or o.form == 126 then
    lenbytes = char(bor(mbit, 126)) .. be(len, 2)
  else
    lenbytes = char(bor(mbit, 127)) .. (o.raw_len or be(len, 8))
  end
  if not masked then return char(b0) .. lenbytes .. data end
  local key = { 0x37, 0xfa, 0x21, 0x3d }
  local out = {}
  for i = 1, #data do
    out[i] = char(bxor(byte(data, i), key[(i - 1) % 4 + 1]))
  end
  return char(b0) .. lenbytes .. char(key[1], key[2], key[3], key[4])
    .. concat(out)
end

-- close(code [, reason]) -> a masked close frame.
function _M.close(code, reason)
  return _M.frame(8, be(code, 2) .. (reason or ""))
end

-- read(c) -> the next frame from the server | nil, err. Server frames
-- must not be masked: mask is true if one was.
function _M.read(c)
  local h, err = c:read_full(2)
  if not h then return nil, err end
  local b0, b1 = byte(h, 1, 2)
  local f = { fin = band(b0, 0x80) ~= 0, op = band(b0, 0x0f),
    mask = band(b1, 0x80) ~= 0 }
  local len = band(b1, 0x7f)
  if len == 126 then
    local x = c:read_full(2)
    len = byte(x, 1) * 256 + byte(x, 2)
  elseif len == 127 then
    local x = c:read_full(8)
    len = 0
    for i = 1, 8 do len = len * 256 + byte(x, i) end
  end
  f.data = len > 0 and c:read_full(len) or ""
  if f.op == 8 and #f.data >= 2 then
    f.code = byte(f.data, 1) * 256 + byte(f.data, 2)
    f.reason = f.data:sub(3)
  end
  return f
end

-- _M.rshift is here for tests that build lengths by hand.
_M.rshift = rshift

return _M
