-- t/560-ping.t: scripts/ping.lua, the example client, against the real
-- echo server: percentiles on success, errors counted, usage on bad
-- arguments.
local t = require "lib.tap"
local server = require "lib.server"
local net = require "coronet.net"

local ping = server.path("scripts/ping.lua")

t.test("ping dials the echo server N times and prints percentiles",
  function()
  local s = server.start { script = server.path("scripts/echo.lua") }
  local code, err, out = server.run({ "--run", ping, s.addr, "-n", "50",
    "-c", "5", "-s", "100", "-q" }, 60)
  t.is(code, 0, "exit status 0")
  t.like(out, "50 pings, 50 ok, 0 errors, 5 at once", "all 50 succeeded")
  t.like(out, "latency ms: min [%d.]+ p50 [%d.]+ p90 [%d.]+ p99 [%d.]+ "
    .. "max [%d.]+", "with percentiles")
  t.is(err, "", "nothing on stderr")
  code, err, out = server.run({ "--run", ping, s.addr, "-n", "200", "-c",
    "4", "-k", "-q" }, 60)
  t.is(code, 0, "-k: exit status 0")
  t.like(out, "200 pings, 200 ok, 0 errors", "-k: all 200 round trips")
  t.like(out, "round trips on open connections", "-k: says what it timed")
  code, err, out = server.run({ "--run", ping, s.addr, "-n", "3" }, 60)
  t.like(out, "seq=3 time=", "without -q each ping is printed")
  t.is(s:stop(), 0, "the server stops cleanly")
end, 120)

t.test("ping counts errors and exits 1 when the server is not there",
  function()
  local l = assert(net.listen("127.0.0.1:0", function() end))
  local addr = l:addr()
  l:close()
  local code, _, out = server.run({ "--run", ping, addr, "-n", "3", "-q" })
  t.is(code, 1, "exit status 1")
  t.like(out, "3 pings, 0 ok, 3 errors", "three errors")
  t.like(out, "3 x dial " .. addr:gsub("%.", "%%.") .. ": connection refused",
    "the errors are named")
end)

t.test("ping prints its usage on bad arguments and exits 2", function()
  local code, err = server.run({ "--run", ping })
  t.is(code, 2, "no address: status 2")
  t.like(err, "usage: coronet %-%-run scripts/ping%.lua ADDR", "the usage")
  code, err = server.run({ "--run", ping, "127.0.0.1:1", "-n", "x" })
  t.is(code, 2, "a bad count: status 2")
  t.like(err, "%-n needs a positive integer", "says what is wrong")
  code, err = server.run({ "--run", ping, "127.0.0.1:1", "--bogus" })
  t.like(err, "unknown option %-%-bogus", "an unknown option")
  local out
  code, err, out = server.run({ "--run", ping, "-h" })
  t.is(code, 0, "-h: status 0")
  t.like(out, "usage:", "-h prints the usage")
end)

t.done()
