-- coronet.sync: wait groups, as Go's sync.WaitGroup, for tasks.
local sched = require "coronet.c.sched"
local setmetatable, type, error, tostring = setmetatable, type, error,
  tostring
local table_remove = table.remove
local park, unpark, wake = sched.park, sched.unpark, sched.wake_park
local isyieldable = coroutine.isyieldable
local coronet = require "coronet"
local wait, argcheck = coronet.wait, coronet.argcheck

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
      if w.co then wake(w.co, w.tok) end -- co is nil once it timed out
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

-- wg:wait([timeout]) -> true | nil, "timeout"
-- Parks until the counter is zero (at once if it is), or timeout seconds.
function WaitGroup:wait(timeout)
  if timeout ~= nil and type(timeout) ~= "number" then
    argcheck(timeout, "number?", 1, "wait")
  end
  if self.n == 0 then return true end
  if timeout and timeout <= 0 then return nil, "timeout" end
  local _, tok, co, own = park(timeout)
  if not isyieldable() then
    unpark()
    error("waitgroup:wait: cannot block here: Lua cannot yield across a C "
      .. "call", 2)
  end
  local w = { co = co, tok = tok }
  local ws = self.waiters
  ws[#ws + 1] = w
  if wait("waitgroup:wait", own) then return true end
  w.co = nil -- add() skips it if it already took the list
  ws = self.waiters
  for i = #ws, 1, -1 do
    if ws[i] == w then
      table_remove(ws, i)
      break
    end
  end
  return nil, "timeout"
end

return _M
