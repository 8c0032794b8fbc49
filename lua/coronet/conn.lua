-- coronet.conn: the blocking methods of connections. Each calls the host;
-- when the host parked the task instead of answering, it yields until the
-- task is woken and asks again. See host/lcn_conn.c for the contracts.
local C = require "coronet.c.conn"
local coronet = require "coronet"
local ipairs, setmetatable = ipairs, setmetatable

local methods = C.methods
local _M = { metatable = C.metatable, methods = methods }
local raw_read, raw_line, raw_until, raw_write = methods.read,
  methods.read_line, methods.read_until, methods.write
local retry, cannot_block, PARK = coronet.retry, coronet.cannot_block,
  coronet.PARK
local isyieldable, co_yield = coroutine.isyieldable, coroutine.yield

-- The methods that may wait; conn:write(data) -> count | nil, err,
-- count_queued takes a string or a table of strings, sent in one writev.
for _, m in ipairs { { "read", "number?" }, { "read_full", "number" },
  { "peek", "number" }, { "read_line", "number?" },
  { "read_until", "string", "number?" }, { "write" } } do
  coronet.blocking(methods, m[1], "conn", m[2], m[3])
end

-- -- Fast reads ----------------------------------------------------------
-- read, read_line and read_until first try the host through LuaJIT's FFI,
-- which JIT traces compile (a classic C function call ends a trace): when
-- what they ask for is buffered (in one block, with no other reader), the
-- host lends the bytes, Lua copies them into a string, the host drops
-- them. Anything else (nothing buffered yet, a line too long, EOF, a
-- closed connection, bad arguments) takes the blocking methods above,
-- which give the same answers.
local ffi = require "ffi"
ffi.cdef [[
typedef struct lcn_span_s { const char *p; size_t n, drop; } lcn_span_t;
int lcn_conn_ffi_delim(void *box, const char *d, size_t dlen, size_t max,
                       lcn_span_t *out);
int lcn_conn_ffi_line(void *box, size_t max, lcn_span_t *out);
int lcn_conn_ffi_read(void *box, size_t n, lcn_span_t *out);
void lcn_conn_ffi_drop(void *box, size_t n);
int lcn_conn_ffi_room(void *box, size_t n);
int lcn_conn_ffi_write(void *box, const char *p, size_t n);
int lcn_conn_ffi_writev(void *box, const char *const *p, const size_t *n,
                        int k);
]]
local H, fstring = ffi.C, ffi.string
-- (looked up once: each ffi.C.name in interpreted code is a C call)
local ffi_read, ffi_line, ffi_delim, ffi_drop = H.lcn_conn_ffi_read,
  H.lcn_conn_ffi_line, H.lcn_conn_ffi_delim, H.lcn_conn_ffi_drop
local ffi_room, ffi_write, ffi_writev = H.lcn_conn_ffi_room,
  H.lcn_conn_ffi_write, H.lcn_conn_ffi_writev
local out = ffi.new("lcn_span_t")
local getmetatable, type = getmetatable, type
local MT = C.metatable
local BLOCK = C.block_size

local slow_read, slow_line, slow_until, slow_write = methods.read,
  methods.read_line, methods.read_until, methods.write

-- take returns the bytes the host lent (out) as a string, and has the
-- host drop them.
local function take(self)
  local s = fstring(out.p, out.n)
  ffi_drop(self, out.drop)
  return s
end

-- size_ok says whether x is a size the fast path passes on as it is.
local function size_ok(x, least)
  return type(x) == "number" and x >= least and x < 1e15
end

