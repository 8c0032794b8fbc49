-- coronet.chan: Go's channels and select for tasks, in plain Lua over the
-- scheduler's park and wake (coronet.c.sched).
--
-- A channel holds up to cap values in a ring buffer; tasks that cannot go
-- on wait in FIFO queues of waiter nodes, one queue for receivers and one
-- for senders. Whoever makes progress hands the value over itself and
-- wakes the waiter: sched.wake_park succeeds only while that task is
-- still in the park the node was made for, which is what makes a handover
-- final. A waiter woken by its timeout (or by another case of a select)
-- may still sit in a queue until it runs; the wake fails for it, and the
-- one who found it drops it and tries the next.
local sched = require "coronet.c.sched"
local setmetatable, type, error, tostring = setmetatable, type, error, tostring
local random = math.random
local isyieldable = coroutine.isyieldable
local park, wake = sched.park, sched.wake_node
local CHANNEL = sched.waits.channel

-- coronet (the init module) requires this one while it loads, after
-- making itself known; PARK and cannot_block are defined by then.
local coronet = require "coronet"
local PARK, co_yield, cannot_block = coronet.PARK, coroutine.yield,
  coronet.cannot_block
local argcheck = coronet.argcheck

-- A task waits with few frames on its stack (see coronet.wait): the
-- waiting halves below are tail calls, and park and yield happen in them.

local _M = { _VERSION = "0.1.0" }

local Chan = {}
Chan.__index = Chan
_M.Chan = Chan

local CLOSED = {} -- what a sender wakes with, and what a receiver's node
                  -- holds, when the channel closed

-- -- Wait queues (doubly linked, so a timed-out waiter leaves in O(1)) --

-- A node is an array (one allocation): the waiting task's handle and park
-- token (first: sched.wake_node wakes it), its queue (false once
-- unlinked), the nodes before and after it, the value a sender offers,
-- its select case and whether that case sends.
local CO, TOK, Q, PREV, NEXT, VAL, CASE, SEND = 1, 2, 3, 4, 5, 6, 7, 8

-- push queues a new waiter node at the tail of q and returns it.
local function push(q, co, tok, val, case, send)
  local tail = q.tail
  local n = { co, tok, q, tail or false, false, val, case or false,
    send or false }
  if tail then tail[NEXT] = n else q.head = n end
  q.tail = n
  return n
end

local function unlink(n)
  local q = n[Q]
  if not q then return end
  local prev, nxt = n[PREV], n[NEXT]
  if prev then prev[NEXT] = nxt else q.head = nxt or nil end
  if nxt then nxt[PREV] = prev else q.tail = prev or nil end
  n[Q] = false
end

-- queued(q) -> the count of nodes waiting in q (ch.recvq or ch.sendq).
function _M.queued(q)
  local k, n = 0, q.head
  while n do k, n = k + 1, n[NEXT] end
  return k
end

-- -- The buffer ---------------------------------------------------------

local function put(ch, v)
  local i = ch.head + ch.count
  if i > ch.size then i = i - ch.size end
  ch.buf[i] = v
  ch.count = ch.count + 1
end

local function take(ch)
  local i, buf = ch.head, ch.buf
  local v = buf[i]
  buf[i] = nil
  ch.head = i == ch.size and 1 or i + 1
  ch.count = ch.count - 1
  return v
end

-- -- Non-blocking halves --------------------------------------------------

-- try_recv -> true, v, ok when a value (or the end of a closed channel)
-- is there; false when the caller would have to wait.
local function try_recv(ch)
  local sq = ch.sendq
  if ch.count > 0 then
    local v = take(ch)
    local s = sq.head
    while s do -- the buffer has room again: a waiting sender's value
      unlink(s)
      if wake(s) then
        put(ch, s[VAL])
        break
      end
      s = sq.head
    end
    return true, v, true
  end
  local s = sq.head
  while s do -- unbuffered: take straight from a waiting sender
    unlink(s)
    if wake(s) then return true, s[VAL], true end
    s = sq.head
  end
  if ch.closed then return true, nil, false end
  return false
end

-- offer(ch, v) -> bool: sends v if that needs no wait, and never raises
-- (false on a closed channel). For timers and tickers.
function _M.offer(ch, v)
  if ch.closed then return false end
  return Chan.send(ch, v, 0) == true
end

