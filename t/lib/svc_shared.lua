-- t/lib/svc_shared.lua: a server for tests of coronet.shared across
-- workers (run with --workers 2). Each connection first gets "W", the
-- worker that serves it, then sends one command line:
--   incr KEY TASKS TIMES  TASKS tasks each add 1 to KEY TIMES times
--                         (yielding between calls) -> "done W"
--   add KEY TASKS         TASKS tasks each try to add KEY -> "wins N W"
--   get KEY               -> the value, as tostring gives it
--   set KEY VALUE         -> "ok"
--   version               -> how many times the main chunk ran here
local coronet = require "coronet"
local host = require "coronet.c.host"
local svc_commands = require "svc_commands"

local W = host.info().worker
local dict = coronet.shared("svc", { bytes = 1e6 })
local runs = coronet.state("runs")
runs.n = (runs.n or 0) + 1

local commands = {}

local function run_tasks(n, fn)
  local wg = coronet.waitgroup()
  wg:add(n)
  for i = 1, n do
    coronet.spawn(function()
      fn(i)
      wg:done()
    end)
  end
  wg:wait(60)
end

function commands.incr(conn, key, tasks, times)
  run_tasks(tonumber(tasks), function()
    for _ = 1, tonumber(times) do
      dict:incr(key, 1, 0)
      coronet.yield()
    end
  end)
  conn:write("done " .. W .. "\n")
end

function commands.add(conn, key, tasks)
  local wins = 0
  run_tasks(tonumber(tasks), function(i)
    coronet.yield()
    if dict:add(key, W .. ":" .. i) then wins = wins + 1 end
  end)
  conn:write("wins " .. wins .. " " .. W .. "\n")
end

function commands.get(conn, key)
  conn:write(tostring(dict:get(key)) .. "\n")
end

function commands.version(conn)
  conn:write(runs.n .. "\n")
end

function commands.set(conn, key, value)
  dict:set(key, value)
  conn:write("ok\n")
end

return svc_commands.one(commands, W)
