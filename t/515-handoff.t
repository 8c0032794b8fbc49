-- t/515-handoff.t: same-turn handoff. A task woken by another task runs
-- in the same loop turn, in the order tasks were woken; a turn ends on its
-- time budget, so that a ping-pong pair cannot starve other tasks, timers
-- or the poller; a task that yields runs again only after a poll.
local t = require "lib.tap"
local util = require "lib.util"
local coronet = require "coronet"
local net = require "coronet.net"

local spawn, chan, now, sleep = coronet.spawn, coronet.chan, coronet.now,
  coronet.sleep
local stats, format = coronet.stats, string.format

-- pingpong starts two tasks that pass a value back and forth over
-- unbuffered channels until stop() is called; count() tells the passes.
local function pingpong()
  local a, b = chan(), chan()
  local passes, running = 0, true
  local wg = coronet.waitgroup()
  wg:add(2)
  spawn(function()
    while running do
      a:send(1)
      b:recv()
      passes = passes + 2
    end
    a:close()
    wg:done()
  end)
  spawn(function()
    while true do
      local _, ok = a:recv()
      if not ok then break end
      b:send(1)
    end
    wg:done()
  end)
  return function()
    running = false
    t.ok(wg:wait(5), "the ping-pong pair ended")
    return passes
  end, function() return passes end
end

t.test("a task woken by a channel send runs in the same loop turn", function()
  local ch, back = chan(), chan()
  spawn(function()
    for _ = 1, 1000 do back:send((ch:recv())) end
  end)
  sleep(0.01) -- the echo task waits on ch
  local t0 = stats().turns
  for i = 1, 1000 do
    ch:send(i)
    assert(back:recv() == i)
  end
  local turns = stats().turns - t0
  t.diag(format("  1000 round trips in %d loop turns", turns))
  t.cmp_ok(turns, "<", 100, "1000 round trips take far fewer turns")
end)

t.test("woken tasks run in the order they were woken", function()
  local chs, order, done = {}, {}, chan(3)
  for i = 1, 3 do
    chs[i] = chan()
    local ch = chs[i]
    spawn(function()
      ch:recv()
      order[#order + 1] = i
      done:send(true)
    end)
  end
  sleep(0.01)
  chs[2]:send(true) -- each send finds its receiver waiting
  chs[3]:send(true)
  chs[1]:send(true)
  for _ = 1, 3 do done:recv() end
  t.is(table.concat(order, " "), "2 3 1", "in wake order")
end)

t.test("a ping-pong pair does not starve a sleeping task", function()
  local stop, count = pingpong()
  local late, n = 0, 0
  local t0 = now()
  while now() - t0 < 0.3 do
    local due = now() + 0.01
    sleep(0.01)
    late = math.max(late, now() - due)
    n = n + 1
  end
  local passes = stop()
  t.diag(format("  %d sleeps, worst %.2f ms late, %d passes meanwhile", n,
    late * 1e3, passes))
  t.cmp_ok(count(), ">", 1000, "the pair ran meanwhile")
  t.cmp_ok(n, ">=", 10, "the sleeper woke again and again")
  t.cmp_ok(late, "<", 0.1, "never much late (generous bound)")
end)

t.test("a reader gets its bytes promptly while a pair ping-pongs", function()
  local got = chan(1)
  local l = assert(net.listen("127.0.0.1:0", function(c)
    c:set_timeout(5)
    local line = c:read_line()
    got:send({ line, now() })
  end))
  local c = assert(net.dial(l:addr(), { timeout = 5 }))
  sleep(0.02) -- the handler waits in read_line
  local stop, count = pingpong()
  sleep(0.05)
  local before = count()
  local sent = now()
  c:write("hello\n")
  local r = got:recv()
  local delay = r[2] - sent
  sleep(0.02)
  local passes = stop()
  t.is(r[1], "hello", "the line arrived")
  t.diag(format("  delivered in %.2f ms with %d passes around it", delay * 1e3,
    passes))
  t.cmp_ok(before, ">", 100, "the pair was running when the bytes came")
  t.cmp_ok(delay, "<", 0.05, "within a few ms (generous bound)")
  c:close()
  l:close()
end)

t.test("turns end on their time budget while a pair ping-pongs", function()
  local t0 = stats()
  local stop = pingpong()
  sleep(0.1)
  stop()
  local t1 = stats()
  t.cmp_ok(t1.long_turns - t0.long_turns, ">", 10,
    "many turns ended on their budget")
  t.cmp_ok(t1.turns - t0.turns, ">", 10, "the loop went on turning")
end)

t.test("a task that yields forever lets the poller and timers run",
  function()
  local running, yields = true, 0
  spawn(function()
    while running do
      coronet.yield()
      yields = yields + 1
    end
  end)
  local t0, turns0 = now(), stats().turns
  sleep(0.05)
  local slept = now() - t0
  local turns = stats().turns - turns0
  running = false
  sleep(0.01)
  t.cmp_ok(slept, "<", 0.15, "a sleep ends on time")
  t.cmp_ok(yields, ">", 10, "the yielding task ran meanwhile")
  t.cmp_ok(turns, ">=", yields - 2, "one yield per loop turn")
end)

t.test("a third task runs as often as each of a ping-pong pair", function()
  local stop, count = pingpong()
  local ch, back = chan(), chan()
  local rounds = 0
  spawn(function() -- a second pair, counted
    for _ = 1, 1e9 do
      local v, ok = ch:recv()
      if not ok then break end
      back:send(v)
    end
  end)
  local t0 = now()
  while now() - t0 < 0.1 do
    ch:send(1)
    back:recv()
    rounds = rounds + 1
  end
  ch:close()
  local passes = stop()
  t.diag(format("  %d rounds against %d passes", rounds, passes))
  t.cmp_ok(rounds * 2, ">", count() / 4, "the two pairs share the time")
end)

t.test("no task is left over", function()
  util.no_leftovers(t)
end)

t.done()
