-- coronet.bufio: buffered Reader and Writer over any :read/:write object.
-- A connection already buffers in C (its read and write chains), so
-- reader(conn) is the connection itself and writer(conn) a thin wrapper:
-- the same calls are served natively.
local io_ = require "coronet.io"
local conn = require "coronet.conn"
local setmetatable, getmetatable, type, error, tostring =
  setmetatable, getmetatable, type, error, tostring
local find, sub, byte, concat = string.find, string.sub, string.byte,
  table.concat
local CR = 13

local _M = { _VERSION = "0.1.0" }
local EOF = io_.EOF
local CONN = conn.metatable
local DEFAULT_SIZE = 4096
local MIN_SIZE = 16
local DEFAULT_MAX = 65536 -- longest line by default, as a connection's
local MAX_EMPTY = 100     -- empty reads in a row before giving up
local NO_PROGRESS = "io: no progress (empty reads)"
local TOO_LONG = "line too long"

local function check_size(size, fname)
  if size == nil then return DEFAULT_SIZE end
  if type(size) ~= "number" or size <= 0 then
    error("bad argument #2 to '" .. fname .. "' (size must be positive, got "
      .. tostring(size) .. ")", 3)
  end
  return size < MIN_SIZE and MIN_SIZE or size
end

local function check_max(max, n)
  if max == nil or max == 0 then return DEFAULT_MAX end
  if type(max) ~= "number" or max < 0 then
    error("bad argument #" .. n .. " (maximum must not be negative)", 3)
  end
  return max
end

-- -- Reader ----------------------------------------------------------------
--
-- Unread bytes are buf[pos ..]. An error that came with data waits in err
-- until the data is used up. After "line too long", skip makes the next
-- line read drop input through the next delimiter first, as connections do.

local Reader = {}
Reader.__index = Reader
_M.Reader = Reader

-- reader(rd [, size]) -> a Reader reading rd size bytes at a time
-- (default 4096). Strings it returns are copies; they stay valid. For a
-- connection it returns the connection, whose methods are the same.
function _M.reader(rd, size)
  local t = type(rd)
  if (t ~= "table" and t ~= "userdata") or not rd.read then
    error("bad argument #1 to 'reader' (Reader expected, got " .. t .. ")", 2)
  end
  size = check_size(size, "reader")
  local mt = getmetatable(rd)
  if mt == CONN then return rd end
  if mt == Reader and rd.size >= size then return rd end
  return setmetatable({ rd = rd, size = size, buf = "", pos = 1 }, Reader)
end

-- take returns the error that came with earlier data, once.
local function take(self)
  local err = self.err
  self.err = nil
  return err
end

-- more reads once more from rd, at least want bytes asked; returns the
-- bytes, or nil, err.
local function more(self, want)
  local size = self.size
  if want and want > size then size = want end
  for _ = 1, MAX_EMPTY do
    local s, err = self.rd:read(size)
    if s and #s > 0 then
      self.err = err
      return s
    end
    if err then return nil, err end
  end
  return nil, NO_PROGRESS
end

-- buffered() -> count of bytes read from rd and not yet returned
function Reader:buffered()
  return #self.buf - self.pos + 1
end

-- read([n]) -> 1..n bytes | nil, err
-- Buffered bytes first; with none, one read of rd (straight into the
-- result when n is at least the buffer size).
function Reader:read(n)
  n = n or self.size
  if type(n) ~= "number" or n <= 0 then
    error("bad argument #1 to 'read' (size must be positive)", 2)
  end
  self.skip = nil
  local buf, pos = self.buf, self.pos
  local have = #buf - pos + 1
  if have == 0 then
    local err = take(self)
    if err then return nil, err end
    if n >= self.size then return more(self, n) end
    local s
    s, err = more(self)
    if not s then return nil, err end
    buf, pos, have = s, 1, #s
    self.buf = s
  end
  local k = have < n and have or n
  self.pos = pos + k
  if pos == 1 and k == #buf then return buf end
  return sub(buf, pos, pos + k - 1)
end

