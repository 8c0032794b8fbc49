-- bench/bus-redis.lua: one side of bench/bus-redis-bench.sh, run with
-- --bus in two processes:
--   coronet --bus URL --run bench/bus-redis.lua sub TOPIC N
--     prints "ready", then receives N messages (or stops after 5 s with
--     none) and prints "received=N secs=S rate=R p50_us= p99_us= max_us="
--     (latency: publish to delivery, from the time in each message)
--   coronet --bus URL --run bench/bus-redis.lua pub TOPIC N RATE SIZE
--     publishes N messages of SIZE bytes, RATE a second (0: flat out),
--     then prints "done secs=S" once Redis took them all
local coronet = require "coronet"
local bus = require "coronet.bus"
local format, rep, floor = string.format, string.rep, math.floor
local now = coronet.now

local role, topic, n = arg[1], arg[2], tonumber(arg[3])
assert((role == "sub" or role == "pub") and topic and n,
  "usage: bus-redis.lua sub TOPIC N | pub TOPIC N RATE SIZE")

local function pct(sorted, p)
  return sorted[math.max(1, floor(#sorted * p + 0.5))] or 0
end

if role == "sub" then
  local s = bus.subscribe(topic, { size = 1000000 })
  io.stdout:write("ready\n")
  io.stdout:flush()
  local lat, got, t0, t1 = {}, 0, nil, nil
  while got < n do
    local msg, ok = s:recv(5)
    if not ok then break end
    local t = now()
    local sent = tonumber(msg:match("^%d+ ([%d.]+)"))
    got = got + 1
    t0 = t0 or sent -- from the first message's publishing
    t1 = t
    lat[got] = (t - sent) * 1e6
  end
  table.sort(lat)
  local secs = t1 and t0 and t1 - t0 or 0
  print(format("received=%d secs=%.3f rate=%.0f p50_us=%.0f p99_us=%.0f "
    .. "max_us=%.0f dropped=%d", got, secs, secs > 0 and got / secs or 0,
    pct(lat, 0.5), pct(lat, 0.99), lat[#lat] or 0, s:dropped()))
  os.exit(0)
end

local rate, size = tonumber(arg[4]) or 0, tonumber(arg[5]) or 64
local t0 = now()
for i = 1, n do
  local head = format("%d %.6f ", i, now())
  bus.publish(topic, head .. rep("x", size - #head))
  if rate > 0 then
    local due = t0 + i / rate
    if due > now() + 0.001 then coronet.sleep(due - now()) end
  elseif i % 256 == 0 then
    coronet.yield()
  end
end
while true do -- until Redis took every message
  local _, st = bus.status()
  if st.outbox + st.unconfirmed == 0 then break end
  coronet.sleep(0.005)
end
print(format("done secs=%.3f", now() - t0))
os.exit(0)
