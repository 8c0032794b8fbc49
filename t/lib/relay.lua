-- t/lib/relay.lua: a TCP relay that passes bytes one per segment, with a
-- small gap, in both directions: line and echo tests go through it to see
-- every split a network can make.
--   local relay = require "lib.relay"
--   local r = relay.start(server.addr)    -- r.addr, r:close()
local coronet = require "coronet"
local net = require "coronet.net"

local _M = {}

-- pass writes s to to: byte by byte while limit lasts. Returns the limit
-- left, or nil when to is gone.
local function pass(to, s, gap, limit)
  if limit <= 0 then return to:write(s) and limit end
  for i = 1, #s do
    if not to:write(s:sub(i, i)) then return nil end
    coronet.sleep(gap) -- parks: the byte leaves as its own segment
  end
  return limit - #s
end

-- trickle passes from's bytes to to one at a time, the first limit of
-- them; the rest as they come. When to is gone, from is closed too, so
-- that the other direction's task, which may be parked writing to it,
-- ends as well.
local function trickle(from, to, gap, limit)
  while true do
    local s = from:read(4096)
    if not s then break end
    limit = pass(to, s, gap, limit)
    if not limit then return from:close() end
  end
  to:close_write()
end

-- start(target [, gap [, limit]]) relays each connection to target; gap
-- is the pause after each byte in seconds (default 0.0005); past limit
-- bytes in one direction (default: no limit), reads pass whole.
function _M.start(target, gap, limit)
  gap, limit = gap or 0.0005, limit or math.huge
  local l = assert(net.listen("127.0.0.1:0", function(client)
    local up, err = net.dial(target)
    if not up then return client:close() end
    local done = 0
    coronet.spawn(function()
      trickle(up, client, gap, limit)
      done = done + 1
    end)
    trickle(client, up, gap, limit)
    while done == 0 do coronet.sleep(0.01) end
    up:close()
  end))
  return { addr = l:addr(), close = function() l:close() end }
end

return _M
