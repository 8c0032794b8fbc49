-- t/500-chan.t: channels: unbuffered handover, buffering, FIFO order of
-- waiting senders and receivers, nil values, close, timeouts, and that no
-- waiter is left behind.
local t = require "lib.tap"
local util = require "lib.util"
local coronet = require "coronet"
local chan = require "coronet.chan"

local spawn, chan_new, now = coronet.spawn, coronet.chan, coronet.now

-- settle lets every ready task run a few turns.
local settle = util.settle

local queued = util.queued

t.test("an unbuffered send completes only once a receiver took the value",
  function()
  local ch = chan_new()
  local log = {}
  spawn(function()
    log[#log + 1] = "send"
    ch:send("x")
    log[#log + 1] = "sent"
  end)
  settle()
  t.is(table.concat(log, ","), "send", "the sender waits with no receiver")
  t.is(queued(ch.sendq), 1, "it is queued as a sender")
  local v, ok = ch:recv()
  t.is(v, "x", "the receiver gets the value")
  t.is(ok, true, "and ok")
  settle()
  t.is(table.concat(log, ","), "send,sent", "then the sender goes on")
  t.is(ch:len(), 0, "an unbuffered channel buffers nothing")
  t.is(ch:cap(), 0, "cap() is 0")
end)

t.test("a buffered channel takes cap values without waiting, in order",
  function()
  local ch = chan_new(3)
  t.is(ch:cap(), 3, "cap() is 3")
  for i = 1, 3 do t.ok(ch:send(i, 0), "send " .. i .. " needs no wait") end
  t.is(ch:len(), 3, "len() counts them")
  local r, err = ch:send(4, 0)
  t.is(r, nil, "a fourth send would wait")
  t.is(err, "timeout", "so send(v, 0) says timeout")
  local got = {}
  for round = 1, 40 do -- wraps around the ring many times
    got[#got + 1] = ch:recv()
    ch:send(round + 3)
  end
  local want = {}
  for i = 1, 40 do want[i] = i end
  t.is(table.concat(got, " "), table.concat(want, " "),
    "values come out in the order they went in, across the ring's wrap")
end)

t.test("waiting senders are served first come, first served", function()
  local ch = chan_new()
  for i = 1, 5 do
    spawn(function() ch:send(i) end)
    settle(1)
  end
  settle()
  t.is(queued(ch.sendq), 5, "five senders wait")
  local got = {}
  for i = 1, 5 do got[i] = ch:recv() end
  t.is(table.concat(got, " "), "1 2 3 4 5", "received in their order")
end)

t.test("waiting receivers are served first come, first served", function()
  local ch = chan_new(2)
  local got = {}
  local done = chan_new(5)
  for i = 1, 5 do
    spawn(function()
      got[i] = ch:recv()
      done:send(true)
    end)
    settle(1)
  end
  settle()
  t.is(queued(ch.recvq), 5, "five receivers wait")
  for i = 1, 5 do ch:send("v" .. i) end
  for _ = 1, 5 do done:recv() end
  t.is(table.concat(got, " "), "v1 v2 v3 v4 v5",
    "the first to wait gets the first value")
end)

t.test("waiting senders keep their order through a full buffer", function()
  local ch = chan_new(2)
  ch:send(1)
  ch:send(2)
  for i = 3, 6 do
    spawn(function() ch:send(i) end)
    settle(1)
  end
  settle()
  local got = {}
  for i = 1, 6 do got[i] = ch:recv() end
  t.is(table.concat(got, " "), "1 2 3 4 5 6",
    "buffered values first, then the waiting senders' in order")
end)

t.test("nil goes through channels like any value", function()
  local ub, b = chan_new(), chan_new(4)
  spawn(function() ub:send(nil) end)
  local v, ok = ub:recv()
  t.is(v, nil, "unbuffered: nil received")
  t.is(ok, true, "with ok true")
  b:send(nil)
  b:send(false)
  b:send(nil)
  t.is(b:len(), 3, "three values buffered, two of them nil")
  local a1, o1 = b:recv()
  local a2, o2 = b:recv()
  local a3, o3 = b:recv()
  t.ok(a1 == nil and o1 and a2 == false and o2 and a3 == nil and o3,
    "nil, false, nil come out with ok")
end)

t.test("close: buffered values drain, then nil, false", function()
  local ch = chan_new(3)
  ch:send("a")
  ch:send("b")
  ch:close()
  t.ok(ch:is_closed(), "is_closed() says so")
  local v1, ok1 = ch:recv()
  local v2, ok2 = ch:recv()
  local v3, ok3 = ch:recv()
  t.ok(v1 == "a" and ok1 and v2 == "b" and ok2, "buffered values first")
  t.ok(v3 == nil and ok3 == false, "then nil, false")
  local v4, ok4 = ch:recv()
  t.ok(v4 == nil and ok4 == false, "and again, without waiting")
end)

t.test("close wakes every waiting receiver with nil, false", function()
  local ch = chan_new()
  local results, done = {}, chan_new(10)
  for i = 1, 3 do
    spawn(function()
      local v, ok = ch:recv()
      results[i] = tostring(v) .. "/" .. tostring(ok)
      done:send(true)
    end)
  end
  settle()
  ch:close()
  for _ = 1, 3 do done:recv() end
  t.is(table.concat(results, " "), "nil/false nil/false nil/false",
    "all three woke")
  t.is(queued(ch.recvq), 0, "none is left queued")
end)

t.test("close raises in every waiting sender", function()
  local ch = chan_new(1)
  ch:send(0)
  local errs, done = {}, chan_new(10)
  for i = 1, 2 do
    spawn(function()
      local ok, err = pcall(ch.send, ch, i)
      errs[i] = ok and "no error" or tostring(err)
      done:send(true)
    end)
  end
  settle()
  ch:close()
  done:recv()
  done:recv()
  t.like(errs[1], "send on closed channel", "the first sender raised")
  t.like(errs[2], "send on closed channel", "the second too")
  t.is(ch:recv(), 0, "the buffered value is still there")
end)

t.test("send on a closed channel and a second close raise", function()
  local ch = chan_new(1)
  ch:close()
  local ok, err = pcall(function() ch:send(1) end)
  t.ok(not ok, "send raises")
  t.like(err, "send on closed channel", "with a clear message")
  t.like(err, "500%-chan%.t:%d+:", "blaming the caller's line")
  ok, err = pcall(ch.close, ch)
  t.ok(not ok, "close raises")
  t.like(err, "close of closed channel", "with a clear message")
end)

t.test("recv with a timeout gives up and leaves no waiter behind", function()
  local ch = chan_new()
  local a = now()
  local v, ok, err = ch:recv(0.05)
  local d = now() - a
  t.ok(v == nil and ok == false, "nil, false")
  t.is(err, "timeout", "and a third value, timeout")
  t.cmp_ok(d, ">=", 0.049, "after at least the timeout")
  t.cmp_ok(d, "<", 2, "and not much later")
  t.is(queued(ch.recvq), 0, "the receiver left the queue")
  local r, serr = ch:send("late", 0)
  t.ok(r == nil and serr == "timeout",
    "a later send finds no receiver (the dead one is gone)")
  v, ok, err = ch:recv(0)
  t.ok(v == nil and ok == false and err == "timeout", "recv(0) polls")
end)

t.test("send with a timeout gives up; the value is not delivered", function()
  local ch = chan_new(1)
  ch:send("kept")
  local r, err = ch:send("dropped", 0.03)
  t.is(r, nil, "send returns nil")
  t.is(err, "timeout", "and timeout")
  t.is(queued(ch.sendq), 0, "the sender left the queue")
  t.is(ch:recv(), "kept", "the buffered value is there")
  local v, ok, rerr = ch:recv(0)
  t.ok(v == nil and ok == false and rerr == "timeout",
    "and the timed-out one never arrives")
end)

t.test("a waiter that woke elsewhere is skipped, not handed a value",
  function()
  -- the task in select is woken by a, and is still queued on b until it
  -- runs: a send on b must not count it as a receiver
  local a, b = chan_new(), chan_new()
  local got
  local done = chan_new(1)
  spawn(function()
    got = coronet.select {
      { recv = a, fn = function(v) return "a:" .. v end },
      { recv = b, fn = function(v) return "b:" .. v end },
    }
    done:send(true)
  end)
  settle()
  t.is(queued(b.recvq), 1, "the select waits on b too")
  a:send(1) -- wakes it; it has not run yet
  local r, err = b:send(2, 0)
  t.ok(r == nil and err == "timeout", "the send on b finds nobody")
  done:recv()
  t.is(got, "a:1", "the select got a's value only")
  t.is(queued(a.recvq) + queued(b.recvq), 0, "no node is left")
end)

t.test("many producers, one consumer: nothing lost, each in order",
  function()
  local ch = chan_new(10)
  local P, N = 200, 50
  local wg = coronet.waitgroup()
  for p = 1, P do
    wg:add(1)
    spawn(function()
      for i = 1, N do ch:send({ p, i }) end
      wg:done()
    end)
  end
  spawn(function()
    wg:wait()
    ch:close()
  end)
  local last, count, bad = {}, 0, 0
  while true do
    local m, ok = ch:recv()
    if not ok then break end
    count = count + 1
    if m[2] ~= (last[m[1]] or 0) + 1 then bad = bad + 1 end
    last[m[1]] = m[2]
  end
  t.is(count, P * N, "every value arrived once")
  t.is(bad, 0, "each producer's values in its order")
end)

t.test("many tasks ping-pong on unbuffered channels", function()
  local n, rounds = 100, 100
  local first = chan_new()
  local prev = first
  for _ = 1, n do -- a ring of n tasks passing a counter along
    local inp, out = prev, chan_new()
    spawn(function()
      for _ = 1, rounds do
        local v = inp:recv()
        out:send(v + 1)
      end
    end)
    prev = out
  end
  local v = 0
  for _ = 1, rounds do
    first:send(v)
    v = prev:recv()
  end
  t.is(v, n * rounds, "the counter went round the ring every time")
end)

t.test("bad arguments raise", function()
  local ok, err = pcall(coronet.chan, -1)
  t.ok(not ok, "chan(-1) raises")
  t.like(err, "bad argument #1 to 'chan'", "naming chan")
  ok = pcall(coronet.chan, 1.5)
  t.ok(not ok, "chan(1.5) raises")
  ok = pcall(coronet.chan, "3")
  t.ok(not ok, "chan('3') raises")
  t.ok(chan.is_chan(coronet.chan()), "is_chan knows a channel")
  t.ok(not chan.is_chan({}), "and a table that is not one")
end)

-- cleanup: recv("x") and send(v, "x") said "attempt to compare string
-- with number" from inside coronet.chan
t.test("a timeout that is not a number raises naming recv or send", function()
  local ch = chan_new(1)
  util.bad_arg(t, function() ch:recv("x") end, 1, "recv",
    "number expected, got string", "recv('x') on an empty channel")
  util.bad_arg(t, function() ch:send(1, {}) end, 2, "send",
    "number expected, got table", "send(1, {}) with room")
  ch:send(1)
  util.bad_arg(t, function() ch:send(2, "x") end, 2, "send",
    "number expected, got string", "send(2, 'x') on a full channel")
  util.bad_arg(t, function() ch:recv(true) end, 1, "recv",
    "number expected, got boolean", "recv(true) with a value ready")
  t.is(ch:len(), 1, "nothing was taken or added")
  t.is(queued(ch.recvq) + queued(ch.sendq), 0, "and no waiter is left")
end)

t.test("recv and send block inside the script's own coroutines too",
  function()
  local ch = chan_new()
  local gen = coroutine.wrap(function()
    for _ = 1, 3 do coroutine.yield(ch:recv()) end
  end)
  spawn(function()
    for i = 1, 3 do ch:send(i * 10) end
  end)
  local got = {}
  for i = 1, 3 do got[i] = gen() end
  t.is(table.concat(got, " "), "10 20 30",
    "a generator parked the task on recv and yielded each value")
  local out = chan_new()
  local co = coroutine.create(function() out:send("from co") end)
  spawn(function() coroutine.resume(co) end)
  t.is(out:recv(), "from co", "a send parked in a coroutine of another task")
end)

t.test("recv where Lua cannot yield raises and leaves no waiter",
  function()
  local ch = chan_new()
  local ok, err = pcall(function()
    table.sort({ 3, 2, 1 }, function(x, y)
      ch:recv()
      return x < y
    end)
  end)
  t.ok(not ok, "inside a table.sort comparator it raises")
  t.like(err, "cannot block here", "saying why")
  t.is(queued(ch.recvq), 0, "and leaves no waiter behind")
end)

t.test("a waiter left behind by an abandoned coroutine wakes nothing",
  function()
  -- the coroutine parks the task on recv, but it was resumed where Lua
  -- cannot yield: the park is undone and the coroutine abandoned, its
  -- node still queued. A later send must not wake the task's next wait.
  local ch = chan_new()
  local ok, err = pcall(function()
    table.sort({ 3, 2, 1 }, function(a, b)
      local co = coroutine.create(function() return ch:recv() end)
      local rok, e = coroutine.resume(co)
      if not rok then error(e, 0) end
      return a < b
    end)
  end)
  t.ok(not ok and err:find("cannot block here"), "the sort raised")
  local sent = chan_new(1)
  spawn(function()
    sent:send({ ch:send("lost?", 0.05) })
  end)
  local t0 = now()
  coronet.sleep(0.15)
  t.cmp_ok(now() - t0, ">=", 0.149, "the sleep was not cut short")
  local r = sent:recv()
  t.ok(r[1] == nil and r[2] == "timeout",
    "the send found no live receiver and timed out")
end)

t.test("no task is left over", function()
  settle(10)
  t.is(coronet.stats().tasks, 2, "only the main task and this test's")
end)

t.done()
