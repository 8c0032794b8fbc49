-- chan_bench: channel send/receive pairs per second between two tasks,
-- unbuffered and buffered; the same work as bench/chan_bench.go.
--   coronet --run bench/chan_bench.lua [PAIRS [CAP [RUNS]]]
-- Each case runs RUNS times (default 3); the fastest is reported.
-- Prints one line per case: "coronet unbuffered pairs=N secs=S rate=R
-- cpu_rate=C": rate by the wall clock, cpu_rate by the process's CPU time
-- (both the best of the runs).
local coronet = require "coronet"
local format = string.format
local now, chan, spawn = coronet.now, coronet.chan, coronet.spawn
local clock = os.clock -- the process's CPU time: steadier on a busy machine

local n = tonumber(arg[1]) or 1000000
local capacity = tonumber(arg[2]) or 128
local reps = tonumber(arg[3]) or 3

local function run(pairs, cap)
  local ch, done = chan(cap), chan(1)
  spawn(function()
    local sum = 0
    while true do
      local v, ok = ch:recv()
      if not ok then break end
      sum = sum + v
    end
    done:send(sum)
  end)
  local t0, c0 = now(), clock()
  for i = 0, pairs - 1 do ch:send(i) end
  ch:close()
  local sum = done:recv()
  local secs, cpu = now() - t0, clock() - c0
  assert(sum == pairs * (pairs - 1) / 2, "lost values")
  return secs, cpu
end

for _, c in ipairs { { "unbuffered", 0 },
  { format("buffered(%d)", capacity), capacity } } do
  run(math.floor(n / 10), c[2]) -- warm-up (and JIT)
  local secs, cpu = run(n, c[2])
  for _ = 2, reps do
    local s, u = run(n, c[2])
    secs, cpu = math.min(secs, s), math.min(cpu, u)
  end
  print(format("coronet %s pairs=%d secs=%.4f rate=%.0f cpu_rate=%.0f", c[1],
    n, secs, n / secs, n / cpu))
end
