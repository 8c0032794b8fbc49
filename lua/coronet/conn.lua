-- coronet.conn: the blocking methods of connections. Each calls the host;
-- when the host parked the task instead of answering, it yields until the
-- task is woken and asks again. See host/lcn_conn.c for the contracts.
local C = require "coronet.c.conn"
local coronet = require "coronet"
local error, ipairs = error, ipairs
local wait = coronet.wait

local methods = C.methods
local _M = { metatable = C.metatable, methods = methods }

-- The methods that may wait; conn:write(data) -> count | nil, err,
-- count_queued takes a string or a table of strings, sent in one writev.
for _, name in ipairs { "read", "read_full", "peek", "read_line",
  "read_until", "write" } do
  coronet.blocking(methods, name, "conn")
end
-- conn:lines([max]) -> iterator over lines (without "\n" or "\r\n").
-- The loop ends at EOF or close; other errors (timeout, line too long)
-- are raised.
function methods.lines(self, max)
  return function()
    local line, err = self:read_line(max)
    if line then return line end
    if err ~= "eof" and err ~= "closed" then
      error("conn:lines: " .. err, 2)
    end
  end
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
