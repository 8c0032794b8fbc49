-- coronet.io: Go's io in Lua conventions. A Reader has r:read(n) returning
-- 1..n bytes or nil, err ("eof" at the end); a Writer has w:write(s)
-- returning the count or nil, err. Connections, files, pipes, byte buffers
-- and any table with those methods work with every helper here.
--
-- The helpers also accept a Reader that returns data together with an
-- error (s, err): the data counts, then the error.
local conn = require "coronet.conn"
local coronet = require "coronet"
local sched = require "coronet.c.sched"
local setmetatable, getmetatable, type, error, tostring, select =
  setmetatable, getmetatable, type, error, tostring, select
local concat, sub = table.concat, string.sub
local park, wake = sched.park, sched.wake
local pairs = pairs
local wait = coronet.wait

local _M = { _VERSION = "0.1.0", EOF = "eof" }
local EOF = _M.EOF
local CONN = conn.metatable
local COPY_SIZE = 32768
local MAX_EMPTY = 100 -- empty reads in a row before giving up
local NO_PROGRESS = "io: no progress (empty reads)"
_M.COPY_SIZE = COPY_SIZE

local function check_reader(r, n, fname)
  local t = type(r)
  if (t ~= "table" and t ~= "userdata") or not r.read then
    error("bad argument #" .. n .. " to '" .. fname .. "' (Reader expected, "
      .. "got " .. (t == "table" and "a table without read" or t) .. ")", 3)
  end
end

local function check_writer(w, n, fname)
  local t = type(w)
  if (t ~= "table" and t ~= "userdata") or not w.write then
    error("bad argument #" .. n .. " to '" .. fname .. "' (Writer expected, "
      .. "got " .. (t == "table" and "a table without write" or t) .. ")", 3)
  end
end

local function check_count(n, argn, fname)
  if type(n) ~= "number" or n < 0 then
    error("bad argument #" .. argn .. " to '" .. fname .. "' (count >= 0 "
      .. "expected, got " .. tostring(n) .. ")", 3)
  end
end

-- copy_plain(dst, src [, size]) -> bytes, err
-- The plain loop of copy: read up to size bytes (default 32 KiB), write
-- them, until src's EOF. It looks for no fast path, so Readers' own
-- write_to and Writers' read_from methods may use it.
local function copy_plain(dst, src, size)
  size = size or COPY_SIZE
  local total, empty = 0, 0
  while true do
    local s, err = src:read(size)
    if s and #s > 0 then
      local n, werr = dst:write(s)
      if not n then return total, werr end
      total = total + #s
      empty = 0
    elseif not err then
      empty = empty + 1
      if empty >= MAX_EMPTY then return total, NO_PROGRESS end
    end
    if err then
      if err == EOF then return total end
      return total, err
    end
  end
end
_M.copy_plain = copy_plain

-- copy(dst, src) -> bytes, err
-- Copies until src's EOF (err is nil then) or the first error. Between two
-- connections the bytes move inside the host, chain to chain, with no Lua
-- string; between a file and a connection through the file's C buffer.
-- Otherwise src:write_to(dst) or dst:read_from(src) when they exist (as
-- in Go), else a loop of read and write.
function _M.copy(dst, src)
  check_writer(dst, 1, "copy")
  check_reader(src, 2, "copy")
  if getmetatable(dst) == CONN and getmetatable(src) == CONN then
    return conn.copy(dst, src)
  end
  local write_to = src.write_to
  if write_to then return write_to(src, dst) end
  local read_from = dst.read_from
  if read_from then return read_from(dst, src) end
  return copy_plain(dst, src)
end

-- -- Readers that wrap Readers -------------------------------------------

-- Wrappers return data and an error in two calls: the data now, the
-- error (kept in self.err) at the next call.

local Limited = {}
Limited.__index = Limited

-- limit_reader(r, n) -> a Reader of at most the next n bytes of r; its
-- field n counts what is left.
function _M.limit_reader(r, n)
  check_reader(r, 1, "limit_reader")
  check_count(n, 2, "limit_reader")
  return setmetatable({ r = r, n = n }, Limited)
end

function Limited:read(k)
  local left = self.n
  if left <= 0 then return nil, EOF end
  local err = self.err
  if err then
    self.err = nil
    return nil, err
  end
  k = k or COPY_SIZE
  if k > left then k = left end
  local s
  s, err = self.r:read(k)
  if s and #s > 0 then
    if #s > left then s = sub(s, 1, left) end -- a Reader that gave too much
    self.n = left - #s
    self.err = err
    return s
  end
  return s, err -- nothing: nil, err (or "" from a Reader that misbehaves)
