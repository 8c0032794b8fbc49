-- chat: a chat room over a line protocol, one room for every worker.
--   coronet scripts/chat.lua --listen 127.0.0.1:7000 [--workers 2]
--   then: nc -N 127.0.0.1 7000   (OpenBSD nc needs -N to exit after /quit)
--   or:   telnet 127.0.0.1 7000
--   and in a browser, with "-- --web 127.0.0.1:8080" after the options:
--   http://127.0.0.1:8080/ (scripts/chat_web.lua: the page and /ws);
--   add "--web-cert FILE --web-key FILE" for https:// and wss://
--
-- Lines end with "\n" (a "\r" before it is dropped) and carry at most
-- 4096 bytes; control bytes other than tab are not passed on. On connect
-- a member gets a notice; notices start with "* ". The others see
-- "* NAME joined" and, on leave, "* NAME left".
--   /nick NAME   take another name (unique in the whole room)
--   /who         list the members, in one notice
--   /quit        leave (so does Ctrl-C in telnet)
-- Any other line goes to every other member as "NAME: text". In a room
-- of more than 1000 members, joins and leaves are told once a second in
-- one notice ("* 37 joined, 5 left").
--
-- The rules live in chat_room.lua, the bytes' meaning in chat_proto.lua
-- (plain Lua both). Here they run on coronet: each worker keeps its
-- members in a group (coronet.group: one write from C reaches them all)
-- and hears the room on the bus (coronet.bus); names and the head count
-- are in shared dictionaries (coronet.shared). An idle member costs its
-- handler task and a place in the group, nothing more.
--
-- Pace: one task per worker (the pump) hands the room's messages to the
-- group, all that wait in batches (one block per batch for a member, not
-- one per line); while a member is behind (more than the write buffer
-- waiting) it waits, and a member still behind after STALL seconds has
-- stopped reading: it is closed and leaves ("too slow"). A member's burst
-- is read no faster than every worker's pump takes it (acks over the
-- bus). The room lives in coronet.state("chat"): members stay when the
-- script is reloaded, and each connection keeps the code it started with.
local coronet = require "coronet"
local bus = require "coronet.bus"
local log = require "coronet.log"
local host = require "coronet.c.host"
local proto = require "chat_proto"
local Room = require "chat_room"
local tostring, pairs = tostring, pairs

local TOPIC = "chat"
local STALL = 3            -- seconds a member may stay behind
local LIMIT = 1024 * 1024  -- bytes waiting for one member, at most
local SUB_SIZE = 131072    -- room messages waiting for a worker's pump
local ACK_WAIT = 5         -- seconds a sender waits for acks, at most
local SLICE = 0.002        -- seconds the pump works between yields
local BATCH = 16384        -- bytes the pump gathers before handing out

local info = host.info()
local NODE = tostring(info.worker)
local args, WEB = { ... }, nil -- "--web ADDR": a page and /ws for browsers
local WEB_TLS = {} -- "--web-cert FILE --web-key FILE": over HTTPS and WSS
for i = 1, #args - 1 do
  if args[i] == "--web" then WEB = args[i + 1] end
  if args[i] == "--web-cert" then WEB_TLS.cert = args[i + 1] end
  if args[i] == "--web-key" then WEB_TLS.key = args[i + 1] end
end
local web = WEB and require "chat_web"

-- -- Names and counts, shared by every worker ------------------------------

local names = coronet.shared("chat.names", { bytes = 64 * 1024 * 1024 })
local counts = coronet.shared("chat")
local store = {}

function store.claim(name, who)
  if not names:add(name, who) then return false end
  counts:incr("members", 1, 0)
  return true
end

function store.release(name, who)
  if names:get(name) == who then
    names:delete(name)
    counts:incr("members", -1, 0)
  end
end

function store.rename(old, new, who)
  if not names:add(new, who) then return false end
  if names:get(old) == who then names:delete(old) end
  return true
end

function store.names() return names:keys(0) end
function store.count() return counts:get("members") or 0 end
function store.serial() return counts:incr("serial", 1, 0) end

-- -- This worker's part ----------------------------------------------------

