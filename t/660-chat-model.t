-- t/660-chat-model.t: the chat's rules (scripts/chat_room.lua) and its
-- input decoder (scripts/chat_proto.lua) without any I/O, as a fuzz
-- harness drives them: a room over three nodes joined by an in-memory bus
-- (each node gets every message in publish order, at moments chosen at
-- random), members joining, typing random bytes (lines, commands, telnet
-- commands, control bytes, pieces of any size) and leaving at random.
-- After each run: names are unique and the store lists exactly the
-- members present; no member got a control byte or its own line; each
-- member got each sender's lines in order. Also the decoder on awkward
-- input, byte by byte.
local t = require "lib.tap"
local server = require "lib.server"
local format, char, concat, random = string.format, string.char,
  table.concat, math.random

package.path = server.path("scripts/?.lua;") .. package.path
local proto = require "chat_proto"
local Room = require "chat_room"

-- -- The decoder ----------------------------------------------------------

-- events(chunks, max) feeds the chunks to a decoder and lists what came.
local function events(chunks, max)
  local d, out = proto.decoder(max), {}
  for _, c in ipairs(chunks) do
    for _, ev in ipairs(d:feed(c)) do
      out[#out + 1] = ev[1] .. (ev[2] and ("=" .. tostring(ev[2])) or "")
        .. (ev[3] and ("," .. ev[3]) or "")
    end
  end
  return concat(out, " | ")
end

local function bytewise(s)
  local out = {}
  for i = 1, #s do out[i] = s:sub(i, i) end
  return out
end

t.test("the decoder gives the same events for any split of its input",
  function()
    local input = "one\r\ntwo\n\255\244th\255\253\6ree\n\255\250\24\0x"
      .. "\255\240\255\255x\n" .. ("L"):rep(10) .. "\n" .. ("M"):rep(11)
      .. "\r\n" .. ("N"):rep(12) .. "\n\255\251\31\n"
    local want = "line=one | line=two | telnet=ip | telnet=do,6 | "
      .. "line=three | line=x | line=LLLLLLLLLL | line=MMMMMMMMMMM | long | "
      .. "telnet=will,31 | line="
    t.is(events({ input }, 11), want, "in one piece")
    t.is(events(bytewise(input), 11), want, "one byte at a time")
    local ok = true
    for _ = 1, 200 do
      local chunks, i = {}, 1
      while i <= #input do
        local n = random(1, 7)
        chunks[#chunks + 1] = input:sub(i, i + n - 1)
        i = i + n
      end
      if events(chunks, 11) ~= want then ok = false end
    end
    t.ok(ok, "in 200 random splits")
    t.is(events({ "a\0b\1c\tdé\127\27\n" }), "line=abc\tdé",
      "control bytes but tab are dropped from lines")
    t.is(proto.reply("do", 6), "\255\251\6", "DO TIMING-MARK: WILL")
    t.is(proto.reply("do", 1), "\255\252\1", "other DO: WONT")
    t.is(proto.reply("will", 3), "\255\254\3", "WILL: DONT")
    t.is(proto.reply("ip"), nil, "IP: no answer")
  end)

-- -- The room over three nodes ------------------------------------------------

local NODES = { "1", "2", "3" }

-- model() -> a room of three nodes with an in-memory bus and store
local function model()
  local m = { rooms = {}, inbox = {}, names = {}, serial = 0, members = {} }
  local store = {}
  function store.claim(name, who)
    if m.names[name] then return false end
    m.names[name] = who
    return true
  end
  function store.release(name, who)
    if m.names[name] == who then m.names[name] = nil end
  end
  function store.rename(old, new, who)
    if m.names[new] then return false end
    m.names[new] = who
    if m.names[old] == who then m.names[old] = nil end
    return true
  end
  function store.names()
    local l = {}
    for n in pairs(m.names) do l[#l + 1] = n end
    return l
  end
  function store.count()
    local n = 0
    for _ in pairs(m.names) do n = n + 1 end
    return n
  end
  function store.serial()
    m.serial = m.serial + 1
    return m.serial
  end
  for _, node in ipairs(NODES) do
    m.inbox[node] = {}
    local env = { node = node, store = store }
    function env.nodes() return NODES end
    function env.publish(msg)
      for _, n in ipairs(NODES) do
        local q = m.inbox[n]
        q[#q + 1] = msg
      end
    end
    function env.reply(mem, text) mem.out[#mem.out + 1] = text end
    function env.send(text, except)
      for _, mem in pairs(m.rooms[node].members) do
        if mem ~= except and mem.joined then mem.out[#mem.out + 1] = text end
      end
    end
    function env.acked() end
    function env.joined(mem) mem.joined = true end
    m.rooms[node] = Room.new(env)
  end
  return m
end

-- deliver_some(m, node) hands node's room some of its waiting messages.
local function deliver_some(m, node, all)
  local q = m.inbox[node]
  local k = all and #q or random(0, #q)
  for i = 1, k do Room.deliver(m.rooms[node], q[i]) end
  m.inbox[node] = { unpack(q, k + 1) }
end

local PIECES = { "hello", "\n", "\r\n", "/nick ", "/who\n", "/quit\n",
  "bob", "x", "\255", "\253", "\6", "\244", "\0", "\27[2J", "\t", "é",
  "/nick bob\n", "/nick al\n", "/", "/bogus\n", ("y"):rep(50), "\255\255" }

local next_id = 0

local function add_member(m)
  local node = NODES[random(#NODES)]
  next_id = next_id + 1
  local mem = { id = next_id, node = node, out = {}, dec = proto.decoder(40),
    seq = 0 }
  if Room.join(m.rooms[node], mem) then
    m.members[#m.members + 1] = mem
  end
end

-- type_some(m, mem) feeds mem random bytes; its lines carry a token
-- "tMEMBER_SEQ" so that receivers can check order.
local function type_some(m, mem)
  local parts = {}
  for _ = 1, random(1, 6) do
    if random(4) == 1 then
      mem.seq = mem.seq + 1
      parts[#parts + 1] = format("t%d_%d\n", mem.id, mem.seq)
    else
      parts[#parts + 1] = PIECES[random(#PIECES)]
    end
  end
  local data = concat(parts)
  local i = 1
  while i <= #data and not mem.gone do
    local n = random(1, 8)
    for _, ev in ipairs(mem.dec:feed(data:sub(i, i + n - 1))) do
      if Room.input(m.rooms[mem.node], mem, ev) == "quit" then
        Room.leave(m.rooms[mem.node], mem)
        break
      end
    end
    i = i + n
  end
end

local function check(m, run)
  local bad = {}
  local present, seen = {}, {}
  for _, mem in ipairs(m.members) do
    if not mem.gone then
      present[mem.name] = (present[mem.name] or 0) + 1
    end
  end
  for name, k in pairs(present) do
    if k > 1 then bad[#bad + 1] = "two members named " .. name end
    if not m.names[name] then bad[#bad + 1] = name .. " not in the store" end
  end
  for name in pairs(m.names) do
    if not present[name] then bad[#bad + 1] = name .. " left in the store" end
  end
  for _, mem in ipairs(m.members) do
    local last = {}
    for _, line in ipairs(mem.out) do
      if line:find("[%z\1-\8\10-\31\127\255]") then
        bad[#bad + 1] = mem.id .. " got a control byte"
      end
      local from, seq = line:match("^%S+: t(%d+)_(%d+)$")
      from, seq = tonumber(from), tonumber(seq)
      if from == mem.id then bad[#bad + 1] = mem.id .. " got its own line" end
      if from then
        if last[from] and seq <= last[from] then
          bad[#bad + 1] = format("%d got %d's line %d after %d", mem.id,
            from, seq, last[from])
        end
        last[from] = seq
        seen[from] = true
      end
    end
  end
  if #bad > 0 then
    t.diag(format("run %d: %s", run, concat(bad, "; ", 1,
      math.min(#bad, 5))))
  end
  return #bad == 0, seen
end

t.test("random runs of a three-node room keep its invariants", function()
  local RUNS, good, lines = 100, 0, 0
  math.randomseed(8)
  for run = 1, RUNS do
    local m = model()
    for _ = 1, 60 do
      local r = random(10)
      if r <= 2 or #m.members == 0 then
        add_member(m)
      else
        local mem = m.members[random(#m.members)]
        if not mem.gone then
          if r == 3 then
            Room.leave(m.rooms[mem.node], mem, "too slow")
          else
            type_some(m, mem)
          end
        end
      end
      deliver_some(m, NODES[random(#NODES)])
    end
    for _, node in ipairs(NODES) do deliver_some(m, node, true) end
    local ok, seen = check(m, run)
    if ok then good = good + 1 end
    for _ in pairs(seen) do lines = lines + 1 end
  end
  t.is(good, RUNS, format("%d runs: unique names, the store matches the "
    .. "members, no control bytes, no own lines, per-sender order", RUNS))
  t.cmp_ok(lines, ">", RUNS, "the runs carried lines between members")
end, 120)

t.done()
