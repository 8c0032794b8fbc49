-- chat_room: the chat room's rules in plain Lua, with every effect handed
-- in, so that scripts/chat.lua runs them over connections, groups, the
-- bus and a shared dictionary, and a fuzz harness can run them over a
-- model (several nodes joined by an in-memory bus; see the end of this
-- file for what a harness checks).
--
-- A room spans nodes (workers, later processes); each node has its
-- members. Members' input becomes room messages that every node's room,
-- this one included, gets in the order each node published them
-- (deliver): lines, joins, leaves, renames, and acks for pacing. The
-- environment env gives:
--   env.node            this node's name (no tab)
--   env.nodes()         -> every node's name
--   env.store           the names of the whole room: claim(name, owner)
--                       -> bool, release(name, owner), rename(old, new,
--                       owner) -> bool, names() -> list, count() -> n,
--                       serial() -> next guest number
--   env.publish(msg)    to every node's room
--   env.reply(m, text)  one line to member m
--   env.send(text, except)  one line to every member of this node but
--                       except (nil: all)
--   env.acked()         acks came: waiting senders may go on
--   env.joined(m)       this node's member m joined: what the room says
--                       from now on reaches it (send must include it)
local concat, sort = table.concat, table.sort
local find, match, format, sub = string.find, string.match, string.format,
  string.sub
local tonumber, tostring, pairs = tonumber, tostring, pairs

local _M = {}

_M.MAX_LINE = 4096
_M.NAME_MAX = 32
_M.LARGE = 1000   -- above this many members, joins and leaves are batched
_M.WINDOW = 1024  -- lines a node may have published beyond the slowest
                  -- node's ack
_M.ACK_EVERY = 256 -- a node acks after this many lines of one origin (or
                   -- when it has nothing else to do)

local WELCOME = "* welcome, %s! commands: /nick NAME, /who, /quit"
local BAD_NAME = "* a name is 1 to " .. _M.NAME_MAX
  .. " letters, digits, '_', '-' or '.'"
local TRY = "; try /nick NAME, /who or /quit"

-- The room is a plain table (it lives across reloads in coronet.state);
-- its functions are this module's, called as Room.join(room, m): a
-- connection keeps the version of the rules it started with.
local Room = _M

-- new(env) -> the room as this node sees it
function _M.new(env)
  return { env = env, node = env.node, members = {}, joined = 0, left = 0,
    seq = 0, acked = {}, done = {}, told = {} }
end

local function owner(room, m) return room.node .. ":" .. m.id end

-- -- Members' side ------------------------------------------------------

-- room:join(m) gives member m (m.id unique on this node) a guest name,
-- welcomes it and tells the room. The welcome is m's first line; m hears
-- the room from its own join on (env.joined), so nothing said before it
-- joined reaches it, on any node.
-- Returns false when no name could be had (the store is full).
function Room:join(m)
  local store = self.env.store
  local name = "guest" .. store.serial()
  while not store.claim(name, owner(self, m)) do
    name = name .. "_"
    if #name > _M.NAME_MAX then -- only when the store is full
      self.env.reply(m, "* the room is full")
      return false
    end
  end
  m.name = name
  self.members[m.id] = m
  self.env.reply(m, format(WELCOME, name))
  self.env.publish(concat({ "J", self.node, m.id, name }, "\t"))
  return true
end

-- room:leave(m [, why]) takes m out of the room once and tells the
-- others (why: "too slow", ...).
function Room:leave(m, why)
  if m.gone then return end
  m.gone = true
  self.members[m.id] = nil
  self.env.store.release(m.name, owner(self, m))
  self.env.publish(concat({ "P", self.node, m.id, m.name, why or "" },
    "\t"))
end

local commands = {}

function commands.nick(room, m, arg)
  local env = room.env
  if arg == "" or #arg > _M.NAME_MAX or find(arg, "[^%w_%-%.]") then
    return env.reply(m, BAD_NAME)
  end
  if arg == m.name then
    return env.reply(m, "* you are " .. arg .. " already")
  end
  if not env.store.rename(m.name, arg, owner(room, m)) then
    return env.reply(m, "* the name " .. arg .. " is taken")
  end
  local old = m.name
  m.name = arg
  env.reply(m, "* you are now " .. arg)
  env.publish(concat({ "N", room.node, m.id, old, arg }, "\t"))
end

