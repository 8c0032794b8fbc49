-- t/000-sanity.t: the host runs a test script, and the task basics work:
-- coronet.spawn, sleep, now, yield, alive, stats; blocking where Lua
-- cannot yield gives an error naming the call.
local t = require "lib.tap"
local coronet = require "coronet"

t.test("the host runs this script as a task and loads coronet", function()
  t.is(type(coronet.spawn), "function", "coronet.spawn is a function")
  t.is(type(coronet._VERSION), "string", "coronet has a version")
  t.like(arg[0], "000%-sanity%.t$", "arg[0] names the script")
end)

t.test("now() is a float in seconds that never goes back", function()
  local a = coronet.now()
  local b = coronet.now()
  t.is(type(a), "number", "now() is a number")
  t.cmp_ok(b, ">=", a, "a second call is not earlier")
  t.cmp_ok(a, ">", 0, "it is positive")
end)

t.test("sleep parks the task for about that long", function()
  local a = coronet.now()
  coronet.sleep(0.05)
  local d = coronet.now() - a
  t.cmp_ok(d, ">=", 0.049, "sleep(0.05) lasts at least 50 ms")
  t.cmp_ok(d, "<", 5, "and ends (generous bound)")
end)

t.test("sleep(0) and sleep of a negative time return at once", function()
  local a = coronet.now()
  coronet.sleep(0)
  coronet.sleep(-1)
  t.cmp_ok(coronet.now() - a, "<", 1, "both returned")
end)

t.test("sleep with a non-number raises an error naming sleep", function()
  local ok, err = pcall(coronet.sleep, "soon")
  t.ok(not ok, "it raises")
  t.like(err, "bad argument #1 to 'sleep'", "the message names sleep")
end)

t.test("spawn runs a task with its arguments, from the next turn", function()
  local got
  local task = coronet.spawn(function(a, b) got = { a, b } end, "x", 42)
  t.is(got, nil, "the task has not run yet when spawn returns")
  t.ok(coronet.alive(task), "the spawned task is alive")
  coronet.sleep(0.01)
  t.ok(got and got[1] == "x" and got[2] == 42, "it got its arguments")
  t.ok(not coronet.alive(task), "and it ended")
end)

t.test("tasks interleave in the order their sleeps end", function()
  local order = {}
  for i, d in ipairs { 0.03, 0.01, 0.02 } do
    coronet.spawn(function()
      coronet.sleep(d)
      order[#order + 1] = i
    end)
  end
  local deadline = coronet.now() + 5
  while #order < 3 and coronet.now() < deadline do coronet.sleep(0.005) end
  t.is(table.concat(order, ","), "2,3,1", "shortest sleep first")
end)

t.test("yield lets the other ready tasks run, then carries on", function()
  local steps = {}
  coronet.spawn(function()
    for i = 1, 3 do
      steps[#steps + 1] = "b" .. i
      coronet.yield()
    end
  end)
  for i = 1, 3 do
    coronet.yield()
    steps[#steps + 1] = "a" .. i
  end
  coronet.yield()
  local seq = table.concat(steps, " ")
  t.is(#steps, 6, "both ran three steps: " .. seq)
  local alternate = true
  for i = 2, #steps do
    if steps[i]:sub(1, 1) == steps[i - 1]:sub(1, 1) then alternate = false end
  end
  t.ok(alternate, "one step each in turn: " .. seq)
end)

t.test("many tasks run and end, leaving the task count as it was", function()
  local before = coronet.stats().tasks
  local done = 0
  for _ = 1, 2000 do
    coronet.spawn(function() coronet.sleep(0.001); done = done + 1 end)
  end
  local deadline = coronet.now() + 10
  while done < 2000 and coronet.now() < deadline do coronet.sleep(0.005) end
  t.is(done, 2000, "2000 tasks ran")
  t.is(coronet.stats().tasks, before, "the task count is back")
end)

t.test("stats() reports tasks, connections and blocks", function()
  local s = coronet.stats()
  for _, k in ipairs { "tasks", "connections", "blocks", "free_blocks",
    "block_size" } do
    t.is(type(s[k]), "number", "stats()." .. k .. " is a number")
  end
  t.is(s.block_size, 16384, "blocks are 16 KiB")
  t.cmp_ok(s.tasks, ">=", 2, "this test and the main chunk are tasks")
end)

t.test("blocking in a table.sort comparator names the call", function()
  local ok, err = pcall(table.sort, { 3, 1, 2 }, function(a, b)
    coronet.sleep(0.001)
    return a < b
  end)
  t.ok(not ok, "it raises")
  t.like(err, "sleep", "the error names sleep")
  t.like(err, "cannot block here", "and says why")
  t.ok(not tostring(err):find("attempt to yield across"),
    "not the bare yield error")
end)

t.test("blocking in a string.gsub callback names the call", function()
  local ok, err = pcall(string.gsub, "ab", ".", function(ch)
    coronet.sleep(0.001)
    return ch
  end)
  t.ok(not ok, "it raises")
  t.like(err, "^[^\n]*sleep: cannot block here", "the error names sleep")
end)

t.test("blocking inside a coroutine of one's own parks the task", function()
  local co = coroutine.create(function(x)
    coronet.sleep(0.01)
    local y = coroutine.yield(x + 1)
    coronet.sleep(0.01)
    return y * 2
  end)
  local t0 = coronet.now()
  local ok, v = coroutine.resume(co, 1)
  t.ok(ok, "the resume succeeded")
  t.is(v, 2, "the coroutine's own yield came back to its resumer")
  ok, v = coroutine.resume(co, 21)
  t.is(v, 42, "the second resume returned its result")
  t.is(coroutine.status(co), "dead", "and it ended")
  t.cmp_ok(coronet.now() - t0, ">=", 0.019, "both sleeps happened")
end)

t.test("the task still works after a refused block", function()
  coronet.sleep(0.001)
  t.pass("sleep works again")
end)

t.done()
