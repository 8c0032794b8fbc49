-- coronet.bus: messages between the tasks of every worker of the process.
--   local bus = require "coronet.bus"
--   local sub = bus.subscribe("news")          -- {size = N}: default 4096
--   bus.publish("news", "hello")               -- never blocks
--   local msg, ok = sub:recv(1)                -- msg, true | nil, false,
--                                              -- "timeout" | nil, false
--   coronet.select { { recv = sub, fn = ... }, ... }
--   sub:dropped(), sub:close(), bus.stats()
--
-- Every subscription of a topic, on every worker, gets every message
-- published to it after it subscribed, and each publisher's messages in
-- the order it published them. A subscription is a channel (so select
-- takes it) whose buffer holds up to size messages; when a message comes
-- to a full one, the oldest waiting message is dropped and counted
-- (sub:dropped(), bus.stats().dropped), with one log line per burst.
--
-- This worker's subscribers get this worker's messages at once, in
-- publish, after what other workers published to them before (which
-- publish hands out first: a message never overtakes one that was queued
-- for the same subscriber before it was published). The other workers'
-- messages come through the host (coronet.c.bus), one Lua string per
-- message for all the subscribers of this worker, handed out by a task
-- that runs while this worker has subscriptions.
local c = require "coronet.c.bus"
local chan = require "coronet.chan"
local coronet = require "coronet"
local log = require "coronet.log"
local setmetatable, type, error, tostring = setmetatable, type, error,
  tostring
local Chan, offer = chan.Chan, chan.offer
local recv, close = Chan.recv, Chan.close
local take, wait, yield = c.take, coronet.wait, coronet.yield
local argcheck = coronet.argcheck

local _M = { _VERSION = "0.1.0" }

local DEFAULT_SIZE = 4096
local BATCH = 256 -- messages the dispatcher hands out between yields

local Sub = setmetatable({}, { __index = Chan })
Sub.__index = Sub
_M.Sub = Sub

local topics = {} -- topic -> list of this worker's subscriptions, .cap
local nsubs = 0
local dispatching = false

-- deliver gives msg to each subscription in list (lost: messages of the
-- topic that this worker dropped just before it). Returns the counts of
-- deliveries and drops.
local function deliver(list, msg, lost)
  local n, dropped = #list, 0
  for i = 1, n do
    local s = list[i]
    local d = lost
    if s.count == 0 then s.behind = false end -- it caught up
    if not offer(s, msg) then -- full: the oldest goes
      recv(s, 0)
      offer(s, msg)
      d = d + 1
    end
    if d > 0 then
      s.ndropped = s.ndropped + d
      dropped = dropped + d
      if not s.behind then
        s.behind = true
        log.warn("bus: a subscriber to %q fell behind: dropping its oldest "
          .. "messages (size %d)", s.topic, s.capacity)
      end
    end
  end
  return n, dropped
end

-- hand_out delivers a message taken from the host to this worker's
-- subscriptions; returns the counts of deliveries and drops.
local function hand_out(topic, msg, lost)
  local list = topics[topic]
  if list then return deliver(list, msg, lost) end
  return 0, 0
end

-- dispatch hands this worker the other workers' messages while it has
-- subscriptions; it yields now and then so that the subscribers drain
-- their queues before the next batch (never between taking a message
-- and handing it out: publish may hand out the next ones meanwhile).
local function dispatch()
  local delivered, dropped, k = 0, 0, 0
  while nsubs > 0 do
    if k >= BATCH then
      k = 0
      yield()
    end
    local topic, msg, lost = take()
    if topic then
      local n, d = hand_out(topic, msg, lost)
      delivered, dropped, k = delivered + n, dropped + d, k + 1
    else
      c.count(delivered, dropped)
      delivered, dropped, k = 0, 0, 0
      wait("bus")
    end
  end
  c.count(delivered, dropped)
  dispatching = false
end

-- catch_up hands out what other workers published to this one before
-- now, so that a publish from here comes after it.
local function catch_up()
  local delivered, dropped = 0, 0
  while true do
    local topic, msg, lost = take(true)
    if not topic then break end
    local n, d = hand_out(topic, msg, lost)
    delivered, dropped = delivered + n, dropped + d
  end
  if delivered + dropped > 0 then c.count(delivered, dropped) end
end

-- publish(topic, msg) sends msg (a string, any bytes) to every
-- subscription of topic on every worker. Never blocks: a subscription
-- that is full drops its oldest message instead.
function _M.publish(topic, msg)
  argcheck(topic, "string", 1, "publish")
  argcheck(msg, "string", 2, "publish")
  if dispatching then catch_up() end
  local list = topics[topic]
  if list then
    c.publish(topic, msg, deliver(list, msg, 0))
  else
    c.publish(topic, msg)
  end