-- Past the fast path, good arguments go straight to the host (retry, a
-- tail call: no frame on the task's stack while it waits), others to the
-- blocking method, which checks them.
function methods.read(self, n)
  if getmetatable(self) == MT and (n == nil or size_ok(n, 1)) then
    if ffi_read(self, n or BLOCK, out) == 1 then return take(self) end
    return retry(raw_read, self, n)
  end
  return slow_read(self, n)
end

function methods.read_line(self, max)
  if getmetatable(self) == MT and (max == nil or size_ok(max, 0)) then
    if ffi_line(self, max or 0, out) == 1 then return take(self) end
    return retry(raw_line, self, max)
  end
  return slow_line(self, max)
end

function methods.read_until(self, delim, max)
  if getmetatable(self) == MT and type(delim) == "string"
    and (max == nil or size_ok(max, 0)) then
    if ffi_delim(self, delim, #delim, max or 0, out) == 1 then
      return take(self)
    end
    return retry(raw_until, self, delim, max)
  end
  return slow_until(self, delim, max)
end

-- -- Fast writes ---------------------------------------------------------
-- write(data) with data a string, or a table of strings, that fits below
-- the write chain's high-water mark goes through the FFI too: the host
-- says there is room, then takes each piece. A piece it fails to take
-- (out of memory) sends the rest to the classic write, from there, which
-- says why; anything else (no room, a closed connection, a number among
-- the pieces, bad arguments) goes to the classic write at once.

-- write_pieces queues t[1..n] (total bytes) through the FFI: up to
-- MAXV pieces in one call (the host gathers small ones into one append),
-- more one at a time.
local MAXV = 16
local vp, vn = ffi.new("const char *[?]", MAXV), ffi.new("size_t[?]", MAXV)

local function write_pieces(self, t, n, total)
  local off = 0
  if n <= MAXV then
    for i = 1, n do
      local s = t[i]
      vp[i - 1], vn[i - 1] = s, #s
    end
    local k = ffi_writev(self, vp, vn, n)
    if k == n then return total end
    for i = 1, k do off = off + #t[i] end
    return retry(raw_write, self, t, off)
  end
  for i = 1, n do
    local s = t[i]
    local len = #s
    if ffi_write(self, s, len) ~= 0 then
      return retry(raw_write, self, t, off)
    end
    off = off + len
  end
  return total
end

function methods.write(self, data)
  if getmetatable(self) == MT then
    local kind = type(data)
    if kind == "string" then
      local len = #data
      if ffi_room(self, len) == 1 then
        if ffi_write(self, data, len) == 0 then return len end
        return retry(raw_write, self, data, 0)
      end
    elseif kind == "table" then
      local n, total = #data, 0
      for i = 1, n do
        local s = data[i]
        if type(s) ~= "string" then return slow_write(self, data) end
        total = total + #s
      end
      if ffi_room(self, total) == 1 then
        return write_pieces(self, data, n, total)
      end
    end
  end
  return slow_write(self, data)
end

-- conn:lines([max]) -> iterator over lines (without "\n" or "\r\n"), as
-- Go's bufio.Scanner: it never raises. The loop ends at EOF, at a close,
-- or at the first error (a reset, a timeout); conn:lines_error() then
-- says why. A line longer than max (default: the read high-water mark)
-- is skipped, as read_line skips it, and the loop goes on.
-- conn:lines_error() -> err | nil, skipped
-- The error that ended the connection's last lines() loop ("timeout",
-- "connection reset by peer", ...), or nil when it ended at EOF or at a
-- close; skipped counts the over-long lines that loop passed over.
local ended = setmetatable({}, { __mode = "k" }) -- conn -> {err, skipped}

-- lines_end ends a lines() loop of self that skipped over-long lines
-- (st.skipped) at err.
local function lines_end(self, st, err)
  if err ~= "eof" and err ~= "closed" or st.skipped > 0 then
    ended[self] = { err ~= "eof" and err ~= "closed" and err or nil,
      st.skipped }
  end
  return nil
end

-- slow_next is a lines() step for what the fast path does not take
-- (another kind of object, a bad max): through self:read_line.
local function slow_next(self, max, st)
  local line, err = self:read_line(max)
  if line then return line end
  if err ~= "line too long" then return lines_end(self, st, err) end
  st.skipped = st.skipped + 1
  return slow_next(self, max, st)
end

-- On a connection, each step of the loop is the iterator itself, calling
-- itself in tail position (as it waits, and past over-long lines), so
-- that a loop waits with the iterator's frame alone on the task's stack.
function methods.lines(self, max)
  if ended[self] then ended[self] = nil end
  local st = { skipped = 0 }
  if getmetatable(self) ~= MT or (max ~= nil and not size_ok(max, 0)) then
    return function() return slow_next(self, max, st) end
  end
  local function step()
    if ffi_line(self, max or 0, out) == 1 then return take(self) end
    local line, err = raw_line(self, max)
    if line then return line end
    if line == false then
      if not isyieldable() then cannot_block("conn:lines", 3) end
      co_yield(PARK)
      return step()
    end
    if err ~= "line too long" then return lines_end(self, st, err) end
    st.skipped = st.skipped + 1
    return step()
  end
  return step
end

function methods.lines_error(self)
  local e = ended[self]
  if e then return e[1], e[2] end
  return nil, 0
end

local pump, pump_wait = C.pump, C.pump_wait

-- copy_wait waits for the pump p, calling itself in tail position (no
-- frame of its own on the task's stack while it waits).
local function copy_wait(p)
  if not isyieldable() then cannot_block("copy", 3) end
  co_yield(PARK)
  local n, err = pump_wait(p)
  if n == false then return copy_wait(err) end
  if n == nil then return 0, err end
  return n, err
end

local hand_off, getinfo = C.hand_off, debug.getinfo

-- copy(dst, src [, limit]) moves src's input to dst inside the host, with
-- no Lua string per chunk, until src's EOF (returns the count), an error
-- (count, err) or limit bytes. An echo that is the last act of its
-- handler (`return io.copy(conn, conn)`: this call is then the task's
-- only frame) is handed to the host, and the task ends at once: see
-- hand_off in host/lcn_conn.c.
function _M.copy(dst, src, limit)
  if dst == src and limit == nil then
    local below = getinfo(2, "f")
    if below == nil and hand_off(dst) then return 0 end
  end
  local n, err = pump(dst, src, limit)
  if n == false then return copy_wait(err) end
  if n == nil then return 0, err end
  return n, err
end

return _M
