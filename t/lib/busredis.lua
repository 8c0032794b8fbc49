-- t/lib/busredis.lua: helpers for tests of coronet.bus across processes:
-- coronet processes serving t/lib/svc_busredis.lua with --bus, and what
-- Redis says about their subscriptions.
--   local br = require "lib.busredis"
--   local a = br.start(srv)                 -- --bus srv.addr
--   local s = br.subscribe(a, "news")       -- s:next([t]) -> msg, s:stop()
--   br.publish(a, "news", 100, "tag")       -- waits until published
--   br.status(a)                            -- "up", {published = ...}
--   br.wait_numsub(rc, "news", 2)           -- Redis sees 2 subscribers
local coronet = require "coronet"
local server = require "lib.server"
local util = require "lib.util"

local _M = {}

-- start(srv [, opts]) starts a coronet process on srv's bus; opts is a
-- list of more command-line words.
function _M.start(srv, opts)
  local o = { "--bus", srv.url or srv.addr }
  for _, v in ipairs(opts or {}) do o[#o + 1] = v end
  return server.start { script = server.path("t/lib/svc_busredis.lua"),
    opts = o }
end

local Sub = {}
Sub.__index = Sub

-- subscribe(p, topic [, size]) subscribes a connection to p to topic.
function _M.subscribe(p, topic, size)
  local c = p:connect(30)
  c:write("sub " .. topic .. " " .. (size or 65536) .. "\n")
  local line = assert(c:read_line())
  return setmetatable({ conn = c,
    worker = tonumber(line:match("^ready (%d+)")) }, Sub)
end

-- s:next([timeout]) -> the next message, or nil, err
function Sub:next(timeout)
  if timeout then self.conn:set_timeout(timeout) end
  local line, err = self.conn:read_line()
  if not line then return nil, err end
  return line:match("^m (.*)$") or line
end

-- s:stop() ends the subscription; returns what it dropped.
function Sub:stop()
  self.conn:set_timeout(10)
  self.conn:write("stop\n")
  while true do
    local line = self.conn:read_line()
    if not line then break end
    local d = line:match("^end (%d+)")
    if d then
      self.conn:close()
      return tonumber(d)
    end
  end
  self.conn:close()
end

-- publish(p, topic, count, tag [, rate]) has p publish "tag i" for i =
-- 1..count (rate a second) and waits until it did.
function _M.publish(p, topic, count, tag, rate)
  local c = p:connect(60)
  c:write(("pub %s %d %s %s\n"):format(topic, count, tag, rate or ""))
  local line = c:read_line()
  c:close()
  return line == "done"
end

-- status(p) -> state, {published =, received =, dropped =, lost =,
-- outages =, outbox =} of p's bus.
function _M.status(p)
  local c = p:connect(10)
  c:write("status\n")
  local line = c:read_line() or ""
  c:close()
  local st = {}
  for k, v in line:gmatch("(%w+)=(%d+)") do st[k] = tonumber(v) end
  return line:match("^(%a+)"), st
end

-- wait_status(p, state [, timeout]) waits until p's bus is in state.
function _M.wait_status(p, state, timeout)
  return util.wait_until(function() return _M.status(p) == state end,
    timeout or 10)
end

-- channel(topic) is the Redis channel of topic on db 0.
function _M.channel(topic) return "coronet:bus:0:" .. topic end

-- numsub(rc, topic) -> how many connections Redis has subscribed to topic
function _M.numsub(rc, topic)
  local r = rc:pubsub("numsub", _M.channel(topic))
  return r and r[2]
end

-- wait_numsub(rc, topic, n [, timeout]) waits until Redis counts n
-- subscribers of topic.
function _M.wait_numsub(rc, topic, n, timeout)
  return util.wait_until(function() return _M.numsub(rc, topic) == n end,
    timeout or 10)
end

-- collect(s, tag, last [, timeout]) reads s until "tag last" arrived (or
-- timeout seconds, default 20, passed with no message); returns the list
-- of the numbers of tag's messages in arrival order, and every other
-- message in a second list.
function _M.collect(s, tag, last, timeout)
  local seen, other = {}, {}
  local pat = "^" .. tag .. " (%d+)$"
  while true do
    local msg = s:next(timeout or 20)
    if not msg then break end
    local i = tonumber(msg:match(pat))
    if i then
      seen[#seen + 1] = i
      if i == last then break end
    else
      other[#other + 1] = msg
    end
  end
  return seen, other
end

-- in_order(list) says whether list strictly increases; returns false
-- and the position where it does not.
function _M.in_order(list)
  for i = 2, #list do
    if list[i] <= list[i - 1] then return false, i end
  end
  return true
end

_M.now = coronet.now
return _M
