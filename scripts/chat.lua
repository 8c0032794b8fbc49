-- chat: a chat room over a line protocol.
--   coronet scripts/chat.lua --listen 127.0.0.1:7000      (or: make run)
--   then: nc 127.0.0.1 7000
--
-- Lines end with "\n" (a "\r" before it is dropped) and carry at most
-- MAX_LINE bytes. On connect a member gets a notice; notices start with
-- "* ". The others see "* NAME joined" and, on leave, "* NAME left".
--   /nick NAME   take another name
--   /who         list the members, in one notice
--   /quit        leave
-- Any other line goes to every other member as "NAME: text".
--
-- Each member has a bounded outgoing queue drained by a writer task of its
-- own. A member whose queue fills (it stopped reading) is disconnected and
-- the others are told; nobody else waits for it, and memory stays bounded.
--
-- The room lives in coronet.state("chat"), so members stay when the
-- script is reloaded (--watch or SIGHUP): someone who joins after a reload
-- talks with those who joined before it.
local coronet = require "coronet"
local concat, sort, pairs, tostring = table.concat, table.sort, pairs, tostring
local sub, find = string.sub, string.find

local MAX_LINE = 4096
local QUEUE_LINES = 1024         -- lines waiting for one member, at most
local QUEUE_BYTES = 256 * 1024   -- bytes waiting for one member, at most
local NAME_MAX = 32
local FLUSH_WAIT = 10            -- seconds a leaving member's queue may take

local room = coronet.state("chat")
room.members = room.members or {} -- member -> true
room.names = room.names or {}     -- name -> member
room.serial = room.serial or 0
local members, names = room.members, room.names

local drop -- forward

-- deliver queues line (ending in "\n") for m; a member whose queue is
-- full is dropped.
local function deliver(m, line)
  if m.gone then return end
  local q = m.queue
  if q:len() >= QUEUE_LINES or m.queued + #line > QUEUE_BYTES then
    drop(m, "too slow")
    return
  end
  m.queued = m.queued + #line
  q:send(line) -- there is room: this does not wait
end

local function broadcast(from, text)
  local line = text .. "\n"
  for m in pairs(members) do
    if m ~= from then deliver(m, line) end
  end
end

local function notice(m, text)
  deliver(m, "* " .. text .. "\n")
end

-- leave takes m out of the room once, telling the others why.
local function leave(m, why)
  if m.gone then return end
  m.gone = true
  members[m] = nil
  if names[m.name] == m then names[m.name] = nil end
  m.queue:close()
  broadcast(m, "* " .. m.name .. " left" .. (why and " (" .. why .. ")" or ""))
end

drop = function(m, why)
  leave(m, why)
  m.conn:close() -- its handler's next read fails: the session ends
end

-- writer sends m's queued lines; all that are waiting leave in one
-- writev, when the writer parks on its empty queue. It ends when the
-- queue is closed and empty, or a write fails.
local function writer(m)
  local q, conn = m.queue, m.conn
  while true do
    local line, ok = q:recv()
    if not ok or not conn:write(line) then break end
    m.queued = m.queued - #line
  end
  m.written:done()
end

local function join(conn)
  room.serial = room.serial + 1
  local name = "guest" .. room.serial
  while names[name] do name = name .. "_" end
  local m = { name = name, conn = conn, queue = coronet.chan(QUEUE_LINES),
    queued = 0, gone = false, written = coronet.waitgroup() }
  m.written:add(1)
  coronet.spawn(writer, m)
  notice(m, "welcome, " .. name .. "! commands: /nick NAME, /who, /quit")
  broadcast(m, "* " .. name .. " joined")
  members[m], names[name] = true, m
  return m
end

local commands = {}

function commands.nick(m, arg)
  if arg == "" or #arg > NAME_MAX or find(arg, "[^%w_%-%.]") then
    return notice(m, "a name is 1 to " .. NAME_MAX
      .. " letters, digits, '_', '-' or '.'")
  end
  if arg == m.name then
    return notice(m, "you are " .. arg .. " already")
  end
  if names[arg] then
    return notice(m, "the name " .. arg .. " is taken")
  end
  local old = m.name
  names[old], names[arg], m.name = nil, m, arg
  notice(m, "you are now " .. arg)
  broadcast(m, "* " .. old .. " is now " .. arg)
end

function commands.who(m)
  local list = {}
  for other in pairs(members) do list[#list + 1] = other.name end
  sort(list)
  notice(m, #list .. " here: " .. concat(list, ", "))
end

function commands.quit(m)
  notice(m, "bye") -- after what is queued for m already
  leave(m)
  return true
end

local function command(m, line)
  local cmd, arg = line:match("^/(%S*)%s*(.-)%s*$")
  local f = commands[cmd]
  if not f then
    notice(m, "unknown command /" .. tostring(cmd)
      .. "; try /nick NAME, /who or /quit")
    return false
  end
  return f(m, arg)
end

return function(conn)
  local m = join(conn)
  while not m.gone do
    local line, err = conn:read_line(MAX_LINE)
    if line then
      if sub(line, 1, 1) == "/" then
        if command(m, line) then break end
      elseif line ~= "" then
        broadcast(m, m.name .. ": " .. line)
      end
    elseif err == "line too long" then
      notice(m, "line too long: at most " .. MAX_LINE .. " bytes; not sent")
    else
      break
    end
  end
  leave(m)
  m.written:wait(FLUSH_WAIT) -- the writer sends what is queued, then ends
end