local st = coronet.state("chat")

-- A transport carries lines to members of one kind: here connections
-- that speak lines; a WebSocket one would frame each line instead.
local function line_transport(group)
  return { group = group, frame = function(text) return text .. "\n" end }
end

if not st.room then
  st.lines = line_transport(coronet.group())
  st.transports = { st.lines }
  st.sub = bus.subscribe(TOPIC, { size = SUB_SIZE })
  st.next_id = 0
  st.waiting = 0 -- senders waiting for acks
  st.acked = coronet.chan()
end
if WEB and not st.web then -- browser members: lines as WebSocket frames
  st.web = web.transport(coronet.group())
  st.transports[#st.transports + 1] = st.web
end

local env = { node = NODE, store = store }

local nodes = {}
for i = 1, info.workers do nodes[i] = tostring(i) end
function env.nodes() return nodes end

function env.publish(msg) bus.publish(TOPIC, msg) end

function env.reply(m, text)
  local tr = m.transport
  if m.joined then
    tr.group:send_to(m.conn, tr.frame(text))
  else -- not in the group yet (the welcome, early replies)
    m.conn:write(tr.frame(text))
  end
end

-- The pump gathers what the room says into batches, one per transport,
-- and hands each out (hand_out) in one group:send_batch: a member's write
-- chain then gets one block per batch rather than one per line.
-- (In coronet.state: after a reload, the old pump may still deliver
-- through the new env until it ends.)
st.batches = st.batches or {} -- transport -> {frames, excepts, n = count}
st.batched = st.batched or 0  -- bytes in the batches
local batches = st.batches

function env.send(text, except)
  for _, tr in ipairs(st.transports) do
    local b = batches[tr]
    if not b then
      b = { {}, {}, n = 0 }
      batches[tr] = b
    end
    local n, frame = b.n + 1, tr.frame(text)
    b[1][n] = frame
    b[2][n] = except and except.transport == tr and except.conn or false
    b.n, st.batched = n, st.batched + #frame
  end
end

-- hand_out gives every batch to its group.
local function hand_out()
  if st.batched == 0 then return end
  for tr, b in pairs(batches) do
    if b.n > 0 then
      local frames, excepts = b[1], b[2]
      tr.group:send_batch(frames, excepts, b.n)
      for i = 1, b.n do frames[i], excepts[i] = nil, nil end
      b.n = 0
    end
  end
  st.batched = 0
end

-- joined adds a newcomer to its group when the pump meets its join, so
-- that nothing said before reaches it (if its connection closed
-- meanwhile, the add fails and its handler's next read says so).
function env.joined(m)
  hand_out() -- what was said before m joined is not for m
  m.joined = true
  m.transport.group:add(m.conn, { limit = LIMIT })
end

-- acked wakes the senders waiting for acks (they look again).
function env.acked()
  if st.waiting > 0 then
    local ch = st.acked
    st.acked = coronet.chan()
    ch:close()
  end
end

-- With --bus on Redis, the room spans processes (chat_redis.lua).
local cluster = require "chat_redis"
cluster.attach(env, info, TOPIC)

if st.room then
  st.room.env = env -- the room outlived a reload: new wiring
else
  st.room = Room.new(env)
end
local room = st.room

-- -- The pump ----------------------------------------------------------------

-- pace waits while a member is behind; one still behind after STALL
-- seconds stopped reading: it is closed (its handler then leaves).
local function pace()
  for _, tr in ipairs(st.transports) do
    local g = tr.group
    if g:behind() > 0 and not g:wait(STALL) then g:drop_behind() end
  end
end

local function publish_acks(idle)
  local acks = Room.acks(room, idle)
  if acks then
    for i = 1, #acks do bus.publish(TOPIC, acks[i]) end
  end
end

-- pump hands the room's messages to this worker's members until a newer
-- version of the script takes over; that version's pump waits for this
-- one to end (done) so that no message overtakes another. It takes every
-- message that waits, in batches of at most BATCH bytes, and paces after
-- each batch; it lets the other tasks run after SLICE seconds of work.
local function pump(prev, done)
  if prev then prev:recv() end
  local sub, tick, now = st.sub, coronet.ticker(1), coronet.now
  local on, k, t0 = true, 0, now()
  local function each_second()
    Room.tick(room)
    cluster.tick(room)
  end
  local cases = {
    { recv = sub, fn = function(msg) return msg end },
    { recv = tick, fn = each_second },
    { recv = coronet.superseded(), fn = function() on = false end },
  }
  while on do
    local msg, ok = sub:recv(0)
    if not ok then -- all taken: out with the batch, then wait
      hand_out()
      pace()
      publish_acks(true)
      msg = coronet.select(cases)
      k, t0 = 0, now()
    elseif k >= 16 then
      k = 0
      local yield = now() - t0 >= SLICE
      if yield or st.batched >= BATCH then
        hand_out()
        pace()
      end
      if yield then
        coronet.yield()
        t0 = now()
      end
    end
    if tick:recv(0) then
      each_second()
    end
    if msg then
      Room.deliver(room, msg)
      publish_acks(false)
      k = k + 1
    end
  end
  hand_out()
  tick:stop()
  done:close()
end

-- -- Members -------------------------------------------------------------

-- wait_window parks m's handler while this worker's lines are too far
-- ahead of the slowest pump (at most ACK_WAIT seconds).
local function wait_window(m)
  local deadline = coronet.now() + ACK_WAIT
  while Room.window_full(room) and not m.gone do
    local left = deadline - coronet.now()
    if left <= 0 then break end
    st.waiting = st.waiting + 1
    st.acked:recv(left)
    st.waiting = st.waiting - 1
  end
end

-- shutdown tells every member of this worker and closes them.
local function shutdown()
  st.stopping = true
  Room.each(room, function(m)
    env.reply(m, "* server shutting down")
    m.conn:close()
  end)
end

-- handle runs the events of one read; returns "quit" when m leaves
-- (after a quit, only telnet is answered).
local function handle(m, evs)
  local quit
  for i = 1, #evs do
    local ev = evs[i]
    if ev[1] == "telnet" then
      local answer = proto.reply(ev[2], ev[3])
      if answer then m.transport.group:send_to(m.conn, answer) end
    end
    local r = not quit and Room.input(room, m, ev)
    if r == "quit" then
      quit = r
    elseif r == "line" and Room.window_full(room) then
      wait_window(m)
    end
  end
  return quit
end

-- converse reads m's input (from src, default conn) until it leaves, then takes it out. serve
-- tail-calls it, so that an idle member's coroutine holds few frames and
-- keeps its first stack (see README, memory per connection).
local function converse(m, conn, dec, src)
  local why
  while true do
    local data, err = (src or conn):read()
    if not data then
      if err == "closed" and not st.stopping then why = "too slow" end
      break
    end
    if handle(m, dec:feed(data)) then break end
  end
  m.transport.group:remove(conn)
  Room.leave(room, m, why)
  if not st.stopping then cluster.settle() end
end

-- serve(conn [, tr, src]) is a member's session: lines from src (default
-- conn), the room's lines to conn through tr (default st.lines).
local function serve(conn, tr, src)
  if st.stopping then return end
  tr = tr or st.lines
  st.next_id = st.next_id + 1
  local m = { id = st.next_id, conn = conn, transport = tr }
  if not Room.join(room, m) then return end
  log.debug("chat: %s joined from %s on worker %s", m.name,
    tostring(conn:remote_addr()), NODE)
  return converse(m, conn, proto.decoder(Room.MAX_LINE), src)
end

-- This version's pump takes over once the old one ends (when this main
-- chunk succeeded: coronet.superseded() tells the old one).
local prev = st.pump_done
st.pump_done = coronet.chan()
coronet.spawn(pump, prev, st.pump_done)
if not st.on_stop then -- the first version's task watches for shutdown
  st.on_stop = true
  coronet.spawn(function()
    coronet.stopping():recv()
    shutdown()
  end)
end

if WEB then
  web.listen(WEB, function(ws, conn)
    return serve(conn, st.web, web.reader(ws))
  end, st.web, WEB_TLS.cert and WEB_TLS)
end

return serve
