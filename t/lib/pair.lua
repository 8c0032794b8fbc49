-- t/lib/pair.lua: connected pairs inside the test process, to look at both
-- ends of a connection at once.
--   local pair = require "lib.pair"
--   local l = pair.listen("127.0.0.1:0")  -- l.addr
--   local c = net.dial(l.addr); local s = l:accept()
--   ... l:release(s) (the handler returns: s closes) ... l:close()
--   local c, s, l = pair.pair()           -- the three at once
-- Each accepted connection's handler task stays parked until released (or
-- the listener closes), so the server side stays open while the test uses
-- it.
local coronet = require "coronet"
local net = require "coronet.net"
local sched = require "coronet.c.sched"
local wait = coronet.wait
local setmetatable, assert, remove = setmetatable, assert, table.remove

local _M = {}
local Listener = {}
Listener.__index = Listener

-- listen([addr]) serves addr (default 127.0.0.1:0) with holding handlers.
function _M.listen(addr)
  local self = setmetatable({ queue = {}, held = {}, accepted = 0 }, Listener)
  local l, err = net.listen(addr or "127.0.0.1:0", function(conn)
    self.held[conn] = coroutine.running()
    self.accepted = self.accepted + 1
    self.queue[#self.queue + 1] = conn
    if self.waiting then sched.wake(self.waiting) end
    sched.park()
    wait("pair handler")
  end)
  if not l then return nil, err end
  self.l = l
  self.addr = l:addr()
  return self
end

-- accept([timeout]) returns the next accepted connection (server side), or
-- nil, "timeout".
function Listener:accept(timeout)
  local deadline = coronet.now() + (timeout or 10)
  while #self.queue == 0 do
    local left = deadline - coronet.now()
    if left <= 0 then return nil, "timeout" end
    self.waiting = coroutine.running()
    sched.park(left)
    wait("accept")
    self.waiting = nil
  end
  return remove(self.queue, 1)
end

-- release(conn) lets conn's handler return (which closes conn).
function Listener:release(conn)
  local task = self.held[conn]
  self.held[conn] = nil
  if task then sched.wake(task) end
end

-- close() stops accepting and releases every held connection.
function Listener:close()
  self.l:close()
  for conn in pairs(self.held) do self:release(conn) end
end

-- pair([addr]) -> client conn, server conn, listener
function _M.pair(addr)
  local l = assert(_M.listen(addr))
  local c = assert(net.dial(l.addr, { timeout = 10 }))
  local s = assert(l:accept())
  c:set_timeout(10)
  s:set_timeout(10)
  return c, s, l
end

return _M
