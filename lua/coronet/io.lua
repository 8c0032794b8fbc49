-- coronet.io: Go's io in Lua conventions. A Reader has r:read(n) returning
-- 1..n bytes or nil, err ("eof" at the end); a Writer has w:write(s)
-- returning the count or nil, err.
local conn = require "coronet.conn"
local getmetatable = getmetatable

local _M = { _VERSION = "0.1.0", EOF = "eof" }
local EOF = _M.EOF
local CONN = conn.metatable
local COPY_SIZE = 32768

-- copy(dst, src) -> bytes, err
-- Copies until src's EOF (err is nil then) or the first error. Between two
-- connections the bytes move inside the host, chain to chain.
function _M.copy(dst, src)
  if getmetatable(dst) == CONN and getmetatable(src) == CONN then
    return conn.copy(dst, src)
  end
  local total = 0
  while true do
    local s, err = src:read(COPY_SIZE)
    if not s then
      if err == EOF then return total end
      return total, err
    end
    local n, werr = dst:write(s)
    if not n then return total, werr end
    total = total + #s
  end
end

return _M
