-- coronet.net: outbound connections and listeners opened by scripts.
-- Names resolve on libuv's thread pool, never on the loop.
local C = require "coronet.c.net"
local coronet = require "coronet"
local type, error = type, error
local wait = coronet.wait

local _M = { _VERSION = "0.1.0" }

-- dial(addr [, opts]) -> conn | nil, err
-- err names the address: "dial 127.0.0.1:1: connection refused".
-- addr is "host:port", "[ipv6]:port" or "unix:PATH"; opts.timeout bounds
-- the lookup and the connect, in seconds. The connection is the same kind
-- of object as an accepted one.
function _M.dial(addr, opts)
  if type(addr) ~= "string" then
    error("bad argument #1 to 'dial' (string expected, got " .. type(addr)
      .. ")", 2)
  end
  local timeout = opts and opts.timeout
  local c, err = C.dial(addr, timeout)
  while c == false do
    wait("dial")
    c, err = C.dial_wait(err, timeout)
  end
  if not c and not err:find(addr, 1, true) then
    err = "dial " .. addr .. ": " .. err
  end
  return c, err
end

-- listen(addr, handler) -> listener | nil, err
-- Serves addr (numeric host:port, port 0 for any free port, or unix:PATH)
-- with handler(conn), each connection its own task. listener:addr() gives
-- the bound address; listener:close() stops accepting.
function _M.listen(addr, handler)
  if type(handler) ~= "function" then
    error("bad argument #2 to 'listen' (function expected, got "
      .. type(handler) .. ")", 2)
  end
  return C.listen(addr, handler)
end

return _M
