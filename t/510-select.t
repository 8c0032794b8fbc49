-- t/510-select.t: select over receives, sends, timeouts and a default:
-- what runs, what it returns, fairness among ready cases, waking, close,
-- and that waiting leaves nothing behind on the channels.
local t = require "lib.tap"
local util = require "lib.util"
local coronet = require "coronet"

local spawn, chan, select, now =
  coronet.spawn, coronet.chan, coronet.select, coronet.now

local settle = util.settle

local queued = util.queued

t.test("a ready receive runs its fn, and select returns what fn returns",
  function()
  local a, b = chan(1), chan(1)
  b:send("hello")
  local x, y = select {
    { recv = a, fn = function() return "a" end },
    { recv = b, fn = function(v, ok) return "b:" .. v, ok end },
  }
  t.is(x, "b:hello", "the ready case ran with the value")
  t.is(y, true, "and ok; both results came back")
end)

t.test("default runs when nothing is ready, and only then", function()
  local a = chan(1)
  local r = select {
    { recv = a, fn = function() return "recv" end },
    { default = true, fn = function() return "default" end },
  }
  t.is(r, "default", "nothing ready: default")
  a:send(1)
  r = select {
    { recv = a, fn = function() return "recv" end },
    { default = true, fn = function() return "default" end },
  }
  t.is(r, "recv", "a ready case wins over default")
end)

t.test("a timeout case runs when nothing comes in time", function()
  local a = chan()
  local t0 = now()
  local r = select {
    { recv = a, fn = function() return "recv" end },
    { timeout = 0.05, fn = function() return "timeout" end },
  }
  local d = now() - t0
  t.is(r, "timeout", "the timeout case ran")
  t.cmp_ok(d, ">=", 0.049, "after at least 50 ms")
  t.cmp_ok(d, "<", 2, "and not much later")
  t.is(queued(a.recvq), 0, "the channel holds no waiter afterwards")
end)

t.test("of several timeouts the shortest runs", function()
  local r = select {
    { timeout = 0.2, fn = function() return "long" end },
    { timeout = 0.02, fn = function() return "short" end },
    { recv = chan() },
  }
  t.is(r, "short", "the 20 ms one")
end)

t.test("a timeout of zero or less acts as a default", function()
  local r = select {
    { recv = chan() },
    { timeout = 0, fn = function() return "now" end },
  }
  t.is(r, "now", "timeout 0 runs at once")
end)

t.test("a value that comes before the timeout wins", function()
  local a = chan()
  spawn(function()
    coronet.sleep(0.02)
    a:send("v")
  end)
  local r = select {
    { recv = a, fn = function(v) return "got " .. v end },
    { timeout = 5, fn = function() return "timeout" end },
  }
  t.is(r, "got v", "the receive ran")
end)

t.test("a waiting select wakes on whichever channel is ready first",
  function()
  for round = 1, 2 do
    local a, b = chan(), chan()
    local done = chan(1)
    spawn(function()
      done:send(select {
        { recv = a, fn = function(v) return "a" .. v end },
        { recv = b, fn = function(v) return "b" .. v end },
      })
    end)
    settle()
    t.is(queued(a.recvq) + queued(b.recvq), 2,
      "round " .. round .. ": it waits on both channels")
    if round == 1 then a:send(1) else b:send(2) end
    local r = done:recv()
    t.is(r, round == 1 and "a1" or "b2", "round " .. round
      .. ": the right case ran")
    t.is(queued(a.recvq) + queued(b.recvq), 0,
      "round " .. round .. ": it left both queues")
  end
end)

t.test("a send case completes when a receiver comes", function()
  local a = chan()
  local done = chan(1)
  spawn(function()
    done:send(select {
      { send = a, value = "sent", fn = function() return "send ran" end },
      { timeout = 5, fn = function() return "timeout" end },
    })
  end)
  settle()
  t.is(a:recv(), "sent", "the receiver got the case's value")
  t.is(done:recv(), "send ran", "and the send case's fn ran")
end)

t.test("a send case can carry nil", function()
  local a = chan(1)
  local r = select { { send = a, fn = function() return "ok" end } }
  t.is(r, "ok", "it ran")
  local v, ok = a:recv()
  t.ok(v == nil and ok == true, "nil was sent")
end)

t.test("a send case goes to a ready buffer at once", function()
  local a, b = chan(1), chan()
  local r = select {
    { send = a, value = 1, fn = function() return "a" end },
    { recv = b, fn = function() return "b" end },
  }
  t.is(r, "a", "the buffer had room")
  t.is(a:len(), 1, "the value is buffered")
end)

t.test("receiving from a closed channel is ready, with ok false",
  function()
  local a = chan()
  a:close()
  local v, ok = select { { recv = a, fn = function(v, ok) return v, ok end } }
  t.ok(v == nil and ok == false, "nil, false")
end)