-- -- Channels -------------------------------------------------------------

-- new([capacity]) -> channel holding up to capacity values (default 0:
-- unbuffered, a send completes when a receiver has taken the value).
function _M.new(capacity, mt)
  capacity = capacity or 0
  if type(capacity) ~= "number" or capacity < 0 or capacity % 1 ~= 0 then
    error("bad argument #1 to 'chan' (non-negative integer expected, got "
      .. tostring(capacity) .. ")", 2)
  end
  return setmetatable({
    buf = {}, head = 1, count = 0, capacity = capacity,
    size = capacity > 0 and capacity or 1,
    -- closed: set (true) by close; left out here so that the table has
    -- room for one more field (a timer's node) without growing
    recvq = {}, sendq = {},
  }, mt or Chan)
end

-- is_chan(x) -> bool
local function is_chan(x)
  return type(x) == "table" and x.recvq ~= nil and x.sendq ~= nil
end
_M.is_chan = is_chan

-- send_wait parks the sender (a tail call from send, which checked).
local function send_wait(ch, v, timeout)
  local _, tok, co = park(timeout, CHANNEL)
  if not isyieldable() then cannot_block("chan:send", 3) end
  local n = push(ch.sendq, co, tok, v)
  local woke, _, closed = co_yield(PARK)
  if not woke then
    unlink(n)
    return nil, "timeout"
  end
  if closed == CLOSED then error("send on closed channel", 2) end
  return true
end

-- ch:send(v [, timeout]) -> true | nil, "timeout"
-- Parks while the buffer is full (unbuffered: until a receiver takes v).
-- v may be nil. Sending on a closed channel, or one closed while the
-- sender waits, raises "send on closed channel".
function Chan:send(v, timeout)
  if timeout ~= nil and type(timeout) ~= "number" then
    argcheck(timeout, "number?", 2, "send")
  end
  if self.closed then error("send on closed channel", 2) end
  local r = self.recvq.head
  while r do
    unlink(r)
    r[VAL] = v
    if wake(r) then return true end
    r = self.recvq.head
  end
  if self.count < self.capacity then
    put(self, v)
    return true
  end
  if timeout and timeout <= 0 then return nil, "timeout" end
  return send_wait(self, v, timeout)
end

-- recv_wait parks the receiver (a tail call from recv, which checked).
local function recv_wait(ch, timeout)
  local _, tok, co = park(timeout, CHANNEL)
  if not isyieldable() then cannot_block("chan:recv", 3) end
  local n = push(ch.recvq, co, tok)
  if not co_yield(PARK) then
    unlink(n)
    return nil, false, "timeout"
  end
  local v = n[VAL]
  if v == CLOSED then return nil, false end
  return v, true
end

-- ch:recv([timeout]) -> v, true | nil, false | nil, false, "timeout"
-- Parks until a value comes; ok is false once the channel is closed and
-- drained. With a timeout (seconds; 0 polls) it gives up after that long
-- with a third value, "timeout".
function Chan:recv(timeout)
  if timeout ~= nil and type(timeout) ~= "number" then
    argcheck(timeout, "number?", 1, "recv")
  end
  local got, v, ok = try_recv(self)
  if got then return v, ok end
  if timeout and timeout <= 0 then return nil, false, "timeout" end
  return recv_wait(self, timeout)
end

-- ch:close(): no more sends. Receivers get what is buffered, then nil,
-- false; waiting receivers wake with nil, false, waiting senders raise.
-- Closing a closed channel raises.
function Chan:close()
  if self.closed then error("close of closed channel", 2) end
  self.closed = true
  local rq, sq = self.recvq, self.sendq
  local n = rq.head
  while n do
    unlink(n)
    n[VAL] = CLOSED
    wake(n)
    n = rq.head
  end
  n = sq.head
  while n do
    unlink(n)
    wake(n, CLOSED)
    n = sq.head
  end
end

-- ch:len() -> number of buffered values
function Chan:len() return self.count end

-- ch:cap() -> capacity
function Chan:cap() return self.capacity end

-- ch:is_closed() -> bool
function Chan:is_closed() return self.closed == true end

function Chan:__tostring()
  return "coronet.chan (" .. self.count .. "/" .. self.capacity
    .. (self.closed and ", closed)" or ")")
end

-- -- select -----------------------------------------------------------------

local order = {} -- poll order scratch; select never yields while using it

local function check_cases(cases)
  if type(cases) ~= "table" then
    error("bad argument #1 to 'select' (table expected, got "
      .. type(cases) .. ")", 3)
  end
  local n = #cases
  for i = 1, n do
    local c = cases[i]
    if type(c) ~= "table" then
      error("select: case " .. i .. " is a " .. type(c)
        .. ", expected a table", 3)
    end
    local ch = c.recv
    if ch == nil then ch = c.send end
    if ch ~= nil then
      if ch ~= false and not is_chan(ch) then
        error("select: case " .. i .. ": " .. (c.recv ~= nil and "recv"
          or "send") .. " is not a channel", 3)
      end
    elseif c.timeout ~= nil then
      if type(c.timeout) ~= "number" then
        error("select: case " .. i .. ": timeout is not a number", 3)
      end
    elseif not c.default then
      error("select: case " .. i
        .. " has no recv, send, timeout or default", 3)
    end
    if c.fn ~= nil and type(c.fn) ~= "function" then
      error("select: case " .. i .. ": fn is not a function", 3)
    end
  end
  return n
end

-- chosen runs case i: its fn's results, or i and the values.
local function chosen(c, i, ...)
  local fn = c.fn
  if fn then return fn(...) end
  return i, ...
end

-- select_wait parks the task on the n cases (with a timeout of tmo s,
-- case tcase, if given) and runs the case that wakes it; a tail call from
-- select, which found none ready.
local function select_wait(cases, n, tmo, tcase)
  local _, tok, me = park(tmo, CHANNEL)
  if not isyieldable() then cannot_block("select", 3) end
  local nodes = {}
  for i = 1, n do
    local c = cases[i]
    if c.recv then
      nodes[#nodes + 1] = push(c.recv.recvq, me, tok, nil, i)
    elseif c.send then
      nodes[#nodes + 1] = push(c.send.sendq, me, tok, c.value, i, true)
    end
  end
  local woke, node, closed = co_yield(PARK)
  for k = 1, #nodes do unlink(nodes[k]) end
  if not woke then return chosen(cases[tcase], tcase) end
  local i = node[CASE]
  if node[SEND] then
    if closed == CLOSED then error("send on closed channel", 2) end
    return chosen(cases[i], i)
  end
  local v = node[VAL]
  if v == CLOSED then return chosen(cases[i], i, nil, false) end
  return chosen(cases[i], i, v, true)
end

-- select(cases) waits until one case can proceed, runs it, and returns
-- what its fn returns (without fn: the case's index, then v, ok for a
-- receive). Cases:
--   {recv = ch, fn = function(v, ok) end}    receive (ok false: closed)
--   {send = ch, value = v, fn = function() end}
--   {timeout = seconds, fn = function() end} nothing else came in time
--   {default = true, fn = function() end}    nothing was ready at once
-- When several are ready one is picked at random, so none starves.
-- recv = false or send = false disables a case (Go's nil channel). A
-- send case on a closed channel raises when chosen.
function _M.select(cases)
  local n = check_cases(cases)
  for i = 1, n do -- a random permutation: the first ready case wins
    local j = random(i)
    order[i] = order[j]
    order[j] = i
  end
  local dflt, tmo, tcase
  for k = 1, n do
    local i = order[k]
    local c = cases[i]
    local ch = c.recv
    if ch then
      local got, v, ok = try_recv(ch)
      if got then return chosen(c, i, v, ok) end
    elseif c.send then
      if c.send.closed then error("send on closed channel", 2) end
      if Chan.send(c.send, c.value, 0) then return chosen(c, i) end
    elseif ch == nil and c.send == nil then
      if c.timeout ~= nil then
        if not tmo or c.timeout < tmo then tmo, tcase = c.timeout, i end
      elseif c.default then
        dflt = i
      end
    end
  end
  if dflt then return chosen(cases[dflt], dflt) end
  if tmo and tmo <= 0 then return chosen(cases[tcase], tcase) end
  local m = 0
  for i = 1, n do
    local c = cases[i]
    if c.recv or c.send then m = m + 1 end
  end
  if m == 0 and not tmo then
    error("select: nothing to wait for (every case is disabled)", 2)
  end
  return select_wait(cases, n, tmo, tcase)
end

return _M
