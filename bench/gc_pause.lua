-- bench/gc_pause.lua: what the Lua garbage collector costs with N tasks
-- parked: the longest single step of an incremental cycle (LuaJIT's atomic
-- phase, which walks every coroutine again and cannot be split), a whole
-- cycle at once, and the Lua heap and resident memory per parked task.
--   coronet --run bench/gc_pause.lua N sleep|recv|after
-- sleep: coronet.sleep; recv: ch:recv() on a channel of the task's own;
-- after: coronet.after(s):recv(). Prints one line:
-- "gc how=H n=N atomic_ms=MS cycle_ms=MS lua_task=B rss_task=B" (the
-- best of 3 cycles each: the machine may be shared).
local root = arg[0]:match("^(.*)/bench/[^/]*$") or "."
package.path = root .. "/t/?.lua;" .. package.path
local util = require "lib.util" -- rss_kib
local coronet = require "coronet"
local format, huge = string.format, math.huge
local now = coronet.now

local n = tonumber(arg[1]) or 100000
local how = arg[2] or "sleep"

local function rss() return (util.rss_kib("self") or 0) * 1024 end

local waits = {
  sleep = function() coronet.sleep(3600) end,
  recv = function() coronet.chan():recv() end,
  after = function() coronet.after(3600):recv() end,
}
local wait = assert(waits[how], "sleep, recv or after")

collectgarbage()
collectgarbage()
local rss0, lua0 = rss(), collectgarbage("count") * 1024
for i = 1, n do
  coronet.spawn(wait)
  if i % 10000 == 0 then coronet.yield() end -- within the task slice
end
coronet.sleep(0.2)
collectgarbage()
collectgarbage()
local rss1, lua1 = rss(), collectgarbage("count") * 1024

-- longest step of an incremental cycle, in steps of the least work
local atomic, cycle = huge, huge
for _ = 1, 3 do
  local worst = 0
  repeat
    local t0 = now()
    local done = collectgarbage("step", 0)
    local d = now() - t0
    if d > worst then worst = d end
  until done
  if worst < atomic then atomic = worst end
  local t0 = now()
  collectgarbage()
  if now() - t0 < cycle then cycle = now() - t0 end
end
print(format("gc how=%s n=%d atomic_ms=%.1f cycle_ms=%.1f lua_task=%.0f "
  .. "rss_task=%.0f", how, n, atomic * 1e3, cycle * 1e3, (lua1 - lua0) / n,
  (rss1 - rss0) / n))
os.exit(0)
