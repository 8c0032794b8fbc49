-- proxy: a TCP proxy. Each client is joined to the upstream server with
-- two io.copy calls, one per direction; the bytes move inside the host,
-- chain to chain, with no Lua string per chunk. A half-close is passed
-- on: when one side finishes sending, the other side's write end closes
-- once everything before it arrived.
--   coronet scripts/proxy.lua --listen 127.0.0.1:8000 -- 127.0.0.1:7000
--   UPSTREAM=127.0.0.1:7000 coronet scripts/proxy.lua -l 127.0.0.1:8000
-- PROXY_IDLE=SECONDS closes a connection idle that long (default: never).
local coronet = require "coronet"
local net = require "coronet.net"
local io_ = require "coronet.io"
local host = require "coronet.c.host"
local tonumber, error = tonumber, error

local upstream = (...) or os.getenv("UPSTREAM")
if not upstream then
  error("proxy: no upstream: coronet scripts/proxy.lua -l ADDR -- "
    .. "HOST:PORT (or UPSTREAM=HOST:PORT)", 0)
end
local idle = tonumber(os.getenv("PROXY_IDLE") or "")

-- pass copies from src to dst until src ends, then half-closes dst; on an
-- error it closes both, which ends the other direction too.
local function pass(dst, src)
  local _, err = io_.copy(dst, src)
  if err then
    dst:close()
    src:close()
  else
    dst:close_write()
  end
end

return function(client)
  local up, err = net.dial(upstream, { timeout = 10 })
  if not up then
    host.log("warn", "proxy: " .. err)
    return client:close()
  end
  if idle then
    client:set_timeout(idle)
    up:set_timeout(idle)
  end
  local wg = coronet.waitgroup()
  wg:add(1)
  coronet.spawn(function()
    pass(client, up)
    wg:done()
  end)
  pass(up, client)
  wg:wait()
  up:close()
end
