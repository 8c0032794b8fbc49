-- coronet.sync: wait groups, as Go's sync.WaitGroup, for tasks.
local sched = require "coronet.c.sched"
local setmetatable, type, error, tostring = setmetatable, type, error,
  tostring
local table_remove = table.remove
local park, wake = sched.park, sched.wake_node
local isyieldable, co_yield = coroutine.isyieldable, coroutine.yield
local coronet = require "coronet"
local PARK, cannot_block, argcheck = coronet.PARK, coronet.cannot_block,
  coronet.argcheck

local _M = { _VERSION = "0.1.0" }

local WaitGroup = {}
WaitGroup.__index = WaitGroup
_M.WaitGroup = WaitGroup

-- waitgroup() -> wg: a counter of things to wait for; wg:wait() parks
-- until it is back at zero.
function _M.waitgroup()
  return setmetatable({ n = 0, waiters = {} }, WaitGroup)
end

-- wg:add([delta]) adds delta (default 1) to the counter; at zero every
-- waiting task wakes. A negative counter raises.
function WaitGroup:add(delta)
  delta = delta or 1
  if type(delta) ~= "number" then
    error("bad argument #1 to 'add' (number expected, got " .. type(delta)
      .. ")", 2)
  end
  local n = self.n + delta
  if n < 0 then
    error("waitgroup: negative counter (" .. tostring(n) .. ")", 2)
  end
  self.n = n
  if n == 0 then
    local ws = self.waiters
    self.waiters = {}
    for i = 1, #ws do
      local w = ws[i]
      if w[1] then wake(w) end -- w[1] is false once it timed out
    end
  end
end

-- wg:done() is wg:add(-1).
function WaitGroup:done()
  local n = self.n - 1
  if n < 0 then error("waitgroup: done called more often than add", 2) end
  self:add(-1)
end

-- wg:count() -> the counter
function WaitGroup:count() return self.n end

-- wait_for parks the task until wg's counter is zero, or timeout
-- seconds; a tail call from wait (no frame of its own while it waits).
-- Its waiter is a node {task, token} (see sched.wake_node).
local function wait_for(wg, timeout)
  local _, tok, co = park(timeout)
  if not isyieldable() then cannot_block("waitgroup:wait", 3) end
  local w = { co, tok }
  local ws = wg.waiters
  ws[#ws + 1] = w
  if co_yield(PARK) then return true end
  w[1] = false -- add() skips it if it already took the list
  ws = wg.waiters
  for i = #ws, 1, -1 do
    if ws[i] == w then
      table_remove(ws, i)
      break
    end
  end
  return nil, "timeout"
end

-- wg:wait([timeout]) -> true | nil, "timeout"
-- Parks until the counter is zero (at once if it is), or timeout seconds.
function WaitGroup:wait(timeout)
  if timeout ~= nil and type(timeout) ~= "number" then
    argcheck(timeout, "number?", 1, "wait")
  end
  if self.n == 0 then return true end
  if timeout and timeout <= 0 then return nil, "timeout" end
  return wait_for(self, timeout)
end

return _M
