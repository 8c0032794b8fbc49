-- chat_redis: the chat room across processes. With --bus redis://...
-- (or unix:PATH), scripts/chat.lua's room spans every process attached
-- to that Redis: the bus carries the room's messages, and this module
-- keeps what the processes must agree on in Redis beside it (DB: the
-- URL's database):
--   coronet:chat:DB:names        hash name -> owner "PROC.WORKER:ID":
--                                HSETNX makes a name one process's
--   coronet:chat:DB:procs        hash PROC -> its worker count: the nodes
--   coronet:chat:DB:lease:PROC   lives LEASE seconds, renewed each second
--   coronet:chat:DB:serial       guest numbers
-- A process whose lease ran out (it crashed) is swept by the first other
-- process to see it: its names go, and its members' leaves are told once.
-- While the bus is down each worker's members are told once that the
-- room is split; names stay unique within the process (chat.lua's shared
-- dictionary, which every claim also goes through), /who lists this
-- process's members, and senders wait for this process's acks only. When
-- it heals they are told again, and names are claimed in Redis again (a
-- member whose name another process took meanwhile gets a new one).
local coronet = require "coronet"
local bus = require "coronet.bus"
local redis = require "coronet.redis"
local log = require "coronet.log"
local ffi = require "ffi"
local parse_url = require("coronet.c.redis").parse_url
local concat, unpack, select, pairs, ipairs = table.concat, unpack, select,
  pairs, ipairs
local format, tostring, tonumber = string.format, tostring, tonumber

local _M = {}

local LEASE = 5   -- seconds a process stays in the room without renewing
local TIMEOUT = 5 -- seconds a request waits for Redis
local SPLIT = "* chat: the room is split, reconnecting"
local HEALED = "* chat: the room is whole again"

-- RELEASE deletes a name if owner ARGV[2] still holds it.
local RELEASE = [[
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then
  return redis.call('HDEL', KEYS[1], ARGV[1])
end
return 0]]

-- SWEEP takes process ARGV[1] out if its lease KEYS[3] is gone and nobody
-- swept it yet; returns its names and their owners, flat.
local SWEEP = [[
if redis.call('EXISTS', KEYS[3]) == 1 then return {} end
if redis.call('HDEL', KEYS[2], ARGV[1]) == 0 then return {} end
local out, all, pre = {}, redis.call('HGETALL', KEYS[1]), ARGV[1] .. '.'
for i = 1, #all, 2 do
  if string.sub(all[i + 1], 1, #pre) == pre then
    redis.call('HDEL', KEYS[1], all[i])
    out[#out + 1] = all[i]
    out[#out + 1] = all[i + 1]
  end
end
return out]]

local st = coronet.state("chat.redis")
local shared = coronet.shared("chat.redis")

local up = require("coronet.c.busredis").up

-- -- Requests: each worker's go through one connection, pipelined --------

-- calls(reqs) runs the commands reqs[i] = {cmd, arg...} in one pipeline
-- (with whatever other tasks asked meanwhile); returns their replies
-- (nil for a null or an error) and the error that failed them all.
local function calls(reqs)
  local done = coronet.waitgroup()
  done:add(#reqs)
  for i = 1, #reqs do
    reqs[i].done = done
    st.pending[#st.pending + 1] = reqs[i]
  end
  if st.kick:len() == 0 then st.kick:send(true) end
  if not done:wait(TIMEOUT + 1) then return {}, "timeout" end
  local out, err = {}, nil
  for i = 1, #reqs do
    out[i] = reqs[i].value
    err = err or reqs[i].err
  end
  return out, err
end

local function call(...)
  local out, err = calls { { n = select("#", ...), ... } }
  return out[1], err
end

-- batcher sends what the worker's tasks asked for, one pipeline a turn.
local function batcher()
  local r
  while true do
    st.kick:recv()
    while #st.pending > 0 do
      local reqs = st.pending
      st.pending = {}
      local ok, res, err = true, nil, nil
      if not r then r, err = redis.connect(st.url, { timeout = TIMEOUT }) end
      if r then
        ok, res, err = pcall(r.pipeline, r, function(p)
          for i = 1, #reqs do
            p:call(unpack(reqs[i], 1, reqs[i].n or #reqs[i]))
          end
        end)
        if not ok then -- a bad request: it fails, the batcher goes on
          log.error("chat: %s", tostring(res))
          res, err = nil, "bad request"
        end
        if not res then r = nil end
      end
      for i = 1, #reqs do
        local v = res and res[i]
        reqs[i].err = redis.is_error(v) or (not res and err) or nil
        reqs[i].value = (v ~= redis.null and not reqs[i].err) and v or nil
        reqs[i].done:done()
      end
    end
  end
end

-- -- The names -------------------------------------------------------------

-- renew keeps this process in the room (its lease and its entry in the
-- procs hash), then runs the requests of more in the same pipeline and
-- returns their replies and the error. When Redis did not know the process
-- (a fresh Redis, or others swept it), every worker claims its names again.
local function renew(K, workers, more)
  local reqs = { { "SET", K.lease .. st.proc, "1", "EX", LEASE },
    { "HSET", K.procs, st.proc, workers } }
  for i = 1, #(more or {}) do reqs[i + 2] = more[i] end
  local res, err = calls(reqs)
  if res[2] == 1 then shared:incr("epoch", 1, 0) end
  return { unpack(res, 3, #reqs) }, err
end

-- make_store(K, own, workers) -> the room's store (chat_room.lua) over
-- Redis and own, the process's store: a name is claimed in Redis first
-- (the room's authority), then in own; with Redis out of reach, in own
-- alone. Each claim renews the process's lease with it: a process that
-- holds a name in Redis is one the others sweep if it crashes, even before
-- its keeper's first renewal.
local function make_store(K, own, workers)
  local store = {}

  local function unclaim(name, who)
    call("EVAL", RELEASE, 1, K.names, name, who)
  end

  -- taken(name, who) claims name in Redis: true when another holds it
  local function taken(name, who)
    return up() and renew(K, workers, { { "HSETNX", K.names, name, who } })[1]
      == 0
  end

  function store.claim(name, who)
    if taken(name, who) then return false end
    if own.claim(name, who) then return true end
    if up() then unclaim(name, who) end
    return false
  end

  function store.release(name, who)
    own.release(name, who)
    if up() then unclaim(name, who) end
  end

  function store.rename(old, new, who)
    if taken(new, who) then return false end
    if not own.rename(old, new, who) then
      if up() then unclaim(new, who) end
      return false
    end
    if up() then unclaim(old, who) end
    return true
  end

  function store.names()
    local list = up() and call("HKEYS", K.names)
    return list or own.names()
  end

  function store.count()
    if up() and st.count then return st.count end
    return own.count()
  end

  function store.serial()
    return up() and call("INCR", K.serial) or own.serial()
  end

  return store
end

-- reclaim claims the names of this worker's members in Redis again
-- (after a split, or Redis lost them); a member whose name another
-- process holds gets a new one.
local function reclaim(room)
  local env, K, list, reqs = room.env, st.keys, {}, {}
  for _, m in pairs(room.members) do
    list[#list + 1] = m
    reqs[#reqs + 1] = { "HSETNX", K.names, m.name, room.node .. ":" .. m.id }
  end
  if #reqs == 0 then return end
  local res, err = calls(reqs)
  if err then return end
  for i, m in ipairs(list) do
    local who = room.node .. ":" .. m.id
    if res[i] == 0 and call("HGET", K.names, m.name) ~= who and not m.gone then
      local old, new = m.name, nil
      repeat
        new = "guest" .. env.store.serial()
      until env.store.rename(old, new, who) or m.gone
      if not m.gone then
        m.name = new
        env.reply(m, format("* chat: your name %s was taken while the room "
          .. "was split; you are now %s", old, new))
        env.publish(concat({ "N", room.node, m.id, old, new }, "\t"))
      end
    end
  end
end

-- -- The processes -----------------------------------------------------------

local function pairs_of(flat)
  local t = {}
  for i = 1, #(flat or {}), 2 do t[flat[i]] = flat[i + 1] end
  return t
end

-- sweep takes out the processes whose lease ran out, telling the room
-- that their members left.
local function sweep(K, procs, publish)
  local others, reqs = {}, {}
  for p in pairs(procs) do
    if p ~= st.proc then
      others[#others + 1] = p
      reqs[#reqs + 1] = { "EXISTS", K.lease .. p }
    end
  end
  if #reqs == 0 then return end
  local alive = calls(reqs)
  for i, p in ipairs(others) do
    if alive[i] == 0 then
      local gone = call("EVAL", SWEEP, 3, K.names, K.procs, K.lease .. p,
        p)
      for j = 1, #(gone or {}), 2 do
        local node, id = gone[j + 1]:match("^(.*):(%d+)$")
        if node then
          publish(concat({ "P", node, id, gone[j], "gone" }, "\t"))
        end
      end
      log.info("chat: process %s is gone (its lease ran out): %d members "
        .. "left", p, #(gone or {}) / 2)
    end
  end
end

local function publish(msg)
  if st.room then st.room.env.publish(msg) end
end

-- keeper does a worker's part each second: the head count and the nodes
-- (worker 1: the lease, and the sweep), and claims names again when the
-- room healed or Redis lost them.
local function keeper(info)
  local K = st.keys
  while true do
    if up() then
      if info.worker == 1 then renew(K, info.workers) end
      local res, err = calls { { "HLEN", K.names }, { "HGETALL", K.procs } }
      if not err then
        st.count = res[1]
        local procs, nodes = pairs_of(res[2]), {}
        for w = 1, info.workers do nodes[w] = st.proc .. "." .. w end
        for p, n in pairs(procs) do
          for w = 1, p ~= st.proc and tonumber(n) or 0 do
            nodes[#nodes + 1] = p .. "." .. w
          end
        end
        st.nodes = nodes
        if info.worker == 1 then sweep(K, procs, publish) end
      end
      local epoch = shared:get("epoch")
      if st.room and (st.reclaim or epoch ~= st.epoch) then
        st.reclaim, st.epoch = false, epoch
        reclaim(st.room)
      end
    end
    coronet.sleep(1)
  end
end

local function process_id()
  pcall(ffi.cdef, "int getpid(void);")
  local id = format("%x%x%x", ffi.C.getpid(), os.time() % 65536,
    math.floor(coronet.now() * 1e6) % 65536)
  shared:add("proc", id) -- the first worker's wins: one id per process
  return shared:get("proc")
end

-- attach(env, info, topic) makes the room of env (before chat_room's
-- Room.new) span the processes on the bus's Redis; false without --bus.
-- Room messages (topic) then reach every process in one order, through
-- Redis: a newcomer hears exactly what the room said after its join,
-- wherever it was said.
function _M.attach(env, info, topic)
  local url = bus.redis_url()
  if not url then return false end
  if not st.proc then
    local _, _, _, db = parse_url(url)
    local pre = "coronet:chat:" .. tostring(db or 0) .. ":"
    st.url, st.proc = url, process_id()
    st.keys = { names = pre .. "names", procs = pre .. "procs",
      serial = pre .. "serial", lease = pre .. "lease:" }
    st.pending, st.kick = {}, coronet.chan(1)
    st.outages = select(2, bus.status()).outages
    coronet.spawn(batcher)
    coronet.spawn(keeper, info)
  end
  local locals = {}
  for w = 1, info.workers do locals[w] = st.proc .. "." .. w end
  env.node = st.proc .. "." .. info.worker
  env.store = make_store(st.keys, env.store, info.workers)
  function env.publish(msg) bus.publish_ordered(topic, msg) end
  -- A newcomer's welcome waits for its join to come back through Redis:
  -- once the welcome is read, the member is in the room for everyone.
  local reply, joined = env.reply, env.joined
  function env.reply(m, text)
    if m.joined or not m.name then return reply(m, text) end -- in the
    -- room, or no name to be had: at once
    m.held = m.held or {}
    m.held[#m.held + 1] = text
  end
  function env.joined(m)
    for _, text in ipairs(m.held or {}) do reply(m, text) end
    m.held = nil
    joined(m)
  end
  function env.nodes()
    return up() and st.nodes or locals
  end
  return true
end

-- settle(m) runs once member m left, before its connection closes: its
-- leave is in Redis then, before anything its peer does next (a newcomer
-- joining on another process does not hear it).
function _M.settle()
  if st.proc and up() then bus.flush(1) end
end

-- tick(room) runs each second in the worker's pump: members hear once
-- that the room split (the bus went down since the last tick, even
-- briefly), and once that it healed.
function _M.tick(room)
  if not st.proc then return end -- not attached: one process's room
  st.room = room
  local state, c = bus.status()
  if c.outages > st.outages and not st.split then
    room.env.send(SPLIT, nil)
    st.split = true
  end
  st.outages = c.outages
  if st.split and state == "up" then
    room.env.send(HEALED, nil)
    st.split, st.reclaim = false, true
  end
end

return _M
