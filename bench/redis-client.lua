-- bench/redis-client.lua: coronet.redis load for bench/redis-bench.sh.
--   coronet --run bench/redis-client.lua ADDR COMMAND N DEPTH
-- Runs N commands (set or get, 3-byte values, one key, as redis-benchmark
-- does by default) on one connection, DEPTH at a time in a pipeline (1:
-- one call, one round trip each), and prints "rps=N secs=S errors=E".
local coronet = require "coronet"
local redis = require "coronet.redis"

local addr, cmd, n, depth = arg[1], arg[2], tonumber(arg[3]), tonumber(arg[4])
assert(addr and (cmd == "set" or cmd == "get") and n and depth,
  "usage: redis-client.lua ADDR set|get N DEPTH")
local r = assert(redis.connect(addr, { timeout = 30 }))
local key, val = "key:__rand_int__", "xxx"
assert(r:set(key, val))
local errors = 0
local t0 = coronet.now()
local want = cmd == "set" and "OK" or val
local args = cmd == "set" and { key, val } or { key }
local unpack = unpack
if depth == 1 then
  local f = r[cmd]
  for _ = 1, n do
    if f(r, unpack(args)) ~= want then errors = errors + 1 end
  end
else
  local rounds = math.floor(n / depth)
  n = rounds * depth
  for _ = 1, rounds do
    local res = assert(r:pipeline(function(p)
      local f = p[cmd]
      for _ = 1, depth do f(p, unpack(args)) end
    end))
    if #res ~= depth or res[depth] ~= want then errors = errors + 1 end
  end
end
local secs = coronet.now() - t0
print(("rps=%.0f secs=%.3f errors=%d"):format(n / secs, secs, errors))
r:close()
