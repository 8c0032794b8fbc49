-- t/lib/svc_busredis.lua: a server for tests of coronet.bus across
-- processes (run with --bus URL). Each connection sends command lines:
--   sub TOPIC [SIZE]          -> "ready W"; then each message as a line
--                                "m MSG" until the client sends a line;
--                                then "end DROPPED"
--   pub TOPIC COUNT TAG [RATE] -> publishes "TAG i" for i = 1..COUNT
--                                (RATE a second, else as fast as it can),
--                                then "done"
--   status                    -> "STATE published=.. received=..
--                                dropped=.. lost=.. outages=.. outbox=.."
-- W is the worker that serves the connection.
local coronet = require "coronet"
local bus = require "coronet.bus"
local host = require "coronet.c.host"
local svc_commands = require "svc_commands"
local format = string.format

local W = host.info().worker
local commands = {}

function commands.sub(conn, topic, size)
  local s = bus.subscribe(topic, { size = tonumber(size) or 65536 })
  conn:write("ready " .. W .. "\n")
  local stop = false
  coronet.spawn(function()
    conn:read_line()
    stop = true
    s:close()
  end)
  while not stop do
    local msg, ok = s:recv()
    if not ok then break end
    if not conn:write("m " .. msg .. "\n") then break end
  end
  conn:write("end " .. s:dropped() .. "\n")
  s:close()
  return true
end

function commands.pub(conn, topic, count, tag, rate)
  rate = tonumber(rate)
  local t0 = coronet.now()
  for i = 1, tonumber(count) do
    bus.publish(topic, tag .. " " .. i)
    if rate then
      local due = t0 + i / rate
      if due > coronet.now() + 0.002 then coronet.sleep(due - coronet.now()) end
    elseif i % 1000 == 0 then
      coronet.yield()
    end
  end
  conn:write("done\n")
end

function commands.status(conn)
  local state, c = bus.status()
  conn:write(format("%s published=%d received=%d dropped=%d lost=%d "
    .. "outages=%d outbox=%d\n", state, c.published, c.received, c.dropped,
    c.lost, c.outages, c.outbox))
end

return function(conn)
  for line in conn:lines() do
    if svc_commands.run(conn, commands, line) then return end
  end
end
