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
-- them; the rest as they come. Returns true when from ended (to then gets
-- a half-close), false when to is gone.
local function trickle(from, to, gap, limit)
  while true do
    local s = from:read(4096)
    if not s then
      to:close_write()
      return true
    end
    limit = pass(to, s, gap, limit)
    if not limit then return false end
  end
end

-- LINGER is how long the other direction may go on once one direction
-- found its peer gone: it may still carry a reply (a server that answers
-- 400 and closes while the request still comes), or be parked for ever
-- writing to a peer that never reads; then both sides are closed.
local LINGER = 5

-- start(target [, gap [, limit]]) relays each connection to target; gap
-- is the pause after each byte in seconds (default 0.0005); past limit
-- bytes in one direction (default: no limit), reads pass whole.
function _M.start(target, gap, limit)
  gap, limit = gap or 0.0005, limit or math.huge
  local l = assert(net.listen("127.0.0.1:0", function(client)
    local up = net.dial(target)
    if not up then return client:close() end
    local ended, gone_at = 0, nil
    local function run(from, to)
      if not trickle(from, to, gap, limit) then
        gone_at = gone_at or coronet.now()
      end
      ended = ended + 1
    end
    coronet.spawn(run, up, client)
    coronet.spawn(run, client, up)
    while ended < 2 and not (gone_at and coronet.now() - gone_at > LINGER) do
      coronet.sleep(0.01)
    end
    client:close()
    up:close()
  end))
  return { addr = l:addr(), close = function() l:close() end }
end

return _M
