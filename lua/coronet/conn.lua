-- coronet.conn: the blocking methods of connections. Each calls the host;
-- when the host parked the task instead of answering, it yields until the
-- task is woken and asks again. See host/lcn_conn.c for the contracts.
local C = require "coronet.c.conn"
local coronet = require "coronet"
local ipairs, setmetatable = ipairs, setmetatable
local wait = coronet.wait

local methods = C.methods
local _M = { metatable = C.metatable, methods = methods }

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
const char *lcn_conn_ffi_delim(void *box, const char *d, size_t dlen,
                               size_t max, int line, size_t *out);
const char *lcn_conn_ffi_read(void *box, size_t n, size_t *out);
void lcn_conn_ffi_drop(void *box, size_t n);
]]
local H, fstring = ffi.C, ffi.string
local out = ffi.new("size_t[2]")
local getmetatable, type = getmetatable, type
local MT = C.metatable
local BLOCK = C.block_size

local slow_read, slow_line, slow_until = methods.read, methods.read_line,
  methods.read_until

-- take returns the bytes the host lent at p as a string, and has the host
-- drop them.
local function take(self, p)
  local s = fstring(p, out[0])
  H.lcn_conn_ffi_drop(self, out[1])
  return s
end

-- size_ok says whether x is a size the fast path passes on as it is.
local function size_ok(x, least)
  return type(x) == "number" and x >= least and x < 1e15
end

function methods.read(self, n)
  if getmetatable(self) == MT and (n == nil or size_ok(n, 1)) then
    local p = H.lcn_conn_ffi_read(self, n or BLOCK, out)
    if p ~= nil then return take(self, p) end
  end
  return slow_read(self, n)
end

function methods.read_line(self, max)
  if getmetatable(self) == MT and (max == nil or size_ok(max, 0)) then
    local p = H.lcn_conn_ffi_delim(self, "\n", 1, max or 0, 1, out)
    if p ~= nil then return take(self, p) end
  end
  return slow_line(self, max)
end

function methods.read_until(self, delim, max)
  if getmetatable(self) == MT and type(delim) == "string"
    and (max == nil or size_ok(max, 0)) then
    local p = H.lcn_conn_ffi_delim(self, delim, #delim, max or 0, 0, out)
    if p ~= nil then return take(self, p) end
  end
  return slow_until(self, delim, max)
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

function methods.lines(self, max)
  local skipped = 0
  if ended[self] then ended[self] = nil end
  return function()
    while true do
      local line, err = self:read_line(max)
      if line then return line end
      if err ~= "line too long" then
        if err ~= "eof" and err ~= "closed" or skipped > 0 then
          ended[self] = { err ~= "eof" and err ~= "closed" and err or nil,
            skipped }
        end
        return nil
      end
      skipped = skipped + 1
    end
  end
end

function methods.lines_error(self)
  local e = ended[self]
  if e then return e[1], e[2] end
  return nil, 0
end

local pump, pump_wait = C.pump, C.pump_wait

-- copy(dst, src [, limit]) moves src's input to dst inside the host, with
-- no Lua string per chunk, until src's EOF (returns the count), an error
-- (count, err) or limit bytes.
function _M.copy(dst, src, limit)
  local n, err = pump(dst, src, limit)
  while n == false do
    wait("copy")
    n, err = pump_wait(err)
  end
  if n == nil then return 0, err end
  return n, err
end

return _M
