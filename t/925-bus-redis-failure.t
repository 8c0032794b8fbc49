-- t/925-bus-redis-failure.t: coronet.bus across processes when Redis
-- fails: killed with kill -9 during traffic and started again, gone while
-- a process publishes a flood, hung (SIGSTOP); and a subscriber process
-- that stops reading. The bus recovers by itself, every subscription
-- comes back, the loss is reported and bounded, publishing never blocks,
-- local delivery goes on, and one slow process does not stall the rest.
local t = require "lib.tap"
local util = require "lib.util"
local rs = require "lib.redis_server"
local br = require "lib.busredis"
local coronet = require "coronet"
local redis = require "coronet.redis"

rs.skip_unless_available(t)
local srv = rs.start {}
local a, b = br.start(srv), br.start(srv)
local now = coronet.now

local function rclient()
  return assert(redis.connect(srv.addr, { timeout = 10 }))
end

t.test("kill -9 Redis during traffic, start it again: the bus recovers "
  .. "by itself", function()
  t.ok(br.wait_status(a, "up") and br.wait_status(b, "up"), "both up")
  local rc = rclient()
  local s = br.subscribe(b, "feed")
  t.ok(br.wait_numsub(rc, "feed", 1), "B is subscribed")
  rc:close()
  local total, rate = 4000, 1000
  local t0 = now()
  local join = util.spawn_wg(function()
    return br.publish(a, "feed", total, "f", rate)
  end)
  local seen
  local reader = util.spawn_wg(function()
    seen = br.collect(s, "f", total, 20)
  end)
  coronet.sleep(1)
  local killed = now()
  srv:kill()
  t.ok(br.wait_status(a, "down", 5), "A notices: status down")
  coronet.sleep(0.3)
  srv:launch()
  t.ok(br.wait_status(a, "up", 10) and br.wait_status(b, "up", 10),
    "both come back up by themselves")
  local back = now()
  rc = rclient()
  t.ok(br.wait_numsub(rc, "feed", 1), "B's subscription is back")
  rc:close()
  t.ok(join(30), "the publisher never blocked: it finished")
  reader(30)
  t.ok(#seen > 0, "B received messages")
  t.ok(br.in_order(seen), "in order")
  t.is(seen[#seen], total, "the last message arrived")
  -- what went missing was published between the kill and the return
  local first_lost, last_lost, missing = nil, nil, 0
  local have = {}
  for _, i in ipairs(seen) do have[i] = true end
  for i = 1, total do
    if not have[i] then
      missing = missing + 1
      first_lost = first_lost or i
      last_lost = i
    end
  end
  local lo = (killed - t0 - 0.5) * rate
  local hi = (back - t0 + 1.5) * rate
  t.ok(missing == 0 or (first_lost >= lo and last_lost <= hi),
    ("only messages of the outage are missing (%d, from %s to %s; outage "
      .. "%.0f..%.0f)"):format(missing, tostring(first_lost),
      tostring(last_lost), lo, hi))
  t.ok(a:wait_log("bus: redis .* down %("), "A's log says the bus went down")
  local line = a:wait_log("bus: redis .* back after [%d.]+ s: %d+ messages "
    .. "lost")
  t.ok(line, "and when it came back, with the loss: " .. tostring(line))
  t.ok(b:wait_log("back after"), "so does B's")
  local _, st = br.status(a)
  t.cmp_ok(st.outages, ">=", 1, "status counts the outage")
  s:stop()
end)

t.test("while Redis is down, publishing neither blocks nor grows the "
  .. "outbox past its bound; local delivery goes on", function()
  local s = br.subscribe(a, "flood", 200000)
  srv:kill()
  t.ok(br.wait_status(a, "down", 5), "down")
  local t0 = now()
  t.ok(br.publish(a, "flood", 100000, "x"), "100000 published")
  t.cmp_ok(now() - t0, "<", 10, "without waiting for Redis")
  local seen = br.collect(s, "x", 100000, 20)
  t.is(#seen, 100000, "the local subscriber got every one")
  local state, st = br.status(a)
  t.is(state, "down", "still down")
  t.cmp_ok(st.outbox, "<=", 65536, "the outbox holds at most 65536")
  t.cmp_ok(st.dropped, ">=", 100000 - 65536, "the rest were dropped, counted")
  srv:launch()
  t.ok(br.wait_status(a, "up", 10), "up again")
  local line = a:wait_log("back after .* lost %([1-9]%d* dropped", 10)
  local dropped = tonumber(line and line:match("lost %((%d+) dropped"))
  t.ok(dropped and dropped >= 100000 - 65536, "the log counts the dropped: "
    .. tostring(line))
  t.ok(util.wait_until(function()
    local _, c = br.status(a)
    return c.outbox == 0
  end), "the outbox drains once Redis is back")
  s:stop()
end)

t.test("a subscriber process that stops reading does not stall the others",
  function()
  local rc = rclient()
  -- Redis drops a subscriber 512 KiB behind (C, stopped, soon is)
  rc:config("set", "client-output-buffer-limit", "pubsub 524288 262144 1")
  local c = br.start(srv)
  t.ok(br.wait_status(c, "up"), "a third process is up")
  local sb, sc = br.subscribe(b, "slow"), br.subscribe(c, "slow")
  t.ok(br.wait_numsub(rc, "slow", 2), "B and C are subscribed")
  c:signal("STOP")
  local t0 = now()
  local tag = "s" .. ("p"):rep(150) -- 10000 of these fill 1.6 MB
  local join = util.spawn_wg(function()
    return br.publish(a, "slow", 10000, tag, 5000)
  end)
  local seen = br.collect(sb, tag, 10000, 20)
  if not t.is(#seen, 10000, "B got all 10000 while C is stopped") then
    t.diag(b:log():gsub("[^\n]*\n?", function(l)
      return l:find("bus") and l or ""
    end))
  end
  t.ok(br.in_order(seen), "in order")
  t.cmp_ok(now() - t0, "<", 10, "in good time")
  t.ok(join(10), "A finished publishing")
  c:signal("CONT")
  t.ok(c:wait_log("bus: redis .* down", 10),
    "Redis dropped the stalled C; C's log says so once it runs again")
  t.ok(br.wait_status(c, "up", 10), "and C comes back by itself")
  sb:stop()
  sc:stop()
  t.is(c:stop(), 0, "C exits cleanly")
  rc:config("set", "client-output-buffer-limit", "pubsub 33554432 8388608 60")
  rc:close()
end)

t.test("a Redis that stops answering is noticed by PING; the bus comes "
  .. "back when it answers again", function()
  t.ok(br.wait_status(a, "up"), "up")
  local t0 = now()
  srv.proc:kill("STOP")
  t.ok(br.wait_status(a, "down", 8), "down once PING goes unanswered")
  t.cmp_ok(now() - t0, ">=", 2.5, "after the PING deadline, not before")
  t.ok(a:wait_log("no answer to PING"), "the log says why")
  srv.proc:kill("CONT")
  t.ok(br.wait_status(a, "up", 10), "up again when Redis answers")
end)

t.test("processes end cleanly", function()
  t.is(a:stop(), 0, "A exits 0")
  t.is(b:stop(), 0, "B exits 0")
  srv:stop()
end)

t.done()
