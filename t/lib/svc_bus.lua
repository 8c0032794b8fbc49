-- t/lib/svc_bus.lua: a server for tests of coronet.bus across workers
-- (run with --workers 2). Each connection first gets "W", the worker
-- that serves it, then sends one command line:
--   sub TOPIC SIZE            -> "ready W"; then every message as "#LEN\n"
--                                and its bytes, until the client sends a
--                                line; then "end DROPPED"
--   lazy TOPIC SIZE           -> "ready W"; reads nothing until the client
--                                sends a line, then drains what waits
--                                (recv with a 0.3 s quiet) as sub does,
--                                and "end DROPPED"
--   pub TOPIC COUNT TAG       -> publishes "TAG i" for i = 1..COUNT, then
--                                "done W"
--   big TOPIC SIZE SEED       -> publishes payload(SIZE, SEED), "done W"
--   pubs TOPIC                -> publishes each line the client sends,
--                                answering each with "ok"
--   stats                     -> "published=.. delivered=.. dropped=..
--                                topics=.. tasks=.. W"
local coronet = require "coronet"
local bus = require "coronet.bus"
local host = require "coronet.c.host"
local svc_commands = require "svc_commands"
local format, char, concat = string.format, string.char, table.concat

local W = host.info().worker

-- payload(size, seed): every byte value, shifted by seed, repeated.
local function payload(size, seed)
  local t = {}
  for i = 0, 255 do t[#t + 1] = char((i + seed) % 256) end
  local block = concat(t)
  return block:rep(math.ceil(size / 256)):sub(1, size)
end

local function send_msg(conn, msg)
  return conn:write({ "#", tostring(#msg), "\n", msg })
end

-- stream writes what s receives until the client sends a line (or
-- quiet seconds pass without a message, when quiet is given).
local function stream(conn, s, quiet)
  local stop = false
  if not quiet then
    coronet.spawn(function()
      conn:read_line()
      stop = true
      s:close()
    end)
  end
  while not stop do
    local msg, ok = s:recv(quiet)
    if not ok then break end
    if not send_msg(conn, msg) then break end
  end
  conn:write("end " .. s:dropped() .. "\n")
  s:close()
end

local commands = {}

function commands.sub(conn, topic, size)
  local s = bus.subscribe(topic, { size = tonumber(size) })
  conn:write("ready " .. W .. "\n")
  stream(conn, s)
end

function commands.lazy(conn, topic, size)
  local s = bus.subscribe(topic, { size = tonumber(size) })
  conn:write("ready " .. W .. "\n")
  conn:read_line()
  stream(conn, s, 0.3)
end

function commands.pub(conn, topic, count, tag)
  for i = 1, tonumber(count) do
    bus.publish(topic, tag .. " " .. i)
    if i % 1000 == 0 then coronet.yield() end
  end
  conn:write("done " .. W .. "\n")
end

function commands.big(conn, topic, size, seed)
  bus.publish(topic, payload(tonumber(size), tonumber(seed)))
  conn:write("done " .. W .. "\n")
end

function commands.pubs(conn, topic)
  for line in conn:lines() do
    bus.publish(topic, line)
    conn:write("ok\n")
  end
end

function commands.stats(conn)
  local st = bus.stats()
  conn:write(format("published=%d delivered=%d dropped=%d topics=%d "
    .. "tasks=%d %d\n", st.published, st.delivered, st.dropped, st.topics,
    coronet.stats().tasks, W))
end

return svc_commands.one(commands, W)
