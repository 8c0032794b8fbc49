-- t/505-sched-stats.t: what the scheduler tells about itself: per task its
-- kind, state, what its park waits for and since when; per worker the
-- resumes, turns, parks by kind and the loop lag histogram.
local t = require "lib.tap"
local util = require "lib.util"
local coronet = require "coronet"
local net = require "coronet.net"
local fs = require "coronet.fs"
local process = require "coronet.process"
local sched = require "coronet.c.sched"

local spawn, chan, now, sleep = coronet.spawn, coronet.chan, coronet.now,
  coronet.sleep
local stats = coronet.stats

local KINDS = { "other", "read", "write", "sleep", "channel", "bus", "dial",
  "file", "process" }

local function sum(list)
  local s = 0
  for i = 1, #list do s = s + list[i] end
  return s
end

-- find returns the entry of tasks() that satisfies pred.
local function find(pred)
  for _, x in ipairs(sched.tasks()) do
    if pred(x) then return x end
  end
end

t.test("stats() counts resumes, turns, parks by kind and the lag", function()
  local s = stats()
  for _, k in ipairs { "resumes", "turns", "long_turns", "runq", "timers",
    "deadlines" } do
    t.is(type(s[k]), "number", "stats()." .. k .. " is a number")
  end
  for _, k in ipairs(KINDS) do
    t.is(type(s.parks[k]), "number", "parks." .. k .. " is a number")
  end
  t.is(#s.lag, 24, "the lag histogram has 24 buckets")
  t.is(sum(s.lag), s.resumes, "every resume is in the histogram")
end)

t.test("each kind of wait counts as its kind", function()
  local function parks(k) return stats().parks[k] end
  local before = {}
  for _, k in ipairs(KINDS) do before[k] = parks(k) end
  sleep(0.001)
  local ch = chan()
  spawn(function() ch:send(1) end)
  ch:recv()
  local l = assert(net.listen("127.0.0.1:0", function(c)
    sleep(0.01)
    c:write("x")
  end))
  local c = assert(net.dial(l:addr(), { timeout = 5 }))
  c:read()
  c:close()
  l:close()
  local path = util.tmpfile("hello")
  assert(fs.read_file(path))
  local p = assert(process.spawn { "true" })
  p:wait()
  local wg = coronet.waitgroup()
  wg:add(1)
  spawn(function() wg:done() end)
  wg:wait()
  for _, k in ipairs { "sleep", "channel", "read", "dial", "file", "process",
    "other" } do
    t.cmp_ok(parks(k) - before[k], ">", 0, "a " .. k .. " park counts")
  end
  util.cleanup()
end)

t.test("tasks() lists kind, state, wait and since", function()
  local ch = chan()
  local t0 = now()
  spawn(function() ch:recv() end)
  spawn(function() sleep(5) end)
  sleep(0.01)
  local me = find(function(x) return x.state == "running" end)
  t.ok(me and me.kind == "spawned", "this test's task runs, spawned")
  local main = find(function(x) return x.kind == "main" end)
  t.ok(main and main.state == "parked", "the main chunk waits for the test")
  local recv = find(function(x) return x.wait == "channel"
    and x.state == "parked" end)
  t.ok(recv, "the receiver is parked on a channel")
  -- the scheduler reads the clock every few resumes: since may be a
  -- little early
  t.ok(recv and recv.since >= t0 - 0.01 and recv.since <= now(),
    "since when it waits")
  t.ok(recv and recv.deadline == nil, "without a deadline")
  local sleeper = find(function(x) return x.wait == "sleep" end)
  t.ok(sleeper and sleeper.deadline, "the sleeper has a deadline")
  t.ok(sleeper and math.abs(sleeper.deadline - (t0 + 5)) < 0.5,
    "about 5 s from its start")
  ch:send(1)
end)

t.test("a connection's handler is a task of kind handler", function()
  local ready = chan(1)
  local l = assert(net.listen("127.0.0.1:0", function(c)
    ready:send(true)
    c:read()
  end))
  local c = assert(net.dial(l:addr(), { timeout = 5 }))
  ready:recv()
  sleep(0.01)
  local h = find(function(x) return x.kind == "handler" end)
  t.ok(h, "there is a handler task")
  t.ok(h and h.state == "parked" and h.wait == "read", "parked in a read")
  c:close()
  l:close()
end)

t.test("woken tasks are counted in the lag histogram", function()
  local s0 = stats()
  local ch = chan()
  spawn(function()
    for i = 1, 100 do ch:send(i) end
  end)
  for _ = 1, 100 do ch:recv() end
  local s1 = stats()
  t.cmp_ok(s1.resumes - s0.resumes, ">=", 100, "the tasks were resumed")
  t.is(sum(s1.lag) - sum(s0.lag), s1.resumes - s0.resumes,
    "each resume has its lag counted")
end)

t.test("no task is left over", function()
  sleep(5.1) -- the sleeper of the tasks() test
  util.no_leftovers(t)
end, 20)

t.done()
