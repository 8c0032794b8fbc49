-- t/905-redis-pubsub.t: coronet.redis pub/sub against a real redis-server:
-- channels and patterns, order, timeouts, unsubscribing, RESP2's
-- subscribe mode and RESP3's pushes beside commands, the server going
-- away under a subscriber.
local t = require "lib.tap"
local util = require "lib.util"
local rs = require "lib.redis_server"
local coronet = require "coronet"
local redis = require "coronet.redis"

rs.skip_unless_available(t)
local base = coronet.stats()
local srv = rs.start {}

local function connect(o)
  o = o or {}
  o.timeout = o.timeout or 10
  return assert(redis.connect(srv.addr, o))
end

local pub = connect()

t.test("subscribers get each message of their channels, in order",
  function()
  local s = connect()
  t.is(s:subscribe("news", "sport"), true, "subscribe to two channels")
  t.is(pub:publish("news", "first"), 1, "one subscriber got it")
  local m = s:next_message(5)
  t.ok(m and m.kind == "message" and m.channel == "news"
    and m.payload == "first" and m.pattern == nil, "kind, channel, payload")
  local payload = util.random_bytes(3000, 3) .. "\0"
  pub:publish("sport", payload)
  m = s:next_message(5)
  t.ok(m and m.channel == "sport" and m.payload == payload,
    "payloads are binary safe")
  local res = pub:pipeline(function(p)
    for i = 1, 1000 do p:publish(i % 2 == 0 and "news" or "sport", i) end
  end)
  t.is(#res, 1000, "1000 published in one pipeline")
  local inorder = true
  for i = 1, 1000 do
    m = s:next_message(5)
    if not m or m.payload ~= tostring(i) then
      inorder = false
      t.diag("  message " .. i .. ": " .. tostring(m and m.payload))
      break
    end
  end
  t.ok(inorder, "every message arrives, in publishing order")
  s:close()
end)

t.test("pattern subscriptions get pmessage with the pattern", function()
  local s = connect()
  t.is(s:psubscribe("room.*"), true, "psubscribe")
  pub:publish("room.42", "hi")
  pub:publish("lobby", "not for us")
  pub:publish("room.7", "there")
  local a, b = s:next_message(5), s:next_message(5)
  t.ok(a and a.kind == "pmessage" and a.pattern == "room.*"
    and a.channel == "room.42" and a.payload == "hi", "the first match")
  t.ok(b and b.channel == "room.7" and b.payload == "there",
    "the second; the channel that does not match is not delivered")
  s:subscribe("room.42")
  pub:publish("room.42", "twice")
  local x, y = s:next_message(5), s:next_message(5)
  t.ok(x and y and x.payload == "twice" and y.payload == "twice"
    and x.kind ~= y.kind, "a channel and a pattern both matching: one "
    .. "message and one pmessage, as Redis sends them")
  s:close()
end)

t.test("next_message times out and the subscription stays", function()
  local s = connect { timeout = 0.1 }
  s:subscribe("quiet")
  local t0 = coronet.now()
  local m, err = s:next_message(0.2)
  t.ok(m == nil and err == "timeout", "nil, \"timeout\"")
  t.cmp_ok(coronet.now() - t0, ">=", 0.19, "after the time asked")
  coronet.sleep(0.2) -- longer than the command timeout of 0.1 s
  pub:publish("quiet", "later")
  m, err = s:next_message(5)
  t.ok(m and m.payload == "later", "a later message still arrives; the "
    .. "command timeout does not bound the wait for messages")
  s:close()
end)

t.test("RESP2 subscribe mode takes only (un)subscriptions until the last "
  .. "unsubscribe", function()
  local s = connect()
  t.is(select(2, s:next_message(0.1)), "not subscribed",
    "next_message without a subscription says so")
  s:subscribe("a", "b")
  s:psubscribe("p*")
  t.is(select(2, s:get("x")), "subscribed", "a command is refused")
  t.is(s:unsubscribe("a"), true, "unsubscribe from one channel")
  pub:publish("a", "gone")
  pub:publish("b", "kept")
  local m = s:next_message(5)
  t.ok(m and m.channel == "b" and m.payload == "kept", "only b's message")
  t.is(s:unsubscribe(), true, "unsubscribe from all channels")
  t.is(select(2, s:get("x")), "subscribed", "the pattern still holds it")
  t.is(s:punsubscribe(), true, "punsubscribe from all patterns")
  t.is(s:set("x", "back"), "OK", "commands work again")
  t.is(s:unsubscribe(), true, "unsubscribing with nothing subscribed is fine")
  local ok, e = pcall(s.subscribe, s)
  t.like(not ok and e, "bad argument #1 to 'subscribe'",
    "subscribe with no channel raises")
  s:close()
end)

t.test("a message that arrives before a confirmation is kept", function()
  local s = connect()
  s:subscribe("one")
  pub:publish("one", "early") -- in s's socket before the next confirmation
  s:subscribe("two")
  pub:publish("two", "after")
  local a, b = s:next_message(5), s:next_message(5)
  t.ok(a and a.payload == "early", "the early message comes first")
  t.ok(b and b.payload == "after", "then the next")
  s:close()
end)

t.test("RESP3: commands and messages share the connection", function()
  local s = connect { resp = 3 }
  s:subscribe("mixed")
  pub:publish("mixed", "m1")
  t.is(s:set("k3", "v"), "OK", "a command while subscribed")
  pub:publish("mixed", "m2")
  t.is(s:get("k3"), "v", "another")
  local a, b = s:next_message(5), s:next_message(5)
  t.ok(a and a.payload == "m1" and b and b.payload == "m2",
    "the messages that arrived around them come in order")
  s:unsubscribe()
  t.is(select(2, s:next_message(0.05)), "not subscribed", "after unsubscribe")
  s:close()
end)

t.test("the server closing a subscriber's connection ends next_message",
  function()
  local s = connect()
  s:client("setname", "victim")
  s:subscribe("doomed")
  local join = util.spawn_wg(function() return s:next_message(10) end)
  util.settle(2)
  pub:client("kill", "type", "pubsub")
  local m, err = join(10)
  t.is(m, nil, "no message")
  t.is(err, "eof", "nil, \"eof\"")
  t.is(select(2, s:next_message(1)), "closed", "the connection is closed")
end)

t.test("nothing is left open", function()
  pub:close()
  redis.close_idle()
  srv:stop()
  util.check_clean(t, base)
end)

t.done()
