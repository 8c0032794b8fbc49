-- t/lib/relay.lua: a TCP relay that passes bytes one per segment, with a
-- small gap, in both directions: line and echo tests go through it to see
-- every split a network can make.
--   local relay = require "lib.relay"
--   local r = relay.start(server.addr)    -- r.addr, r:close()
local coronet = require "coronet"
local net = require "coronet.net"

local _M = {}

local function trickle(from, to, gap)
  while true do
    local s = from:read(4096)
    if not s then break end
    for i = 1, #s do
      if not to:write(s:sub(i, i)) then return end
      coronet.sleep(gap) -- parks: the byte leaves as its own segment
    end
  end
  to:close_write()
end

-- start(target [, gap]) relays each connection to target; gap is the pause
-- after each byte in seconds (default 0.0005).
function _M.start(target, gap)
  gap = gap or 0.0005
  local l = assert(net.listen("127.0.0.1:0", function(client)
    local up, err = net.dial(target)
    if not up then return client:close() end
    local done = 0
    coronet.spawn(function()
      trickle(up, client, gap)
      done = done + 1
    end)
    trickle(client, up, gap)
    while done == 0 do coronet.sleep(0.01) end
    up:close()
  end))
  return { addr = l:addr(), close = function() l:close() end }
end

return _M
