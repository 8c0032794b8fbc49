-- t/fuzz/fuzz_chat.lua: the chat protocol under fuzzing; t/fuzz/fuzz_chat.c
-- calls the function this returns with each input. The input is a
-- sequence of steps over 1 to 3 rooms (nodes, as workers are) that share
-- a names store and a model bus (each node's messages reach every node in
-- the order it published them, each node taking them when a step says):
-- members join, send bytes in pieces through chat_proto decoders into
-- room:input, disconnect; nodes deliver, ack, tick. After each step:
--   - the store holds exactly the names of the members still there, each
--     owned by its member: names are unique;
--   - a decoder fed in pieces gives the events one fed byte by byte gives;
--     a line without telnet bytes comes out as sent, less "\r" and control
--     bytes; no line is longer than the limit;
--   - a delivered room message reaches exactly the node's members that are
--     in the room and not its author, once, as the model says (lines as
--     "NAME: text"), and a member's lines arrive at each node in the
--     order it sent them, never cut;
--   - nothing a member gets carries a control byte but tab, and nothing
--     reaches it after it left; its first line is its welcome.
-- At the end every node takes every message: each line reached every node.
local proto = require "chat_proto"
local Room = require "chat_room"
local byte, sub, find, format, gsub = string.byte, string.sub, string.find,
  string.format, string.gsub
local pairs, ipairs, tostring, tonumber, error = pairs, ipairs, tostring,
  tonumber, error

local MAX_NODES, MAX_MEMBERS = 3, 8
local CONTROL = "[%z\1-\8\10-\31\127\255]"
local MAX_OUT = Room.MAX_LINE + Room.NAME_MAX + 64

local function check(cond, fmt, ...)
  if not cond then error("check failed: " .. format(fmt, ...), 2) end
end

local function show(s)
  return (gsub(format("%q", tostring(s)), "[%c\128-\255]", function(c)
    return format("\\%d", byte(c))
  end))
end

-- -- The input ------------------------------------------------------------

local function reader(data)
  local pos = 1
  local r = {}
  function r.more() return pos <= #data end
  function r.u8()
    local b = byte(data, pos) or 0
    pos = pos + 1
    return b
  end
  function r.bytes(n)
    local s = sub(data, pos, pos + n - 1)
    pos = pos + n
    return s
  end
  return r
end

-- -- The names store (coronet.shared in scripts/chat.lua) ------------------

