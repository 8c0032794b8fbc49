-- coronet.time: timers and tickers, as Go's. A timer is a channel that
-- receives the time (coronet.now()) once, when it fires; a ticker is one
-- that receives it every period.
--
-- Every timer of the worker sits in one binary heap ordered by firing
-- time, served by one task that parks until the earliest is due (one
-- libuv timer for all of them), fires what is due, and ends when the heap
-- is empty. coronet.sleep and connection deadlines do not use this heap:
-- each task has its own libuv timer, and libuv keeps those in a heap too.
local sched = require "coronet.c.sched"
local chan = require "coronet.chan"
local setmetatable, type, error, tostring, floor =
  setmetatable, type, error, tostring, math.floor
local coroutine_yield = coroutine.yield
local park, wake, now, spawn = sched.park, sched.wake_park, sched.now,
  sched.spawn
local offer, new_chan, Chan = chan.offer, chan.new, chan.Chan

local _M = { _VERSION = "0.1.0" }

local Timer = setmetatable({}, { __index = Chan })
Timer.__index = Timer
Timer.__tostring = Chan.__tostring
_M.Timer = Timer

local Ticker = setmetatable({}, { __index = Chan })
Ticker.__index = Ticker
Ticker.__tostring = Chan.__tostring
_M.Ticker = Ticker

-- -- The heap ---------------------------------------------------------------

local heap, nheap, seq = {}, 0, 0
-- the serving task, when it will look again, and the token of its park
local server, server_when, server_tok

local function before(a, b)
  return a.when < b.when or (a.when == b.when and a.seq < b.seq)
end

local function place(t, i)
  heap[i] = t
  t.idx = i
end

local function up(i)
  local t = heap[i]
  while i > 1 do
    local p = floor(i / 2)
    if not before(t, heap[p]) then break end
    place(heap[p], i)
    i = p
  end
  place(t, i)
end

local function down(i)
  local t = heap[i]
  while true do
    local c = i * 2
    if c > nheap then break end
    if c < nheap and before(heap[c + 1], heap[c]) then c = c + 1 end
    if not before(heap[c], t) then break end
    place(heap[c], i)
    i = c
  end
  place(t, i)
end

local function remove(t)
  local i = t.idx
  local last = heap[nheap]
  heap[nheap] = nil
  nheap = nheap - 1
  t.idx = nil
  if i <= nheap then
    place(last, i)
    up(i)
    down(last.idx)
  end
end

local serve

local function insert(t, when)
  seq = seq + 1
  t.when, t.seq = when, seq
  nheap = nheap + 1
  place(t, nheap)
  up(nheap)
  if not server then
    server_when = when
    server = spawn(serve)
  elseif when < server_when then
    server_when = when
    if server_tok then -- parked: it looks again; otherwise it will anyway
      wake(server, server_tok)
    end
  end
end

-- fire delivers the time to t's channel if there is room (a slow reader
-- misses ticks rather than piling them up) and puts a ticker back.
local function fire(t, at)
  offer(t, at)
  local period = t.period
  if period and not t.closed then -- a ticker closed by hand stops too
    local when = t.when + period
    if when <= at then -- fell behind: skip the missed ticks
      when = when + period * (floor((at - when) / period) + 1)
    end
    insert(t, when)
  end
end

serve = function()
  while nheap > 0 do
    local at = now()
    while nheap > 0 and heap[1].when <= at do
      local t = heap[1]
      remove(t)
      fire(t, at)
    end
    if nheap == 0 then break end
    server_when = heap[1].when
    local _, tok = park(server_when - now())
    server_tok = tok
    coroutine_yield() -- its own task: a plain yield
    server_tok = nil
  end
  server, server_when, server_tok = nil, nil, nil
end

local function check_seconds(s, what)
  if type(s) ~= "number" or s ~= s then
    error("bad argument #1 to '" .. what .. "' (number expected, got "
      .. (type(s) == "number" and "nan" or type(s)) .. ")", 3)
  end
end

-- -- Timers -----------------------------------------------------------------

-- timer(seconds) -> timer: a channel (capacity 1) that receives now()
-- once, seconds from now. timer:stop() and timer:reset(seconds) as Go's.
function _M.timer(s)
  check_seconds(s, "timer")
  local t = new_chan(1, Timer)
  insert(t, now() + s)
  return t
end

-- after(seconds) -> channel that receives now() once, seconds from now.
-- The same as timer(seconds), for select: {recv = after(1), fn = ...}.
-- It stays in the heap until it fires, even when nobody reads it: in a
-- loop, select's own {timeout = s} case (which costs no timer object) is
-- the cheaper way to bound each wait.
function _M.after(s)
  check_seconds(s, "after")
  local t = new_chan(1, Timer)
  insert(t, now() + s)
  return t
end

-- timer:stop() -> bool: true if this stopped the timer, false if it had
-- already fired or been stopped. A value already delivered stays.
function Timer:stop()
  if not self.idx then return false end
  remove(self)
  return true
end

-- timer:reset(seconds) -> bool: fires the timer seconds from now instead;
-- true if it was still pending. A value already delivered stays.
function Timer:reset(s)
  check_seconds(s, "reset")
  local active = self.idx ~= nil
  if active then remove(self) end
  insert(self, now() + s)
  return active
end

-- -- Tickers ----------------------------------------------------------------

-- ticker(period) -> ticker: a channel (capacity 1) that receives now()
-- every period seconds; a tick that finds the last one unread is dropped.
-- ticker:stop() ends it and closes the channel, so a task reading ticks
-- (recv returns nil, false) is never left waiting for good.
function _M.ticker(period)
  check_seconds(period, "ticker")
  if not (period > 0) then
    error("bad argument #1 to 'ticker' (period must be positive, got "
      .. tostring(period) .. ")", 2)
  end
  local t = new_chan(1, Ticker)
  t.period = period
  insert(t, now() + period)
  return t
end

-- ticker:stop(): no more ticks; closes the channel. Idempotent.
function Ticker:stop()
  if self.idx then remove(self) end
  if not self.closed then self:close() end
end

-- ticker:reset(period): ticks every period from now on. Raises on a
-- stopped ticker.
function Ticker:reset(period)
  check_seconds(period, "reset")
  if not (period > 0) then
    error("bad argument #1 to 'reset' (period must be positive)", 2)
  end
  if self.closed then error("reset of a stopped ticker", 2) end
  if self.idx then remove(self) end
  self.period = period
  insert(self, now() + period)
end

-- pending() -> number of timers and tickers waiting to fire.
function _M.pending() return nheap end

return _M
