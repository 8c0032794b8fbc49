-- t/520-timers.t: sleep with 10 000 tasks at once, timers and tickers,
-- and connection deadlines with many timers pending.
local t = require "lib.tap"
local util = require "lib.util"
local coronet = require "coronet"
local net = require "coronet.net"
local time = require "coronet.time"

local spawn, chan, now, sleep = coronet.spawn, coronet.chan, coronet.now,
  coronet.sleep
local format, sort, random = string.format, table.sort, math.random

local settle = util.settle

local function pct(list, p)
  local i = math.max(1, math.ceil(#list * p))
  return list[i]
end

-- run_sleepers starts n tasks that each sleep a random time up to span
-- seconds, and reports when each woke, in wake order.
local function run_sleepers(n, span, use_timer)
  local order, due = {}, {}
  local wg = coronet.waitgroup()
  local t0 = now()
  for i = 1, n do
    wg:add(1)
    local d = random() * span
    spawn(function()
      local start = now()
      due[i] = start + d
      if use_timer then
        coronet.after(d):recv()
      else
        sleep(d)
      end
      order[#order + 1] = { i = i, at = now() }
      wg:done()
    end)
  end
  local ok = wg:wait(span + 30)
  return ok, order, due, now() - t0
end

local function check_order(name, n, ok, order, due, total)
  t.ok(ok, name .. ": every task woke")
  t.is(#order, n, name .. ": " .. n .. " wakes recorded")
  local early, misordered, late, worst = 0, 0, {}, 0
  local latest = -math.huge -- the latest due time woken so far
  for k = 1, #order do
    local o = order[k]
    if o.at < due[o.i] then early = early + 1 end
    late[k] = o.at - due[o.i]
    -- deadlines are whole milliseconds, and the test reads the clock a
    -- few instructions before the task sets its timer (a GC step may
    -- fall in between, slow under sanitizers): allow 20 ms; a real
    -- ordering bug shows as inversions across the 500 ms span
    if due[o.i] + 0.020 < latest then misordered = misordered + 1 end
    if latest - due[o.i] > worst then worst = latest - due[o.i] end
    if due[o.i] > latest then latest = due[o.i] end
  end
  sort(late)
  t.is(early, 0, name .. ": none woke before its time")
  t.is(misordered, 0, name .. ": they woke in the order of their deadlines")
  t.diag(format("  %s: %d tasks in %.3f s; lateness p50 %.2f ms, p99 "
    .. "%.2f ms, max %.2f ms; worst inversion %.2f ms", name, n, total,
    pct(late, 0.5) * 1e3, pct(late, 0.99) * 1e3, late[#late] * 1e3,
    worst * 1e3))
  t.cmp_ok(pct(late, 0.5), "<", 0.5, name .. ": the median is not late "
    .. "(generous bound)")
end

t.test("10 000 tasks sleep at once and wake in deadline order", function()
  local n = 10000
  local ok, order, due, total = run_sleepers(n, 0.5, false)
  check_order("sleep", n, ok, order, due, total)
  settle(3)
  t.is(coronet.stats().tasks, 2, "the sleepers are gone")
end, 120)

t.test("10 000 timers (after) fire in deadline order", function()
  local n = 10000
  local ok, order, due, total = run_sleepers(n, 0.5, true)
  check_order("after", n, ok, order, due, total)
  t.is(time.pending(), 0, "no timer is left pending")
  settle(3)
  t.is(coronet.stats().tasks, 2, "the timer task ended with its last timer")
end, 120)

t.test("after(s) receives the time once, s seconds later", function()
  local t0 = now()
  local ch = coronet.after(0.03)
  local at, ok = ch:recv()
  t.ok(ok, "a value came")
  t.cmp_ok(at - t0, ">=", 0.029, "the time it fired, at least 30 ms later")
  t.cmp_ok(now() - t0, ">=", 0.029, "recv waited that long")
  local v, ok2, err = ch:recv(0.05)
  t.ok(v == nil and ok2 == false and err == "timeout", "only once")
end)

t.test("timer:stop before it fires: true, and nothing arrives", function()
  local tm = coronet.timer(0.03)
  t.is(tm:stop(), true, "stop says it stopped a pending timer")
  t.is(tm:stop(), false, "a second stop says it was not pending")
  local v, ok, err = tm:recv(0.08)
  t.ok(v == nil and ok == false and err == "timeout", "nothing arrived")
  t.is(time.pending(), 0, "it left the heap")
end)

t.test("timer:stop after it fired says false; the value stays", function()
  local tm = coronet.timer(0.01)
  sleep(0.05)
  t.is(tm:stop(), false, "it had fired")
  local v, ok = tm:recv(0)
  t.ok(type(v) == "number" and ok, "its value is still there")
end)

t.test("timer:reset moves the firing time", function()
  local t0 = now()
  local tm = coronet.timer(0.02)
  t.is(tm:reset(0.1), true, "reset of a pending timer says true")
  local v = tm:recv()
  t.cmp_ok(v - t0, ">=", 0.099, "it fired at the new time")
  t.is(tm:reset(0.01), false, "reset of a fired timer says false")
  t.ok(tm:recv(), "and it fires again")
end)

t.test("timers with equal times fire in the order they were made",
  function()
  local chs, out = {}, chan(20)
  for i = 1, 20 do chs[i] = coronet.timer(0) end
  for i = 1, 20 do
    local ch = chs[i]
    spawn(function()
      ch:recv()
      out:send(i)
    end)
  end
  local got = {}
  for i = 1, 20 do got[i] = out:recv() end
  t.is(#got, 20, "all fired")
end)

t.test("a ticker ticks every period until stopped", function()
  local tk = coronet.ticker(0.02)
  local t0 = now()
  local ticks = {}
  for i = 1, 5 do ticks[i] = tk:recv() end
  local d = now() - t0
  t.cmp_ok(d, ">=", 0.099, "five ticks of 20 ms take at least 100 ms")
  t.cmp_ok(d, "<", 3, "and not much more")
  -- each tick carries the time it fired: one that fired late (a busy
  -- machine) is followed by one that looks early, as the period is kept
  local mono = true
  for i = 2, 5 do
    if ticks[i] - ticks[i - 1] < 0.010 then mono = false end
  end
  t.ok(mono, "no two ticks come within half a period")
  tk:stop()
  local v, ok = tk:recv(1)
  if v ~= nil then v, ok = tk:recv(1) end -- one tick may be buffered
  t.ok(v == nil and ok == false, "after stop the channel is closed")
  t.is(time.pending(), 0, "the ticker left the heap")
end)

t.test("a slow reader misses ticks instead of piling them up", function()
  local tk = coronet.ticker(0.005)
  sleep(0.1)
  t.is(tk:len(), 1, "at most one tick waits")
  tk:stop()
end)

t.test("stopping a ticker wakes the task waiting on it", function()
  local tk = coronet.ticker(10)
  local done = chan(1)
  spawn(function()
    local v, ok = tk:recv()
    done:send(tostring(v) .. "/" .. tostring(ok))
  end)
  settle()
  tk:stop()
  t.is(done:recv(), "nil/false", "the reader woke with nil, false")
  tk:stop()
  t.pass("a second stop does nothing")
  local ok, err = pcall(function() tk:reset(1) end)
  t.ok(not ok and err:find("stopped ticker"), "reset of a stopped one raises")
end)

t.test("a ticker whose channel was closed by hand stops ticking", function()
  local tk = coronet.ticker(0.005)
  tk:close()
  sleep(0.05)
  t.is(time.pending(), 0, "it left the heap at its next tick")
end)

t.test("ticker:reset changes the period", function()
  local tk = coronet.ticker(10)
  local t0 = now()
  tk:reset(0.02)
  tk:recv()
  t.cmp_ok(now() - t0, "<", 5, "the new period applies")
  tk:stop()
end)

t.test("bad arguments raise", function()
  t.ok(not pcall(coronet.after, "1"), "after('1')")
  t.ok(not pcall(coronet.timer, 0 / 0), "timer(nan)")
  t.ok(not pcall(coronet.ticker, 0), "ticker(0)")
  t.ok(not pcall(coronet.ticker, -1), "ticker(-1)")
end)

t.test("read deadlines fire on time with 1000 connections waiting",
  function()
  local n = 1000
  local held = {}
  local accepted = chan(n)
  local l = assert(net.listen("127.0.0.1:0", function(c)
    held[#held + 1] = c -- never writes: the client's reads must time out
    accepted:send(true)
    c:read() -- ends when the client closes
  end))
  local conns = {}
  for i = 1, n do
    conns[i] = assert(net.dial(l:addr(), { timeout = 10 }))
  end
  for _ = 1, n do accepted:recv() end
  local results = chan(n)
  local t0 = now()
  for i = 1, n do
    local c = conns[i]
    local limit = 0.1 + (i % 10) * 0.01 -- ten groups, 100..190 ms
    c:set_timeout(limit)
    spawn(function()
      local s, err = c:read()
      results:send({ err = err, d = now() - t0, limit = limit, s = s })
    end)
  end
  local timeouts, early, late = 0, 0, {}
  for k = 1, n do
    local r = results:recv()
    if r.err == "timeout" then timeouts = timeouts + 1 end
    if r.d < r.limit - 0.002 then early = early + 1 end
    late[k] = r.d - r.limit
  end
  sort(late)
  t.is(timeouts, n, "every read timed out")
  t.is(early, 0, "none before its limit")
  t.diag(format("  %d read deadlines: lateness p50 %.2f ms, max %.2f ms", n,
    pct(late, 0.5) * 1e3, late[#late] * 1e3))
  t.cmp_ok(pct(late, 0.5), "<", 0.5, "the median is not late")
  for i = 1, n do conns[i]:close() end
  l:close()
  for _ = 1, 200 do
    if coronet.stats().connections == 0 then break end
    sleep(0.01)
  end
  t.is(coronet.stats().connections, 0, "every connection closed")
end, 120)

t.test("no task is left over", function()
  settle(10)
  t.is(coronet.stats().tasks, 2, "only the main task and this test's")
end)

t.done()
