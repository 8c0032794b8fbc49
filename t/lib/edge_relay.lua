-- t/lib/edge_relay.lua: the byte-per-segment relay (t/lib/relay.lua) as a
-- process of its own, for CORONET_EDGE=relay (see t/lib/server.lua):
--   coronet --run t/lib/edge_relay.lua TARGET [GAP [TRICKLE]]
-- It logs "listening on ADDR" on stderr, then relays every connection to
-- TARGET until it is stopped (SIGTERM).
local coronet = require "coronet"
local relay = require "relay"

local r = relay.start(arg[1], tonumber(arg[2]), tonumber(arg[3]))
io.stderr:write("edge relay: listening on ", r.addr, "\n")
io.stderr:flush()
while true do coronet.sleep(3600) end
