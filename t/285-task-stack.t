-- t/285-task-stack.t: a task parked in coronet's blocking calls keeps
-- LuaJIT's first coroutine stack (47 slots, 376 bytes): the parking paths
-- are shallow enough that no C function is called past the 20 slots
-- LuaJIT wants free above it (LUA_MINSTACK), which would double the stack
-- for good (+440 bytes a task). Each way of waiting is tried from the
-- task's (or handler's) own function, interpreted and JIT-compiled (after
-- enough tasks ran the path). The stack size is read from LuaJIT's
-- lua_State (GC64 layout); on a LuaJIT whose layout differs the tests
-- skip.
local t = require "lib.tap"
local util = require "lib.util"
local ffi = require "ffi"
local coronet = require "coronet"
local net = require "coronet.net"
local io_ = require "coronet.io"
local sched = require "coronet.c.sched"

local FIRST = 47 -- LJ_STACK_START + LJ_STACK_EXTRA slots
local RUNS = 200 -- tasks per case: the JIT compiles the path meanwhile

-- stack_slots(co) -> the size of co's stack in slots (lua_State's
-- stacksize, at byte 0x58 in the GC64 layout)
local function stack_slots(co)
  local addr = tonumber(tostring(co):match("0x%x+"))
  return ffi.cast("uint32_t *", ffi.cast("uintptr_t", addr))[22]
end

local layout_ok = (function()
  if not ffi.abi("gc64") then return false end
  local co = coroutine.create(function() end)
  return stack_slots(co) == FIRST
end)()

local base = coronet.stats()
local ch, quiet = coronet.chan(), coronet.chan()
local wg = coronet.waitgroup()
wg:add(1)
local waits = { -- the timers end by themselves, the others at the end
  { "coronet.sleep", function() coronet.sleep(1) end },
  { "ch:recv", function() ch:recv() end },
  { "ch:recv with a timeout", function() ch:recv(60) end },
  { "ch:send", function() quiet:send(1) end },
  { "select with a timeout", function()
    coronet.select { { recv = ch }, { timeout = 60 } }
  end },
  { "after(s):recv", function() coronet.after(1):recv() end },
  { "wg:wait", function() wg:wait() end },
}

for _, w in ipairs(waits) do
  t.test("a task parked in " .. w[1] .. " keeps its first stack", function()
    if not layout_ok then
      return t.pass("# SKIP not LuaJIT's GC64 lua_State layout")
    end
    local tasks = {}
    -- the first task runs with the JIT off (a trace recorded while it ran
    -- would use its stack); the others compile the path
    jit.off()
    tasks[1] = coronet.spawn(w[2])
    coronet.sleep(0.01)
    jit.on()
    for i = 2, RUNS do tasks[i] = coronet.spawn(w[2]) end
    coronet.sleep(0.05)
    local first, last = stack_slots(tasks[1]), stack_slots(tasks[RUNS])
    t.is(first, FIRST, w[1] .. ", interpreted: " .. FIRST .. " slots")
    t.is(last, FIRST, w[1] .. ", JIT-compiled: " .. FIRST .. " slots")
  end)
end

-- Handlers: each connection's handler waits as its first line says, and
-- tells its coroutine to the test through handlers.
local handlers = {}
local conn_waits = {
  read = function(c) c:read() end,
  read_line = function(c) c:read_line() end,
  lines = function(c) for _ in c:lines() do end end,
  copy = function(c) io_.copy(c, c) end,
}
local listener = assert(net.listen("127.0.0.1:0", function(c)
  local how = c:read_line()
  handlers[#handlers + 1] = coroutine.running()
  return conn_waits[how](c)
end))

for _, how in ipairs { "read", "read_line", "lines", "copy" } do
  t.test("a handler parked in conn:" .. how .. " keeps its first stack",
    function()
      if not layout_ok then
        return t.pass("# SKIP not LuaJIT's GC64 lua_State layout")
      end
      handlers = {}
      local conns = {}
      jit.off() -- as above
      for i = 1, RUNS do
        conns[i] = assert(net.dial(listener:addr()))
        conns[i]:write(how .. "\n")
        if i == 1 then
          util.wait_until(function() return #handlers == 1 end, 10)
          coronet.sleep(0.01)
          jit.on()
        end
      end
      t.ok(util.wait_until(function() return #handlers == RUNS end, 10),
        "every handler runs")
      coronet.sleep(0.05)
      t.is(stack_slots(handlers[1]), FIRST, how .. ", interpreted: "
        .. FIRST .. " slots")
      t.is(stack_slots(handlers[RUNS]), FIRST, how .. ", JIT-compiled: "
        .. FIRST .. " slots")
      for i = 1, RUNS do conns[i]:close() end
    end)
end

t.test("nothing is left", function()
  ch:close()
  for _ = 1, RUNS do quiet:recv() end
  wg:done()
  listener:close()
  coronet.sleep(1) -- the timers
  util.check_clean(t, base)
end)

t.done()
