-- t/920-bus-redis.t: coronet.bus across processes through Redis (--bus):
-- messages between processes in order and never twice, one Redis
-- subscription per process that follows local interest, messages
-- published from outside, AUTH and bad URLs, status without --bus.
local t = require "lib.tap"
local util = require "lib.util"
local rs = require "lib.redis_server"
local br = require "lib.busredis"
local server = require "lib.server"
local coronet = require "coronet"
local redis = require "coronet.redis"
local bus = require "coronet.bus"

rs.skip_unless_available(t)
local srv = rs.start {}
local rc = assert(redis.connect(srv.addr, { timeout = 10 }))
local a, b = br.start(srv), br.start(srv)

t.test("status() without --bus says the bus is local", function()
  local state, c = bus.status()
  t.is(state, "local", "\"local\"")
  t.is(c.redis, nil, "no Redis address")
end)

t.test("processes attached to one Redis come up", function()
  t.ok(br.wait_status(a, "up"), "the first says up")
  t.ok(br.wait_status(b, "up"), "the second too")
  t.ok(a:wait_log("bus: redis unix:.* up"), "the log says so")
end)

t.test("two processes exchange messages in order, and none arrives twice",
  function()
  local sa, sb = br.subscribe(a, "chat"), br.subscribe(b, "chat")
  t.ok(br.wait_numsub(rc, "chat", 2), "Redis has one subscription from each")
  local join_a = util.spawn_wg(function()
    return br.publish(a, "chat", 2000, "a")
  end)
  local join_b = util.spawn_wg(function()
    return br.publish(b, "chat", 2000, "b")
  end)
  for _, s in ipairs { { sa, "A" }, { sb, "B" } } do
    local got = { a = {}, b = {} }
    local n = 0
    while n < 4000 do
      local msg = s[1]:next(20)
      if not msg then break end
      local tag, i = msg:match("^(%a) (%d+)$")
      if got[tag] then
        got[tag][#got[tag] + 1] = tonumber(i)
        n = n + 1
      end
    end
    t.is(n, 4000, s[2] .. " got all 4000 messages, its own and the other's")
    t.ok(br.in_order(got.a) and #got.a == 2000 and got.a[2000] == 2000,
      s[2] .. ": A's messages in A's order, each once")
    t.ok(br.in_order(got.b) and #got.b == 2000 and got.b[2000] == 2000,
      s[2] .. ": B's messages in B's order, each once")
    local extra = s[1]:next(0.3)
    t.is(extra, nil, s[2] .. ": nothing more comes (no echo from Redis)")
  end
  t.ok(join_a(30) and join_b(30), "both publishers finished")
  sa:stop()
  sb:stop()
end)

t.test("one Redis subscription per process, from the first local "
  .. "subscriber to the last", function()
  local c = br.start(srv, { "--workers", "2" })
  t.ok(br.wait_status(c, "up"), "a process with two workers is up")
  local subs, workers = {}, {}
  for _ = 1, 40 do
    local s = br.subscribe(c, "multi")
    if workers[s.worker] then
      s:stop()
    else
      workers[s.worker] = true
      subs[#subs + 1] = s
    end
    if #subs == 2 then break end
  end
  t.is(#subs, 2, "a subscriber on each worker")
  t.ok(br.wait_numsub(rc, "multi", 1), "Redis has ONE subscription")
  util.settle(20)
  t.is(br.numsub(rc, "multi"), 1, "and it stays one")
  t.ok(br.publish(a, "multi", 10, "m"), "another process publishes")
  for i, s in ipairs(subs) do
    local seen = br.collect(s, "m", 10, 10)
    t.is(#seen, 10, "subscriber on worker " .. s.worker .. " got all")
  end
  subs[1]:stop()
  util.settle(20)
  t.is(br.numsub(rc, "multi"), 1, "one local subscriber left: still one")
  subs[2]:stop()
  t.ok(br.wait_numsub(rc, "multi", 0), "the last gone: unsubscribed")
  t.is(c:stop(), 0, "the process ends cleanly")
end)

t.test("a message published from outside coronet arrives whole", function()
  local s = br.subscribe(b, "ext")
  t.ok(br.wait_numsub(rc, "ext", 1), "subscribed")
  rc:publish(br.channel("ext"), "from redis-cli")
  t.is(s:next(10), "from redis-cli", "delivered as it was published")
  s:stop()
end)

t.test("bad --bus URLs stop coronet; an unreachable Redis leaves the bus "
  .. "down, logged", function()
  local c = br.start({ url = "redis://" .. "localhost:1/0" })
  local d = server.run({ "--bus", "redis://", "t/lib/svc_busredis.lua" })
  t.is(d, 2, "a URL without a host is a usage error")
  local e = server.run({ "--bus", "redis://h:1/x", "t/lib/svc_busredis.lua" })
  t.is(e, 2, "a bad database is a usage error")
  t.ok(br.wait_status(c, "down"), "an unreachable Redis: the bus is down")
  t.ok(c:wait_log("bus: redis localhost:1 down %(connect: connection "
    .. "refused%)"), "and the log says why")
  c:stop()
end)

t.test("AUTH: a password in the URL", function()
  local secure = rs.start { tcp = true, args = { "--requirepass", "pw" } }
  local good = br.start({ url = "redis://:pw@" .. secure.addr .. "/2" })
  local bad = br.start({ url = "redis://:nope@" .. secure.addr })
  t.ok(br.wait_status(good, "up"), "the right password: up")
  local s = br.subscribe(good, "sec")
  local src = assert(redis.connect(secure.addr, { password = "pw" }))
  t.ok(util.wait_until(function()
    return src:pubsub("numsub", "coronet:bus:2:sec")[2] == 1
  end), "db 2's channel is coronet:bus:2:sec")
  t.ok(bad:wait_log("WRONGPASS"), "a wrong password is logged")
  t.is(br.status(bad), "down", "and the bus stays down")
  s:stop()
  src:close()
  good:stop()
  bad:stop()
  secure:stop()
end)

t.test("processes end cleanly", function()
  t.is(a:stop(), 0, "A exits 0")
  t.is(b:stop(), 0, "B exits 0")
  rc:close()
  srv:stop()
end)

t.done()
