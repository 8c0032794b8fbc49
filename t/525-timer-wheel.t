-- t/525-timer-wheel.t: the worker's timing wheel. Sleeps, deadlines and
-- Lua timers share one wheel of nodes embedded in their owners: they fire
-- in deadline order, stop and reset in bulk, leave nothing behind when
-- cancelled, and a burst due at once is spread over several loop turns.
local t = require "lib.tap"
local util = require "lib.util"
local coronet = require "coronet"
local net = require "coronet.net"

local spawn, chan, now, sleep = coronet.spawn, coronet.chan, coronet.now,
  coronet.sleep
local stats, format, random, sort = coronet.stats, string.format,
  math.random, table.sort
local time = require "coronet.time"

local function pct(list, p)
  return list[math.max(1, math.ceil(#list * p))]
end

t.test("100 000 tasks with random deadlines wake in deadline order",
  function()
  local n, span = 100000, 1.0
  local due, woke, order = {}, {}, {}
  local wg = coronet.waitgroup()
  -- deadlines start 2 s from now, once every task has started (starting
  -- them is one long queue: a deadline due meanwhile would wait behind it;
  -- on a busy machine some may still start too late: they are left out)
  local base = now() + 2
  wg:add(n)
  for i = 1, n do
    spawn(function()
      due[i] = base + random() * span
      if now() >= due[i] then due[i] = false end
      sleep(due[i] and due[i] - now() or 0)
      woke[i] = now()
      order[#order + 1] = i
      wg:done()
    end)
    if i % 10000 == 0 then coronet.yield() end -- within the task slice
  end
  t.ok(wg:wait(span + 60), "every task woke")
  t.is(#order, n, n .. " wakes")
  -- a deadline is the first loop millisecond at or after the due time, and
  -- the task reads the clock a little before it parks (the OS may stop the
  -- process in between on a busy machine): allow 20 ms; a real ordering
  -- bug shows as inversions across the whole span
  local inversions, early, late, latest = 0, 0, {}, -math.huge
  for k = 1, n do
    local i = order[k]
    if due[i] then
      if woke[i] < due[i] then early = early + 1 end
      if due[i] + 0.020 < latest then inversions = inversions + 1 end
      if due[i] > latest then latest = due[i] end
      late[#late + 1] = woke[i] - due[i]
    end
  end
  sort(late)
  t.cmp_ok(#late, ">", n * 0.9, "most tasks parked before their deadline")
  t.is(early, 0, "none woke early")
  t.is(inversions, 0, "they woke in the order of their deadlines")
  t.diag(format("  %d in time; lateness p50 %.2f ms, p99 %.2f ms, max %.2f ms",
    #late, pct(late, 0.5) * 1e3, pct(late, 0.99) * 1e3, late[#late] * 1e3))
  t.cmp_ok(pct(late, 0.99), "<", 0.25, "p99 lateness is small (loose bound)")
end, 240)

t.test("stopping and resetting timers in bulk", function()
  local n = 20000
  local timers, fired = {}, {}
  local p0, h0 = time.pending(), stats().deadlines
  for i = 1, n do timers[i] = coronet.timer(1 + (i % 100) / 1000) end
  t.is(time.pending() - p0, n, n .. " timers pending")
  coronet.yield() -- each phase within the task slice, even under ASan
  local stopped, reset = 0, 0
  for i = 1, n, 2 do
    if timers[i]:stop() then stopped = stopped + 1 end
  end
  coronet.yield()
  -- the reset ones fire first, then the rest, in order of deadline; their
  -- readers wait before the reset, so the reads come in firing order
  local wg = coronet.waitgroup()
  wg:add(n / 2)
  for i = 2, n, 2 do
    local tm = timers[i]
    spawn(function()
      tm:recv()
      fired[#fired + 1] = i
      wg:done()
    end)
  end
  sleep(0.02)
  for i = 2, n, 4 do
    if timers[i]:reset(0.2) then reset = reset + 1 end
  end
  t.is(stopped, n / 2, "half were stopped")
  t.is(reset, n / 4, "a quarter were reset")
  t.is(time.pending() - p0, n / 2, "the others stay pending")
  t.is(timers[1]:stop(), false, "a second stop finds nothing")
  t.ok(wg:wait(10), "every live timer fired")
  local first_rest
  for k = 1, #fired do
    if (fired[k] - 2) % 4 ~= 0 then
      first_rest = first_rest or k
    elseif first_rest then
      first_rest = -1 -- a reset one after one that was not
      break
    end
  end
  t.is(first_rest, n / 4 + 1, "the reset ones fired before all others")
  local stale = 0
  for i = 1, n, 2 do
    if timers[i]:recv(0) ~= nil then stale = stale + 1 end
  end
  t.is(stale, 0, "no stopped timer delivered")
  t.is(time.pending() - p0, 0, "none pending")
  t.is(stats().deadlines, h0, "the wheel is back to its size")
end, 60)

t.test("a read deadline cancelled by data leaves nothing behind", function()
  local l = assert(net.listen("127.0.0.1:0", function(c)
    c:write("x")
    c:read() -- until the client closes
  end))
  local c = assert(net.dial(l:addr(), { timeout = 5 }))
  c:set_timeout(30)
  local h = stats().deadlines
  t.is(c:read(), "x", "the read got the data")
  t.is(stats().deadlines, h, "its deadline left the wheel")
  local reader = util.spawn_wg(function() return c:read() end)
  sleep(0.01)
  t.is(stats().deadlines, h + 1, "a parked read has one deadline in the wheel")
  c:close()
  local data, err = reader()
  t.is(tostring(data) .. "/" .. tostring(err), "nil/closed",
    "closing ends the read")
  t.is(stats().deadlines, h, "and its deadline is gone")
  l:close()
end)

t.test("a million timers created and stopped leave nothing", function()
  local p0, h0 = time.pending(), stats().deadlines
  for i = 1, 1000000 do
    coronet.timer(10):stop()
    if i % 10000 == 0 then coronet.yield() end -- within the task slice
  end
  local tk = {}
  for i = 1, 1000 do tk[i] = coronet.ticker(5) end
  for i = 1, 1000 do tk[i]:stop() end
  t.is(time.pending(), p0, "none pending")
  t.is(stats().deadlines, h0, "the wheel is as it was")
  collectgarbage()
  collectgarbage()
  t.cmp_ok(collectgarbage("count"), "<", 64 * 1024, "memory was given back")
end, 120)

t.test("a burst of timers due at once is spread over loop turns", function()
  local n = 10000
  local timers = {}
  for i = 1, n do timers[i] = coronet.after(0.02) end
  local t0 = stats().turns
  local got = 0
  local ch = chan(n)
  for i = 1, n do
    local tm = timers[i]
    spawn(function()
      tm:recv()
      ch:send(true)
    end)
  end
  for _ = 1, n do
    ch:recv()
    got = got + 1
  end
  local turns = stats().turns - t0
  t.is(got, n, "all fired")
  t.cmp_ok(turns, ">=", n / 1024, "over at least n / batch loop turns")
end, 60)

t.test("after() is itself the channel: select and recv", function()
  local a = coronet.after(0.01)
  t.is(getmetatable(a), time.Timer, "a Timer")
  local v = a:recv()
  t.is(type(v), "number", "recv gets the time")
  local which = coronet.select {
    { recv = coronet.after(5), fn = function() return "late" end },
    { recv = coronet.after(0.01), fn = function() return "soon" end },
  }
  t.is(which, "soon", "select picks the one that fires")
end)

t.test("no task or timer is left over", function()
  util.no_leftovers(t)
  sleep(0.01)
  t.is(time.pending(), 1, "only the after(5) of the select test waits")
end)

t.done()
