-- t/286-task-index.t: the scheduler finds a task by its coroutine (wake,
-- alive, tag) through a table of its own (host/cn_sched.c: open addressing
-- with deletions that move entries back); these tests churn it.
local t = require "lib.tap"
local util = require "lib.util"
local coronet = require "coronet"
local sched = require "coronet.c.sched"

local base = coronet.stats()
local newcomers = {}

-- parked(n) starts n tasks that park until woken, and returns them.
local function parked(n)
  local cos = {}
  for i = 1, n do
    cos[i] = coronet.spawn(function()
      sched.park()
      coroutine.yield()
    end)
  end
  coronet.sleep(0.01)
  return cos
end

t.test("every one of 5000 parked tasks is found by its coroutine", function()
  local cos = parked(5000)
  local found = 0
  for i = 1, #cos do
    if sched.alive(cos[i]) and sched.tag(cos[i], 9000 + i) == 9000 + i then
      found = found + 1
    end
  end
  t.is(found, #cos, "all found")
  for i = 1, #cos do sched.wake(cos[i]) end
  coronet.sleep(0.01)
  local gone = 0
  for i = 1, #cos do
    if not sched.alive(cos[i]) then gone = gone + 1 end
  end
  t.is(gone, #cos, "woken, they ended, and none is found any more")
end)

t.test("lookups stay right while tasks end in random order", function()
  local cos = parked(4000)
  local live, rounds = {}, 0
  for i = 1, #cos do live[i] = true end
  math.randomseed(286)
  for k = 1, 6 do
    for i = 1, #cos do -- end about a third of those left
      if live[i] and math.random(3) == 1 then
        sched.wake(cos[i])
        live[i] = false
      end
    end
    coronet.sleep(0.01)
    local wrong = 0
    for i = 1, #cos do
      if sched.alive(cos[i]) ~= live[i] then wrong = wrong + 1 end
      if live[i] and not sched.tag(cos[i], i % 7 + 1) then
        wrong = wrong + 1
      end
    end
    if wrong == 0 then rounds = rounds + 1 end
    for _, co in ipairs(parked(300)) do -- they take freed records
      newcomers[#newcomers + 1] = co
    end
  end
  t.is(rounds, 6, "alive() and tag() right after each of 6 rounds")
  local tagged = 0
  for i = 1, #cos do
    if live[i] and sched.tag(cos[i]) == i % 7 + 1 then
      tagged = tagged + 1
    end
    if live[i] then sched.wake(cos[i]) end
  end
  local left = 0
  for i = 1, #cos do if live[i] then left = left + 1 end end
  t.is(tagged, left, "each live task kept its own tag")
end)

t.test("nothing is left", function()
  for _, co in ipairs(newcomers) do sched.wake(co) end
  util.check_clean(t, base)
end)

t.done()