function commands.who(room, m)
  local list = room.env.store.names()
  sort(list)
  room.env.reply(m, "* " .. #list .. " here: " .. concat(list, ", "))
end

function commands.quit(room, m)
  room.env.reply(m, "* bye")
  return "quit"
end

-- room:input(m, ev) handles one event of m's decoder (chat_proto).
-- Returns "quit" when m leaves, "line" when it sent a line to the room.
function Room:input(m, ev)
  local kind, text = ev[1], ev[2]
  if kind == "long" then
    self.env.reply(m, "* line too long: at most " .. _M.MAX_LINE
      .. " bytes; not sent")
  elseif kind == "telnet" then
    if text == "ip" then return commands.quit(self, m) end -- Ctrl-C
  elseif sub(text, 1, 1) == "/" then
    local cmd, arg = match(text, "^/(%S*)%s*(.-)%s*$")
    local f = commands[cmd]
    if not f then
      self.env.reply(m, "* unknown command /" .. tostring(cmd) .. TRY)
      return nil
    end
    return f(self, m, arg)
  elseif text ~= "" then
    self.seq = self.seq + 1
    self.env.publish(concat({ "L", self.node, m.id, self.seq,
      m.name .. ": " .. text }, "\t"))
    return "line"
  end
end

-- room:window_full() says whether this node's senders must wait: some
-- node has not acked lines older than the last WINDOW.
function Room:window_full()
  local low = self.seq
  for _, n in pairs(self.env.nodes()) do
    local a = n == self.node and self.done[n] or self.acked[n]
    if (a or 0) < low then low = a or 0 end
  end
  return self.seq - low > _M.WINDOW
end

-- -- The room's side ----------------------------------------------------

-- count_notice(j, l) -> "* 37 joined, 5 left" (the parts that are not 0)
local function count_notice(j, l)
  local parts = {}
  if j > 0 then parts[#parts + 1] = j .. " joined" end
  if l > 0 then parts[#parts + 1] = l .. " left" end
  return "* " .. concat(parts, ", ")
end

-- local_member(room, node, id) -> the member of this node that a message
-- came from, if any
local function local_member(room, node, id)
  if node ~= room.node then return nil end
  return room.members[tonumber(id)]
end

local deliver = {}

function deliver.L(room, msg)
  local node, id, seq, text = match(msg, "^L\t([^\t]*)\t(%d+)\t(%d+)\t(.*)$")
  if not node then return end
  room.env.send(text, local_member(room, node, id))
  room.done[node] = tonumber(seq)
  if node == room.node then room.env.acked() end
end

local function join_or_leave(room, text, except, field)
  if room.env.store.count() > _M.LARGE then
    room[field] = room[field] + 1
  else
    room.env.send(text, except)
  end
end

function deliver.J(room, msg)
  local node, id, name = match(msg, "^J\t([^\t]*)\t(%d+)\t([^\t]*)$")
  if node then
    local m = local_member(room, node, id)
    if m then room.env.joined(m) end
    join_or_leave(room, "* " .. name .. " joined", m, "joined")
  end
end

function deliver.P(room, msg)
  local node, id, name, why = match(msg,
    "^P\t([^\t]*)\t(%d+)\t([^\t]*)\t([^\t]*)$")
  if node then
    join_or_leave(room, "* " .. name .. " left"
      .. (why ~= "" and " (" .. why .. ")" or ""), nil, "left")
  end
end

function deliver.N(room, msg)
  local node, id, old, new = match(msg,
    "^N\t([^\t]*)\t(%d+)\t([^\t]*)\t([^\t]*)$")
  if node then
    room.env.send("* " .. old .. " is now " .. new,
      local_member(room, node, id))
  end
end

function deliver.A(room, msg)
  local from, node, seq = match(msg, "^A\t([^\t]*)\t([^\t]*)\t(%d+)$")
  if node == room.node then
    seq = tonumber(seq)
    if seq > (room.acked[from] or 0) then
      room.acked[from] = seq
      room.env.acked()
    end
  end
end

-- room:deliver(msg) applies a room message from any node (this one too).
function Room:deliver(msg)
  local f = deliver[sub(msg, 1, 1)]
  if f then f(self, msg) end
end

-- room:tick() sends the batched joins and leaves of a large room; call
-- it once a second.
function Room:tick()
  if self.joined + self.left > 0 then
    self.env.send(count_notice(self.joined, self.left), nil)
    self.joined, self.left = 0, 0
  end
end

-- room:acks(idle) -> the acks to publish: to each other node whose lines
-- this node delivered, after every ACK_EVERY lines, or for all of them
-- when idle (this node has nothing else to do).
function Room:acks(idle)
  local out
  for node, seq in pairs(self.done) do
    local told = self.told[node] or 0
    if node ~= self.node and seq > told
        and (idle or seq - told >= _M.ACK_EVERY) then
      self.told[node] = seq
      out = out or {}
      out[#out + 1] = concat({ "A", self.node, node, seq }, "\t")
    end
  end
  return out
end

-- room:each(fn) calls fn(m) for every member of this node.
function Room:each(fn)
  for _, m in pairs(self.members) do fn(m) end
end

-- A fuzz harness runs K rooms (nodes) whose publish appends to one queue
-- that it delivers to every room, in order, at moments it picks; feeds
-- random bytes to members through chat_proto decoders and room:input;
-- leaves members at random; and checks after each step that names are
-- unique, store.names() equals the members of all rooms, every line a
-- member sent reaches every other member once, in order, never cut, with
-- no control byte but tab, and no member gets its own line.

return _M
