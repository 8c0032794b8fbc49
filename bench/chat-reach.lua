-- bench/chat-reach.lua: one load process of bench/chat-reach-bench.sh.
--   coronet --run bench/chat-reach.lua ADDRS N OUT [send]
-- Opens N chat connections, spread over ADDRS (comma-separated
-- HOST:PORT: several destination addresses, so that more connections
-- than one address's ephemeral ports fit), waits for each one's welcome
-- notice, then prints "ready N". With "send", it then waits for a line on
-- stdin and sends one chat line carrying the time ("#REACH#<ns>#") from
-- its first connection. Every connection records how long that line took
-- to reach it; once all have it (or 10 minutes passed) the latencies (µs,
-- one a line) go to OUT and "done got=K of=N" is printed.
local coronet = require "coronet"
local net = require "coronet.net"
local fs = require "coronet.fs"
local sched = require "coronet.c.sched"
local format, floor = string.format, math.floor

local addrs, n, out, send = arg[1], tonumber(arg[2]), arg[3], arg[4] == "send"
assert(addrs and n and out, "usage: chat-reach.lua ADDRS N OUT [send]")
local list = {}
for a in addrs:gmatch("[^,]+") do list[#list + 1] = a end

local function ns() return floor(sched.now() * 1e9) end

local conns, lat, got, failed = {}, {}, 0, 0
local all = coronet.waitgroup()
local joined = coronet.waitgroup()

local function member(i)
  local c, err = net.dial(list[(i - 1) % #list + 1], { timeout = 30 })
  if not c then
    failed = failed + 1
    joined:done()
    all:done()
    io.stderr:write("dial: " .. err .. "\n")
    return
  end
  conns[i] = c
  c:set_timeout(600)
  local first = c:read_line()
  joined:done()
  if first then
    while true do
      local line = c:read_line()
      if not line then break end
      local t = line:match("#REACH#(%d+)#")
      if t then
        lat[#lat + 1] = (ns() - tonumber(t)) / 1e3
        got = got + 1
        break
      end
    end
  end
  all:done()
end

all:add(n)
joined:add(n)
for i = 1, n do
  coronet.spawn(member, i)
  if i % 500 == 0 then coronet.sleep(0.01) end -- paced connects
end
joined:wait(300)
io.stdout:write(format("ready %d failed=%d\n", n - failed, failed))
io.stdout:flush()
if send then
  local stdin = assert(fs.open("/dev/stdin", "r"))
  stdin:read(1) -- the go signal
  conns[1]:write(format("#REACH#%d#\n", ns()))
  conns[1]:close() -- the sender does not get its own line
  n = n - 1
end
all:wait(600)
local f = assert(io.open(out, "w"))
for _, v in ipairs(lat) do f:write(format("%.0f\n", v)) end
f:close()
io.stdout:write(format("done got=%d of=%d\n", got, n))
io.stdout:flush()
os.exit(0)
