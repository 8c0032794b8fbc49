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
