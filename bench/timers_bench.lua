-- timers_bench: N tasks each wait for a deadline spread evenly over SPAN
-- seconds, by coronet.sleep or by coronet.after(d):recv(); reports how
-- late they woke and what a parked task costs.
--   coronet --run bench/timers_bench.lua N sleep|after [SPAN]
-- The deadlines start once every task has started and parked (starting
-- N tasks is one long run queue, which a deadline due meanwhile would wait
-- behind): start= says how long starting took. Prints one line:
-- "timers how=H n=N start=S p50=MS p99=MS max=MS rss_task=B lua_task=B":
-- lateness in ms; bytes per parked task of the process's resident memory
-- and of the Lua heap, measured while all of them wait.
local root = arg[0]:match("^(.*)/bench/[^/]*$") or "."
package.path = root .. "/t/?.lua;" .. package.path
local util = require "lib.util" -- rss_kib
local coronet = require "coronet"
local format, floor = string.format, math.floor
local now, spawn, sleep, after = coronet.now, coronet.spawn, coronet.sleep,
  coronet.after

local n = tonumber(arg[1]) or 100000
local how = arg[2] or "sleep"
local span = tonumber(arg[3]) or 0.5

local function rss() return (util.rss_kib("self") or 0) * 1024 end

local new_table = require "table.new"
local late = new_table(n, 0)
for i = 1, n do late[i] = 0 end -- the bookkeeping is in the baseline
local base, started, woke = 0, 0, 0
local done = coronet.chan(1)

local function waiter(i)
  local due = base + (i % 1000) / 1000 * span
  started = started + 1
  if how == "sleep" then sleep(due - now()) else after(due - now()):recv() end
  late[i] = now() - due
  woke = woke + 1
  if woke == n then done:send(true) end
end

collectgarbage()
collectgarbage()
local rss0, lua0 = rss(), collectgarbage("count") * 1024
local t0 = now()
-- a generous start: 15 us per task (with a full collection), at least 1 s
base = t0 + math.max(1, n * 15e-6)
for i = 1, n do
  spawn(waiter, i)
  if i % 10000 == 0 then coronet.yield() end -- within the task slice
end
while started < n do sleep(0.01) end
local start = now() - t0
collectgarbage()
local rss1, lua1 = rss(), collectgarbage("count") * 1024
if now() > base then
  io.stderr:write("timers_bench: starting took longer than planned\n")
end
done:recv()
table.sort(late)
local function pct(p) return late[math.max(1, floor(n * p + 0.5))] * 1e3 end
print(format("timers how=%s n=%d start=%.3f p50=%.2f p99=%.2f max=%.2f "
  .. "rss_task=%.0f lua_task=%.0f", how, n, start, pct(0.5), pct(0.99),
  late[n] * 1e3, (rss1 - rss0) / n, (lua1 - lua0) / n))
os.exit(0)