end

-- copy_n(dst, src, n) -> bytes, err
-- Copies exactly n bytes: err is "eof" if src ended first. Between two
-- connections the host's pump moves them.
function _M.copy_n(dst, src, n)
  check_writer(dst, 1, "copy_n")
  check_reader(src, 2, "copy_n")
  check_count(n, 3, "copy_n")
  local moved, err
  if getmetatable(dst) == CONN and getmetatable(src) == CONN then
    moved, err = conn.copy(dst, src, n)
  else
    moved, err = _M.copy(dst, _M.limit_reader(src, n))
  end
  if moved < n and not err then err = EOF end
  return moved, err
end

-- read_full(r, n) -> exactly n bytes | nil, err [, partial]
-- "eof" if r ended before any byte, "unexpected eof" and the bytes read if
-- it ended later. A connection does it natively.
function _M.read_full(r, n)
  check_reader(r, 1, "read_full")
  check_count(n, 2, "read_full")
  if getmetatable(r) == CONN then return r:read_full(n) end
  if n == 0 then return "" end
  local parts, np, got, empty = {}, 0, 0, 0
  while true do
    local s, err = r:read(n - got)
    if s and #s > 0 then
      if #s > n - got then
        return nil, "io: read returned more bytes than asked",
          concat(parts, "", 1, np)
      end
      np = np + 1
      parts[np] = s
      got = got + #s
      if got == n then return concat(parts, "", 1, np) end
      empty = 0
    elseif not err then
      empty = empty + 1
      if empty >= MAX_EMPTY then err = NO_PROGRESS end
    end
    if err then
      if got == 0 then return nil, err end
      return nil, err == EOF and "unexpected eof" or err,
        concat(parts, "", 1, np)
    end
  end
end

-- read_all(r) -> everything until EOF | nil, err, what was read
function _M.read_all(r)
  check_reader(r, 1, "read_all")
  local parts, np, empty = {}, 0, 0
  while true do
    local s, err = r:read(COPY_SIZE)
    if s and #s > 0 then
      np = np + 1
      parts[np] = s
      empty = 0
    elseif not err then
      empty = empty + 1
      if empty >= MAX_EMPTY then err = NO_PROGRESS end
    end
    if err then
      if err == EOF then return concat(parts, "", 1, np) end
      return nil, err, concat(parts, "", 1, np)
    end
  end
end

local Multi = {}
Multi.__index = Multi

-- multi_reader(r1, r2, ...) -> a Reader of r1's bytes, then r2's, ...;
-- "eof" after the last one's end.
function _M.multi_reader(...)
  local rs = { ... }
  for i = 1, select("#", ...) do check_reader(rs[i], i, "multi_reader") end
  return setmetatable({ rs = rs, i = 1, last = select("#", ...) }, Multi)
end

function Multi:read(n)
  local err = self.err
  if err then
    self.err = nil
    return nil, err
  end
  local empty = 0
  while self.i <= self.last do
    local s
    s, err = self.rs[self.i]:read(n or COPY_SIZE)
    local ended = err == EOF
    if ended then
      self.rs[self.i] = false -- let it go
      self.i = self.i + 1
      err = nil
    end
    if s and #s > 0 then
      self.err = err
      return s
    end
    if err then return nil, err end
    if not ended then
      empty = empty + 1
      if empty >= MAX_EMPTY then return nil, NO_PROGRESS end
    end
  end
  return nil, EOF
end

local Tee = {}
Tee.__index = Tee

-- tee_reader(r, w) -> a Reader of r's bytes that writes each to w as it
-- reads; a failed write fails the read.
function _M.tee_reader(r, w)
  check_reader(r, 1, "tee_reader")
  check_writer(w, 2, "tee_reader")
  return setmetatable({ r = r, w = w }, Tee)
end

function Tee:read(n)
  local err = self.err
  if err then
    self.err = nil
    return nil, err
  end
  local s
  s, err = self.r:read(n or COPY_SIZE)
  if s and #s > 0 then
    local ok, werr = self.w:write(s)
    if not ok then return nil, werr end
    self.err = err
    return s
  end
  return s, err
end

-- -- Writers ---------------------------------------------------------------

local MultiW = {}
MultiW.__index = MultiW

-- multi_writer(w1, w2, ...) -> a Writer that writes each string to every
-- one in turn; the first failure fails the write.
function _M.multi_writer(...)
  local ws = { ... }
  for i = 1, select("#", ...) do check_writer(ws[i], i, "multi_writer") end
  return setmetatable({ ws = ws, last = select("#", ...) }, MultiW)
