-- dial_bench: how many dial+close per second coronet.net.dial does against
-- a loopback listener: its own (in this process, so the accepting side is
-- counted too) or ADDR's.
--   coronet --run bench/dial_bench.lua [SECONDS [CONCURRENCY [ADDR]]]
-- Prints "coronet dial+close conc=C dials=N secs=S rate=R errors=E".
local coronet = require "coronet"
local net = require "coronet.net"
local format = string.format
local now = coronet.now

local secs = tonumber(arg[1]) or 2
local conc = tonumber(arg[2]) or 1
local addr = arg[3]
local MAX = 200000 -- bounds the count (ephemeral ports) whatever the speed

local l
if not addr then
  l = assert(net.listen("127.0.0.1:0", function() end)) -- closes at once
  addr = l:addr()
end

local function bench(duration)
  local dials, errors, first_err = 0, 0, nil
  local stop = now() + duration
  local wg = coronet.waitgroup()
  local t0 = now()
  for _ = 1, conc do
    wg:add(1)
    coronet.spawn(function()
      while now() < stop and dials + errors < MAX do
        local c, err = net.dial(addr, { timeout = 5 })
        if c then
          c:close()
          dials = dials + 1
        else
          errors = errors + 1
          first_err = first_err or err
        end
      end
      wg:done()
    end)
  end
  wg:wait()
  return dials, errors, now() - t0, first_err
end

bench(math.min(0.2, secs / 10)) -- warm-up
local dials, errors, took, err = bench(secs)
print(format("coronet dial+close conc=%d dials=%d secs=%.3f rate=%.0f "
  .. "errors=%d%s", conc, dials, took, dials / took, errors,
  err and (" (" .. err .. ")") or ""))
if l then l:close() end
os.exit(errors == 0 and 0 or 1)
