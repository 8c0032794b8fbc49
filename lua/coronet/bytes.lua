-- coronet.bytes: in-memory Readers and Writers, as Go's bytes.Buffer and
-- strings.Reader: buffer([s]) reads what was written to it; reader(s)
-- reads a string.
local io_ = require "coronet.io"
local setmetatable, type, error, tostring = setmetatable, type, error,
  tostring
local concat, sub = table.concat, string.sub

local _M = { _VERSION = "0.1.0" }
local EOF = io_.EOF
local COPY_SIZE = io_.COPY_SIZE

local function check_size(n, fname)
  if n == nil then return COPY_SIZE end
  if type(n) ~= "number" or n <= 0 then
    error("bad argument #1 to '" .. fname .. "' (size must be positive, got "
      .. tostring(n) .. ")", 3)
  end
  return n
end

-- -- Buffer --------------------------------------------------------------
--
-- Unread bytes are s[off+1 ..] followed by the strings in parts, which
-- are joined into s only when s runs out or someone asks for the whole.

local Buffer = {}
Buffer.__index = Buffer
_M.Buffer = Buffer

-- buffer([s]) -> a Buffer holding s (default empty).
function _M.buffer(s)
  if s ~= nil and type(s) ~= "string" then
    error("bad argument #1 to 'buffer' (string expected, got " .. type(s)
      .. ")", 2)
  end
  return setmetatable({ s = s or "", off = 0, parts = {}, np = 0, plen = 0 },
    Buffer)
end

local function join(b)
  if b.np == 0 then return end
  local rest = b.off > 0 and sub(b.s, b.off + 1) or b.s
  b.s = rest .. concat(b.parts, "", 1, b.np)
  b.off, b.parts, b.np, b.plen = 0, {}, 0, 0
end

-- buffer:write(s) -> #s; s is a string or a table of strings.
function Buffer:write(s)
  local np, n = self.np, 0
  if type(s) == "table" then
    for i = 1, #s do
      local f = s[i]
      if #f > 0 then
        np = np + 1
        self.parts[np] = f
        n = n + #f
      end
    end
  elseif type(s) == "string" then
    if #s > 0 then
      np = np + 1
      self.parts[np] = s
      n = #s
    end
  else
    error("bad argument #1 to 'write' (string expected, got " .. type(s)
      .. ")", 2)
  end
  self.np, self.plen = np, self.plen + n
  return n
end

-- buffer:read([n]) -> 1..n bytes | nil, "eof" while empty (until more is
-- written).
function Buffer:read(n)
  n = check_size(n, "read")
  local s, off = self.s, self.off
  if off >= #s then
    if self.np == 0 then
      self.s, self.off = "", 0
      return nil, EOF
    end
    join(self)
    s, off = self.s, 0
  end
  local k = #s - off
  if k > n then k = n end
  self.off = off + k
  return sub(s, off + 1, off + k)
end

-- buffer:len() -> count of unread bytes
function Buffer:len()
  return #self.s - self.off + self.plen
end

-- buffer:string() -> the unread bytes (they stay unread)
function Buffer:string()
  join(self)
  if self.off > 0 then
    self.s, self.off = sub(self.s, self.off + 1), 0
  end
  return self.s
end
Buffer.__tostring = Buffer.string

-- buffer:reset() empties the buffer.
function Buffer:reset()
  self.s, self.off, self.parts, self.np, self.plen = "", 0, {}, 0, 0
end

-- buffer:truncate(n) keeps the first n unread bytes.
function Buffer:truncate(n)
  if type(n) ~= "number" or n < 0 or n > self:len() then
    error("bad argument #1 to 'truncate' (out of range)", 2)
  end
  self.s, self.off = sub(self:string(), 1, n), 0
end

-- buffer:next(n) -> the next n unread bytes, or fewer if fewer are
-- there ("" when empty); they count as read.
function Buffer:next(n)
  if type(n) ~= "number" or n < 0 then
    error("bad argument #1 to 'next' (count >= 0 expected)", 2)
  end
  if n == 0 or self:len() == 0 then return "" end
  local s = self:string()
  self.off = n < #s and n or #s
  return sub(s, 1, self.off)
end

-- buffer:write_to(w) -> bytes, err: writes the unread bytes to w in one
-- write and empties the buffer (nothing is taken if the write fails).
function Buffer:write_to(w)
  if self:len() == 0 then return 0 end
  local s = self:string()
  local n, err = w:write(s)
  if not n then return 0, err end
  self:reset()
  return #s
end

-- buffer:read_from(r) -> bytes, err: appends what r gives until its EOF.
function Buffer:read_from(r)
  return io_.copy_plain(self, r)
end

-- -- Reader --------------------------------------------------------------

local Reader = {}
Reader.__index = Reader
_M.Reader = Reader

-- reader(s) -> a Reader of the string s.
function _M.reader(s)
  if type(s) ~= "string" then
    error("bad argument #1 to 'reader' (string expected, got " .. type(s)
      .. ")", 2)
  end
  return setmetatable({ s = s, off = 0 }, Reader)
end

-- reader:read([n]) -> 1..n bytes | nil, "eof"
function Reader:read(n)
  n = check_size(n, "read")
  local s, off = self.s, self.off
  if off >= #s then return nil, EOF end
  local k = #s - off
  if k > n then k = n end
  self.off = off + k
  return sub(s, off + 1, off + k)
end

-- reader:len() -> count of unread bytes; reader:size() -> #s
function Reader:len()
  local k = #self.s - self.off
  return k > 0 and k or 0
end

function Reader:size() return #self.s end

-- reader:seek([whence [, offset]]) -> position | nil, err; as file:seek.
function Reader:seek(whence, offset)
  whence, offset = whence or "cur", offset or 0
  local base
  if whence == "set" then base = 0
  elseif whence == "cur" then base = self.off
  elseif whence == "end" then base = #self.s
  else
    error("bad argument #1 to 'seek' (invalid option '" .. tostring(whence)
      .. "')", 2)
  end
  if base + offset < 0 then return nil, "bytes: negative position" end
  self.off = base + offset
  return self.off
end

-- reader:reset(s) starts reading s from its beginning.
function Reader:reset(s)
  self.s, self.off = s, 0
end

-- reader:write_to(w) -> bytes, err: writes the unread rest in one write.
function Reader:write_to(w)
  if self.off >= #self.s then return 0 end
  local rest = sub(self.s, self.off + 1)
  local n, err = w:write(rest)
  if not n then return 0, err end
  self.off = #self.s
  return #rest
end

return _M