local function new_store()
  local names, count, serial = {}, 0, 0
  local store = { map = names }
  function store.claim(name, who)
    if names[name] then return false end
    names[name], count = who, count + 1
    return true
  end
  function store.release(name, who)
    if names[name] == who then names[name], count = nil, count - 1 end
  end
  function store.rename(old, new, who)
    if names[new] then return false end
    names[new] = who
    if names[old] == who then names[old] = nil end
    return true
  end
  function store.names()
    local list = {}
    for k in pairs(names) do list[#list + 1] = k end
    return list
  end
  function store.count() return count end
  function store.serial()
    serial = serial + 1
    return serial
  end
  return store
end

-- -- Members -------------------------------------------------------------

local function receive(m, text)
  check(not m.gone, "%s got %s after it left", m.key, show(text))
  check(not find(text, CONTROL), "%s got a control byte: %s", m.key,
    show(text))
  check(#text <= MAX_OUT, "%s got a line of %d bytes", m.key, #text)
  m.got[#m.got + 1] = text
end

-- ref_feed feeds data to m's reference decoder a byte at a time, and
-- returns its events; lines without telnet bytes are checked against the
-- bytes sent.
local function ref_feed(m, data)
  local out = {}
  for i = 1, #data do
    local b = sub(data, i, i)
    if b == "\255" or m.ref.tn then m.seg_telnet = true end
    local evs, ended = m.ref:feed(b), false
    if b ~= "\n" then m.seg[#m.seg + 1] = b end
    for _, ev in ipairs(evs) do
      out[#out + 1] = ev
      if ev[1] == "line" and not m.seg_telnet then
        local raw = table.concat(m.seg)
        if byte(raw, -1) == 13 then raw = sub(raw, 1, -2) end
        check(ev[2] == gsub(raw, CONTROL, ""), "line %s from %s", show(ev[2]),
          show(raw))
      end
      if ev[1] == "line" then
        check(#ev[2] <= Room.MAX_LINE, "a line of %d bytes", #ev[2])
      end
      ended = ended or ev[1] == "line" or ev[1] == "long"
    end
    if ended then m.seg, m.seg_telnet = {}, false end
  end
  return out
end

local function same_events(a, b)
  if #a ~= #b then return false end
  for i = 1, #a do
    if a[i][1] ~= b[i][1] or a[i][2] ~= b[i][2] or a[i][3] ~= b[i][3] then
      return false
    end
  end
  return true
end

-- -- The world: nodes, their rooms, the bus ---------------------------------

local function new_world(nnodes)
  local w = { nodes = {}, names = {}, pubs = {}, store = new_store(),
    sent = {}, members = {} }
  for i = 1, nnodes do w.names[i] = tostring(i) end
  for i = 1, nnodes do
    local node = { name = tostring(i), group = {}, next_id = 0, cur = {},
      dcur = {} }
    local env = { node = node.name, store = w.store }
    function env.nodes() return w.names end
    function env.publish(msg)
      local p = w.pubs[node.name]
      p[#p + 1] = msg
    end
    function env.reply(m, text) receive(m, text) end
    function env.send(text, except)
      for m in pairs(node.group) do
        if m ~= except then receive(m, text) end
      end
    end
    function env.acked() end
    function env.joined(m)
      check(not node.group[m], "%s joined twice", m.key)
      node.group[m], m.joined = true, true
    end
    node.env = env
    node.room = Room.new(env)
    w.pubs[node.name] = {}
    for j = 1, nnodes do node.cur[tostring(j)] = 1 end
    w.nodes[i] = node
  end
  return w
end

local function live(w)
  local list = {}
  for _, m in ipairs(w.members) do
    if not m.gone then list[#list + 1] = m end
  end
  return list
end

-- check_store: the store holds exactly the live members' names.
local function check_store(w)
  local want, n = {}, 0
  for _, m in ipairs(live(w)) do
    check(not want[m.name], "two members named %s", show(m.name))
    want[m.name] = m.owner
    n = n + 1
  end
  for name, who in pairs(w.store.map) do
    check(want[name] == who, "the store has %s for %s; the members say %s",
      show(name), tostring(who), tostring(want[name]))
  end
  check(w.store.count() == n, "the store counts %d members, %d are there",
    w.store.count(), n)
end

local function join(w, node)
  node.next_id = node.next_id + 1
  local m = { id = node.next_id, got = {}, dec = proto.decoder(Room.MAX_LINE),
    ref = proto.decoder(Room.MAX_LINE), seg = {}, seg_telnet = false }
  m.key = node.name .. ":" .. m.id
  m.owner = m.key -- the owner string chat_room gives the store
  m.node = node
  check(Room.join(node.room, m), "join failed")
  check(#m.got == 1 and m.got[1] == format(
    "* welcome, %s! commands: /nick NAME, /who, /quit", m.name),
    "the first line is the welcome: %s", show(m.got[1]))
  w.members[#w.members + 1] = m
  w.sent[m.key] = {}
end

local function leave(m, why)
  m.node.group[m] = nil
  Room.leave(m.node.room, m, why)
end

-- feed sends data to m as one piece.
local function feed(w, m, data)
  local evs = m.dec:feed(data)
  local want = ref_feed(m, data)
  check(same_events(evs, want), "%s: %d events from a piece, %d byte by "
    .. "byte, of %s", m.key, #evs, #want, show(data))
  for _, ev in ipairs(evs) do
    local name = m.name
    local r = Room.input(m.node.room, m, ev)
    if r == "line" then
      local s = w.sent[m.key]
      s[#s + 1] = name .. ": " .. ev[2]
    elseif r == "quit" then
      leave(m)
      return
    end
  end
end

-- expected(node, msg) -> the line msg makes the node send, and the member
-- it skips
local function expected(node, msg)
  local kind = sub(msg, 1, 1)
  local function member(nd, id)
    if nd == node.name then return node.room.members[tonumber(id)] end
  end
  if kind == "L" then
    local nd, id, _, text = msg:match("^L\t([^\t]*)\t(%d+)\t(%d+)\t(.*)$")
    return text, member(nd, id), nd .. ":" .. id
  elseif kind == "J" then
    local nd, id, name = msg:match("^J\t([^\t]*)\t(%d+)\t([^\t]*)$")
    return "* " .. name .. " joined", member(nd, id)
  elseif kind == "P" then
    local _, _, name, why = msg:match(
      "^P\t([^\t]*)\t(%d+)\t([^\t]*)\t([^\t]*)$")
    return "* " .. name .. " left" .. (why ~= "" and " (" .. why .. ")" or "")
  elseif kind == "N" then
    local nd, id, old, new = msg:match(
      "^N\t([^\t]*)\t(%d+)\t([^\t]*)\t([^\t]*)$")
    return "* " .. old .. " is now " .. new, member(nd, id)
  end
  return nil
end

-- deliver has node take the next message origin published.
local function deliver(w, node, origin)
  local i = node.cur[origin]
  local msg = w.pubs[origin][i]
  if not msg then return false end
  node.cur[origin] = i + 1
  local text, except, author = expected(node, msg)
  local before = {}
  for _, m in ipairs(w.members) do
    if m.node == node then before[m] = { #m.got, node.group[m] } end
  end
  if author then -- the next line of its author, at this node
    local k = (node.dcur[author] or 0) + 1
    node.dcur[author] = k
    check(w.sent[author][k] == text, "node %s got %s as line %d of %s, "
      .. "which sent %s", node.name, show(text), k, author,
      show(w.sent[author][k]))
  end
  Room.deliver(node.room, msg)
  for m, b in pairs(before) do
    local n, in_room = b[1], b[2]
    if text and in_room and m ~= except then
      check(#m.got == n + 1 and m.got[n + 1] == text, "%s: %s gave it %s "
        .. "(%d lines), expected %s", m.key, show(msg), show(m.got[n + 1]),
        #m.got - n, show(text))
    else
      check(#m.got == n, "%s: %s gave it %s, expected nothing", m.key,
        show(msg), show(m.got[n + 1]))
    end
  end
  return true
end

local function publish_acks(node, idle)
  local acks = Room.acks(node.room, idle)
  for _, a in ipairs(acks or {}) do node.env.publish(a) end
end

-- drain has every node take every message, acks included.
local function drain(w)
  repeat
    local moved = false
    for _, node in ipairs(w.nodes) do
      for _, origin in ipairs(w.names) do
        while deliver(w, node, origin) do moved = true end
      end
      publish_acks(node, true)
    end
  until not moved
end

-- -- A run ----------------------------------------------------------------

return function(data)
  local r = reader(data)
  local w = new_world(1 + r.u8() % MAX_NODES)
  local steps = 0
  while r.more() and steps < 2000 do
    steps = steps + 1
    local op = r.u8() % 10
    local node = w.nodes[1 + r.u8() % #w.nodes]
    local members = live(w)
    if op == 0 then
      if #members < MAX_MEMBERS then join(w, node) end
    elseif op <= 4 then -- bytes from a member that is in the room
      local m = members[1 + r.u8() % (#members + 1)]
      if m and m.joined then feed(w, m, r.bytes(1 + r.u8() % 48)) end
    elseif op <= 6 then
      local origin = w.names[1 + r.u8() % #w.names]
      for _ = 1, 1 + r.u8() % 8 do
        if not deliver(w, node, origin) then break end
      end
    elseif op == 7 then -- a member's connection ends
      local m = members[1 + r.u8() % (#members + 1)]
      if m then leave(m, r.u8() % 2 == 0 and "too slow" or nil) end
    elseif op == 8 then
      publish_acks(node, r.u8() % 2 == 0)
    else
      Room.tick(node.room)
      Room.window_full(node.room)
    end
    check_store(w)
  end
  drain(w)
  for _, node in ipairs(w.nodes) do
    for author, lines in pairs(w.sent) do
      check((node.dcur[author] or 0) == #lines, "node %s got %d of %s's %d "
        .. "lines", node.name, node.dcur[author] or 0, author, #lines)
    end
  end
  check_store(w)
end