-- need makes at least n bytes buffered; returns true, or false, err.
local function need(self, n)
  local have = #self.buf - self.pos + 1
  if have >= n then return true end
  local parts, np = { sub(self.buf, self.pos) }, 1
  local err = take(self)
  while not err and have < n do
    local s
    s, err = more(self, n - have)
    if s then
      np = np + 1
      parts[np] = s
      have = have + #s
    end
  end
  self.buf, self.pos = concat(parts, "", 1, np), 1
  if have >= n then
    self.err = err
    return true
  end
  return false, err
end

-- peek(n) -> the next n bytes, left unread | nil, err [, partial]
-- At the end: "eof" with nothing buffered, else "unexpected eof" and the
-- bytes that are (they stay buffered).
function Reader:peek(n)
  if type(n) ~= "number" or n < 0 then
    error("bad argument #1 to 'peek' (count >= 0 expected)", 2)
  end
  local ok, err = need(self, n)
  local buf, pos = self.buf, self.pos
  if ok then return sub(buf, pos, pos + n - 1) end
  if pos > #buf then return nil, err end
  return nil, err == EOF and "unexpected eof" or err, sub(buf, pos)
end

-- skip_through drops input through the next d; true, or false, err.
local function skip_through(self, d)
  local keep = #d - 1
  while true do
    local buf = self.buf
    local i = find(buf, d, self.pos, true)
    if i then
      self.pos = i + #d
      self.skip = nil
      return true
    end
    local rest = #buf - self.pos + 1
    buf = rest > keep and sub(buf, #buf - keep + 1) or sub(buf, self.pos)
    local err = take(self)
    local s
    if not err then s, err = more(self) end
    if not s then
      self.buf, self.pos, self.skip = "", 1, nil -- the end in a long line
      return false, err
    end
    self.buf, self.pos = buf .. s, 1
  end
end

-- cut returns all[1 .. n], less a "\r" at its end for lines.
local function cut(all, n, line)
  if line and n > 0 and byte(all, n) == CR then n = n - 1 end
  return sub(all, 1, n)
end

-- read_delim serves read_line and read_until: the bytes before the next d
-- (at most max of them), consuming d; at the end, what is left as a last
-- piece; then the end's error.
local function read_delim(self, d, max, line)
  local dl = #d
  if self.skip then
    local ok, err = skip_through(self, d)
    if not ok then return nil, err end
  end
  local buf, pos = self.buf, self.pos
  local i = find(buf, d, pos, true)
  if i then -- the fast path: the delimiter is buffered
    self.pos = i + dl
    if i - pos > max then return nil, TOO_LONG end
    if line and i > pos and byte(buf, i - 1) == CR then i = i - 1 end
    return sub(buf, pos, i - 1)
  end
  local have = #buf - pos + 1
  local parts, np = { sub(buf, pos) }, 1
  local tail = dl > 1 and sub(parts[1], -(dl - 1)) or ""
  local err = take(self)
  while not err and have < max + dl do
    local s
    s, err = more(self)
    if s then
      local hay = dl > 1 and tail .. s or s
      local j = find(hay, d, 1, true)
      if j then
        local all = concat(parts, "", 1, np) .. s
        local at = have - #tail + j -- where d starts in all
        self.buf, self.pos = all, at + dl
        if at - 1 > max then return nil, TOO_LONG end
        return cut(all, at - 1, line)
      end
      np = np + 1
      parts[np] = s
      have = have + #s
      if dl > 1 then tail = sub(hay, -(dl - 1)) end
    end
  end
  if not err then -- too long, and no delimiter yet: skip through it later
    self.buf, self.pos, self.skip = tail, 1, true
    return nil, TOO_LONG
  end
  local all = concat(parts, "", 1, np)
  if err == EOF and have > 0 then -- the last piece, without delimiter
    self.buf, self.pos = "", 1
    self.err = err
    if have > max then return nil, TOO_LONG end
    return all
  end
  self.buf, self.pos = all, 1 -- kept for a later call
  if have == 0 then return nil, err end
  return nil, err, all
end

-- read_line([max]) -> line | nil, err [, partial]
-- The next line without its "\n" and a "\r" before it. A line longer
-- than max bytes (default 64 KiB) fails with "line too long" and is
-- dropped through its newline. On an error other than the end, the bytes
-- of an unfinished line come as a 3rd value and stay buffered.
function Reader:read_line(max)
  return read_delim(self, "\n", check_max(max, 1), true)
end

-- read_until(delim [, max]) -> bytes before delim | nil, err [, partial]
-- As read_line, for any delimiter; delim is consumed, not returned.
function Reader:read_until(delim, max)
  if type(delim) ~= "string" or #delim == 0 then
    error("bad argument #1 to 'read_until' (non-empty string expected)", 2)
  end
  return read_delim(self, delim, check_max(max, 2), false)
end

-- lines([max]) -> iterator over lines. The loop ends at "eof" or
-- "closed"; other errors (timeout, line too long) are raised.
function Reader:lines(max)
  return function()
    local line, err = self:read_line(max)
    if line then return line end
    if err ~= EOF and err ~= "closed" then
      error("bufio: lines: " .. tostring(err), 2)
    end
  end
end

-- write_to(w) -> bytes, err: the buffered bytes, then rd's rest through
-- io.copy (so rd's own fast paths apply).
function Reader:write_to(w)
  local total = 0
  local have = #self.buf - self.pos + 1
  if have > 0 then
    local n, err = w:write(sub(self.buf, self.pos))
    if not n then return 0, err end
    self.buf, self.pos, total = "", 1, have
  end
  local err = take(self)
  if err then
    if err == EOF then return total end
    return total, err
  end
  local n
  n, err = io_.copy(w, self.rd)
  return total + n, err
end

-- -- Writer ----------------------------------------------------------------

local Writer = {}
Writer.__index = Writer
_M.Writer = Writer

local ConnWriter = {}
ConnWriter.__index = ConnWriter

-- writer(w [, size]) -> a Writer that gathers writes until size bytes
-- (default 4096) wait, then writes them to w in one call; flush() writes
-- the rest. After a failed write every call fails with its error. For a
-- connection, whose write chain already gathers writes and sends them
-- when the task parks, it is a thin wrapper.
function _M.writer(w, size)
  local t = type(w)
  if (t ~= "table" and t ~= "userdata") or not w.write then
    error("bad argument #1 to 'writer' (Writer expected, got " .. t .. ")", 2)
  end
  size = check_size(size, "writer")
  local mt = getmetatable(w)
  if mt == CONN then return setmetatable({ c = w }, ConnWriter) end
  if mt == ConnWriter or (mt == Writer and w.size >= size) then return w end
  return setmetatable({ w = w, size = size, parts = {}, np = 0, n = 0 },
    Writer)
end

-- flush() -> true | nil, err
function Writer:flush()
  if self.err then return nil, self.err end
  if self.n == 0 then return true end
  local data = self.np == 1 and self.parts[1]
    or concat(self.parts, "", 1, self.np)
  self.parts, self.np, self.n = {}, 0, 0
  local n, err = self.w:write(data)
  if not n then
    self.err = err
    return nil, err
  end
  return true
end

-- write(s) -> #s | nil, err; s is a string or a table of strings.
function Writer:write(s)
  if self.err then return nil, self.err end
  if type(s) == "table" then s = concat(s) end
  if type(s) ~= "string" then
    error("bad argument #1 to 'write' (string expected, got " .. type(s)
      .. ")", 2)
  end
  local len = #s
  if len == 0 then return 0 end
  if self.n == 0 and len >= self.size then -- nothing to gather
    local n, err = self.w:write(s)
    if not n then
      self.err = err
      return nil, err
    end
    return len
  end
  local np = self.np + 1
  self.parts[np], self.np, self.n = s, np, self.n + len
  if self.n >= self.size then
    local ok, err = self:flush()
    if not ok then return nil, err end
  end
  return len
end

-- buffered() -> count of bytes gathered and not yet written
function Writer:buffered() return self.n end

-- available() -> room left before the next write to w
function Writer:available()
  local room = self.size - self.n
  return room > 0 and room or 0
end

-- read_from(r) -> bytes, err: flushes, then copies r to w (with w's and
-- r's fast paths).
function Writer:read_from(r)
  local ok, err = self:flush()
  if not ok then return 0, err end
  return io_.copy(self.w, r)
end

function ConnWriter:write(s) return self.c:write(s) end
function ConnWriter:flush() return true end
function ConnWriter:buffered() return 0 end
function ConnWriter:available() return 0 end
function ConnWriter:read_from(r) return io_.copy(self.c, r) end

return _M