t.test("closing a channel wakes a select waiting on it", function()
  local a = chan()
  local done = chan(1)
  spawn(function()
    done:send(select {
      { recv = a, fn = function(v, ok) return tostring(v) .. "/"
        .. tostring(ok) end },
      { timeout = 5, fn = function() return "timeout" end },
    })
  end)
  settle()
  a:close()
  t.is(done:recv(), "nil/false", "the receive case ran with nil, false")
end)

t.test("a send case on a closed channel raises", function()
  local a = chan(1)
  a:close()
  local ok, err = pcall(function()
    select { { send = a, value = 1 } }
  end)
  t.ok(not ok, "it raises")
  t.like(err, "send on closed channel", "with a clear message")
  local b = chan()
  local res = chan(1)
  spawn(function()
    local ok2, err2 = pcall(function()
      select { { send = b, value = 1 }, { timeout = 5 } }
    end)
    res:send(ok2 and "no error" or err2)
  end)
  settle()
  b:close()
  t.like(res:recv(), "send on closed channel",
    "and so does one that was waiting when the channel closed")
end)

t.test("select is fair: among ready cases each is chosen about as often",
  function()
  local n, rounds = 3, 30000
  local chans, counts = {}, {}
  local cases = {}
  for i = 1, n do
    chans[i] = chan(1)
    chans[i]:send(i)
    counts[i] = 0
    cases[i] = { recv = chans[i], fn = function(v)
      counts[v] = counts[v] + 1
      chans[v]:send(v) -- ready again
    end }
  end
  for _ = 1, rounds do select(cases) end
  local lo, hi = rounds, 0
  for i = 1, n do
    lo, hi = math.min(lo, counts[i]), math.max(hi, counts[i])
  end
  t.diag(string.format("  counts: %d %d %d", counts[1], counts[2],
    counts[3]))
  local expect = rounds / n
  t.cmp_ok(lo, ">", expect * 0.9, "the least chosen is within 10% of 1/3")
  t.cmp_ok(hi, "<", expect * 1.1, "the most chosen is within 10% of 1/3")
end)

t.test("fair between a receive and a send that are both ready", function()
  local r, s = chan(1), chan(1)
  local counts = { recv = 0, send = 0 }
  local cases = {
    { recv = r, fn = function() counts.recv = counts.recv + 1; r:send(1) end },
    { send = s, value = 1, fn = function()
      counts.send = counts.send + 1
      s:recv()
    end },
  }
  r:send(1)
  for _ = 1, 20000 do select(cases) end
  t.cmp_ok(counts.recv, ">", 9000, "the receive ran about half the time")
  t.cmp_ok(counts.send, ">", 9000, "the send ran about half the time")
end)

t.test("a select that times out again and again leaves no waiters behind",
  function()
  local never = chan()
  for _ = 1, 200 do
    select { { recv = never }, { send = never, value = 1 },
      { timeout = 0.0001 } }
  end
  t.is(queued(never.recvq), 0, "no receiver is left on the channel")
  t.is(queued(never.sendq), 0, "no sender either")
end)

t.test("without fn, select returns the case's index and values", function()
  local a, b = chan(), chan(1)
  b:send("x")
  local i, v, ok = select { { recv = a }, { recv = b } }
  t.is(i, 2, "index 2")
  t.is(v, "x", "the value")
  t.is(ok, true, "ok")
  i = select { { recv = a }, { default = true } }
  t.is(i, 2, "the default's index")
end)

t.test("disabled cases (recv = false) are never chosen", function()
  local r = select {
    { recv = false, fn = function() return "disabled" end },
    { send = false, fn = function() return "disabled" end },
    { timeout = 0.01, fn = function() return "timeout" end },
  }
  t.is(r, "timeout", "only the timeout could run")
  local ok, err = pcall(select, { { recv = false } })
  t.ok(not ok, "a select that can never proceed raises")
  t.like(err, "nothing to wait for", "saying so")
end)

t.test("malformed cases raise errors naming the case", function()
  local ok, err = pcall(select, { { fn = function() end } })
  t.ok(not ok, "a case with nothing to do raises")
  t.like(err, "case 1 has no recv, send, timeout or default", "naming it")
  ok, err = pcall(select, { { timeout = 1 }, { recv = {} } })
  t.ok(not ok, "a recv of a non-channel raises")
  t.like(err, "case 2: recv is not a channel", "naming it")
  ok, err = pcall(select, "x")
  t.like(err, "bad argument #1 to 'select'", "a non-table raises")
  ok, err = pcall(select, { { timeout = "1" } })
  t.like(err, "timeout is not a number", "a bad timeout raises")
end)

t.test("select over timers: after() makes a timeout channel", function()
  local a = chan()
  local t0 = now()
  local r = select {
    { recv = a, fn = function() return "recv" end },
    { recv = coronet.after(0.03), fn = function(at) return at end },
  }
  t.cmp_ok(r - t0, ">=", 0.029, "the timer's channel delivered its time")
end)

t.test("no task is left over", function()
  settle(10)
  t.is(coronet.stats().tasks, 2, "only the main task and this test's")
end)

t.done()
