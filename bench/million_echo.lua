-- bench/million_echo.lua: the echo service of bench/million.sh
-- (scripts/echo.lua's handler) plus a stats listener on a port of its own
-- (logged as "stats on ADDR"): each line sent there gets one line,
-- "lua_kib=N connections=N tasks=N", after a full garbage collection.
local coronet = require "coronet"
local net = require "coronet.net"
local io_ = require "coronet.io"
local log = require "coronet.log"
local format = string.format

local stats = assert(net.listen("127.0.0.1:0", function(conn)
  for _ in conn:lines() do
    collectgarbage()
    local st = coronet.stats()
    conn:write(format("lua_kib=%.1f connections=%d tasks=%d\n",
      collectgarbage("count"), st.connections, st.tasks))
  end
end))
log.warn("stats on %s", stats:addr()) -- warn: still shown with -q

return function(conn)
  io_.copy(conn, conn)
end
