-- bench/lua_costs.lua: what LuaJIT objects cost in this build, measured
-- (coronet --run bench/lua_costs.lua): a coroutine as a task gets one, a
-- hash entry keyed by a coroutine (the scheduler's registry of tasks), an
-- empty userdata (a connection object is one with its box), one table
-- node. For bench/conn-memory.sh.
local N = 20000
local keep = {}

local function measure(what, make)
  collectgarbage()
  collectgarbage()
  local before = collectgarbage("count")
  for i = 1, N do keep[i] = make(i) end
  collectgarbage()
  collectgarbage()
  print(string.format("%-44s %5.0f B", what,
    (collectgarbage("count") - before) * 1024 / N))
  keep = {}
end

local function noop() end
measure("coroutine (lua_State and its first stack)", function()
  return coroutine.create(noop)
end)
local cos = {}
for i = 1, N do cos[i] = coroutine.create(noop) end
local map = {}
measure("hash entry keyed by a coroutine", function(i)
  map[cos[i]] = true
  return nil
end)
measure("empty userdata", function() return newproxy(false) end)
measure("table with one hash field", function() return { x = 1 } end)