end

local function data_len(s)
  if type(s) ~= "table" then return #s end
  local n = 0
  for i = 1, #s do n = n + #s[i] end
  return n
end

-- multi_writer:write(s) -> #s | nil, err; a table of strings is joined
-- first, since a Writer need only take strings.
function MultiW:write(s)
  if type(s) == "table" then s = concat(s) end
  local len = #s
  for i = 1, self.last do
    local n, err = self.ws[i]:write(s)
    if not n then return nil, err end
    if n ~= len then return nil, "io: short write" end
  end
  return len
end

local Discard = {}
Discard.__index = Discard

-- discard is a Writer that drops everything: write returns the length.
_M.discard = setmetatable({}, Discard)

function Discard:write(s) return data_len(s) end

-- discard:read_from(r) reads r to its end, keeping nothing.
function Discard:read_from(r)
  return copy_plain(self, r)
end

-- -- Pipes --------------------------------------------------------------------
--
-- A pipe hands each write to readers directly, with no buffer: write
-- parks until readers took all of its bytes; one write at a time, the
-- others wait their turn. Waiting tasks sit in sets and are all woken on
-- any change; each looks again.

local PipeReader, PipeWriter = {}, {}
PipeReader.__index = PipeReader
PipeWriter.__index = PipeWriter

-- pipe() -> reader, writer
-- Closing the writer makes reads return "eof" (or the error given to
-- close) once the bytes written are read; closing the reader makes writes
-- fail with "closed" (or the error given). Each end's own calls after
-- its close fail with "closed".
function _M.pipe()
  local p = { rwait = {}, wwait = {}, seq = 0 }
  return setmetatable({ p = p }, PipeReader), setmetatable({ p = p },
    PipeWriter)
end

local function wake_all(set)
  for co in pairs(set) do
    set[co] = nil
    wake(co)
  end
end

-- block parks the running task in set until someone wakes it.
local function block(set, what)
  local _, _, co, own = park()
  set[co] = true
  wait(what, own)
  set[co] = nil
end

-- pipe_reader:read([n]) -> 1..n bytes of the write in progress | nil, err
function PipeReader:read(n)
  local p = self.p
  n = n or COPY_SIZE
  if type(n) ~= "number" or n <= 0 then
    error("bad argument #1 to 'read' (size must be positive)", 2)
  end
  while true do
    if self.closed then return nil, "closed" end
    local data = p.data
    if data then
      local off = p.off
      local k = #data - off
      if k > n then k = n end
      p.off = off + k
      if p.off == #data then
        p.data, p.taken = nil, p.seq
        wake_all(p.wwait)
      end
      return sub(data, off + 1, off + k)
    end
    if p.wclosed then return nil, p.werr or EOF end
    block(p.rwait, "pipe:read")
  end
end

-- pipe_reader:close([err]) -> true; writers then get err or "closed".
function PipeReader:close(err)
  local p = self.p
  if not p.rclosed then
    p.rclosed, p.rerr = true, err
    self.closed = true
    wake_all(p.wwait)
    wake_all(p.rwait)
  end
  return true
end

-- pipe_writer:write(s) -> #s | nil, err, bytes_taken
-- s is a string or a table of strings. Parks until readers took it all.
function PipeWriter:write(s)
  local p = self.p
  if type(s) == "table" then s = concat(s) end
  if type(s) ~= "string" then
    error("bad argument #1 to 'write' (string expected, got " .. type(s)
      .. ")", 2)
  end
  while true do -- wait for our turn
    if self.closed then return nil, "closed", 0 end
    if p.rclosed then return nil, p.rerr or "closed", 0 end
    if not p.data then break end
    block(p.wwait, "pipe:write")
  end
  if #s == 0 then return 0 end
  local seq = p.seq + 1
  p.seq, p.data, p.off = seq, s, 0
  wake_all(p.rwait)
  while p.taken ~= seq do
    if p.rclosed or p.wclosed then
      p.data = nil
      wake_all(p.wwait)
      return nil, p.wclosed and "closed" or p.rerr or "closed", p.off
    end
    block(p.wwait, "pipe:write")
  end
  return #s
end

-- pipe_writer:close([err]) -> true; readers get err or "eof" after the
-- bytes already taken. A write in progress fails with "closed".
function PipeWriter:close(err)
  local p = self.p
  if not p.wclosed then
    p.wclosed, p.werr = true, err
    self.closed = true
    p.data = nil -- what readers did not take yet is dropped
    wake_all(p.rwait)
    wake_all(p.wwait)
  end
  return true
end

return _M