end

local function set_cap(topic, list)
  local cap = 0
  for i = 1, #list do
    if list[i].capacity > cap then cap = list[i].capacity end
  end
  if cap ~= list.cap then
    list.cap = cap
    c.interest(topic, cap)
  end
end

-- subscribe(topic [, {size = N}]) -> subscription to the messages
-- published to topic from now on; at most size (default 4096) wait.
function _M.subscribe(topic, opts)
  argcheck(topic, "string", 1, "subscribe")
  local size = DEFAULT_SIZE
  if opts ~= nil then
    argcheck(opts, "table", 2, "subscribe")
    size = opts.size or size
    if type(size) ~= "number" or size < 1 or size % 1 ~= 0 then
      error("bad argument #2 to 'subscribe' (size must be a positive "
        .. "integer, got " .. tostring(size) .. ")", 2)
    end
  end
  local s = chan.new(size, Sub)
  s.topic, s.ndropped, s.behind = topic, 0, false
  local list = topics[topic]
  if not list then
    list = { cap = 0 }
    topics[topic] = list
  end
  list[#list + 1] = s
  if size > list.cap then
    list.cap = size
    c.interest(topic, size)
  end
  nsubs = nsubs + 1
  if not dispatching then
    dispatching = true
    coronet.spawn(dispatch)
  end
  return s
end

-- sub:recv([timeout]) -> msg, true | nil, false, "timeout" | nil, false
-- (closed). As a channel's recv.

-- sub:dropped() -> how many messages this subscription lost to its bound
function Sub:dropped() return self.ndropped end

-- sub:close() ends the subscription: what waits is dropped, and a task
-- waiting in recv gets nil, false. Closing twice does nothing.
function Sub:close()
  if self.closed then return end
  local topic = self.topic
  local list = topics[topic]
  for i = 1, #list do
    if list[i] == self then
      list[i] = list[#list]
      list[#list] = nil
      break
    end
  end
  if #list == 0 then
    topics[topic] = nil
    c.interest(topic, 0)
  else
    set_cap(topic, list)
  end
  nsubs = nsubs - 1
  if nsubs == 0 then c.kick() end -- the dispatcher ends
  self.buf, self.head, self.count = {}, 1, 0
  close(self)
end

function Sub:__tostring()
  return "coronet.bus subscription (" .. self.topic .. ", "
    .. self.count .. "/" .. self.capacity
    .. (self.closed and ", closed)" or ")")
end

-- stats() -> {published=, delivered=, dropped=, topics=}: counts for the
-- whole process since it started (delivered and dropped count per
-- subscription).
_M.stats = c.stats

-- status() -> "up" | "down" | "local", counters: with --bus, whether the
-- bus reaches the other processes through Redis now, and {published,
-- received, dropped, lost, outages, outbox, unconfirmed, redis}; "local"
-- without it.
-- See host/cn_busredis.c.
local busredis = require "coronet.c.busredis"
_M.status = busredis.status

-- redis_url() -> the Redis URL given to --bus (password included), or nil:
-- for scripts that keep state beside the bus (coronet.redis).
_M.redis_url = busredis.url

local redis_up, redis_publish = busredis.up, busredis.publish
local progress = busredis.progress

-- flush([timeout]) -> true | false: with --bus, waits (at most timeout
-- seconds, default 1) until every message this process published so far
-- is settled: taken by Redis, or counted as lost; false if it was not in
-- time (Redis is down, or slow). Without --bus: true at once.
function _M.flush(timeout)
  local queued, settled = progress()
  if not queued then return true end
  local deadline = coronet.now() + (timeout or 1)
  while settled < queued do
    if coronet.now() >= deadline then return false end
    coronet.sleep(0.001)
    _, settled = progress()
  end
  return true
end

-- publish_ordered(topic, msg): as publish, but with --bus and Redis up,
-- the subscribers of every process, this one's too, get msg through
-- Redis: all of them see the topic's ordered messages, whichever process
-- published them, in one same order (at the cost of the round trip for
-- this process's own). Without --bus, or while the bus is down, it is
-- publish.
function _M.publish_ordered(topic, msg)
  if redis_up() then
    argcheck(topic, "string", 1, "publish_ordered")
    argcheck(msg, "string", 2, "publish_ordered")
    redis_publish(topic, msg)
    return
  end
  return _M.publish(topic, msg)
end

return _M
