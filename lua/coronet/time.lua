-- coronet.time: timers and tickers, as Go's. A timer is a channel that
-- receives the time (coronet.now()) once, when it fires; a ticker is one
-- that receives it every period.
--
-- Each timer or ticker is one node in the worker's timing wheel (in the
-- host, shared with sleeps and deadlines: one libuv timer for all of
-- them), owned by the channel itself: no task, no libuv handle and no
-- second channel per timer. When a node fires, the host calls fire below
-- from the loop. A pending timer stays alive (in the host's registry)
-- until it fires or is stopped, even when nobody can receive from it.
local sched = require "coronet.c.sched"
local chan = require "coronet.chan"
local setmetatable, type, error, tostring = setmetatable, type, error,
  tostring
local arm, start, stop = sched.timer_arm, sched.timer_start,
  sched.timer_stop
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

-- fire delivers the time to t's channel if there is room: a slow reader
-- misses ticks rather than piling them up. A ticker closed by hand stops.
sched.timer_init(function(t, at)
  if t.closed then
    stop(t.node)
    return
  end
  offer(t, at)
end)

local function check_seconds(s, what)
  if type(s) ~= "number" or s ~= s then
    error("bad argument #1 to '" .. what .. "' (number expected, got "
      .. (type(s) == "number" and "nan" or type(s)) .. ")", 3)
  end
end

local function check_period(p, what)
  check_seconds(p, what)
  if not (p > 0) then
    error("bad argument #1 to '" .. what .. "' (period must be positive, got "
      .. tostring(p) .. ")", 3)
  end
end

-- new makes a channel of kind mt that owns a timer node started to fire
-- s seconds from now (then every period seconds). Its callers call it in
-- tail position, and it makes its C call in tail position: a task that
-- waits on a new timer right away keeps a small stack (see coronet.wait).
local function new(mt, s, period)
  return arm(new_chan(1, mt), s, period)
end

-- -- Timers -----------------------------------------------------------------

-- timer(seconds) -> timer: a channel (capacity 1) that receives now()
-- once, seconds from now. timer:stop() and timer:reset(seconds) as Go's.
function _M.timer(s)
  check_seconds(s, "timer")
  return new(Timer, s)
end

-- after(seconds) -> channel that receives now() once, seconds from now.
-- The same as timer(seconds), for select: {recv = after(1), fn = ...}. In
-- a loop, select's own {timeout = s} case (which costs no timer object) is
-- the cheaper way to bound each wait.
function _M.after(s)
  check_seconds(s, "after")
  return new(Timer, s)
end

-- timer:stop() -> bool: true if this stopped the timer, false if it had
-- already fired or been stopped. A value already delivered stays.
function Timer:stop() return stop(self.node) end

-- timer:reset(seconds) -> bool: fires the timer seconds from now instead;
-- true if it was still pending. A value already delivered stays.
function Timer:reset(s)
  check_seconds(s, "reset")
  return start(self.node, self, s)
end

-- -- Tickers ----------------------------------------------------------------

-- ticker(period) -> ticker: a channel (capacity 1) that receives now()
-- every period seconds (at least 1 ms); a tick that finds the last one
-- unread is dropped. ticker:stop() ends it and closes the channel, so a
-- task reading ticks (recv returns nil, false) is never left waiting for
-- good.
function _M.ticker(period)
  check_period(period, "ticker")
  return new(Ticker, period, period)
end

-- ticker:stop(): no more ticks; closes the channel. Idempotent.
function Ticker:stop()
  stop(self.node)
  if not self.closed then self:close() end
end

-- ticker:reset(period): ticks every period from now on. Raises on a
-- stopped ticker.
function Ticker:reset(period)
  check_period(period, "reset")
  if self.closed then error("reset of a stopped ticker", 2) end
  start(self.node, self, period, period)
end

-- pending() -> number of timers and tickers waiting to fire.
_M.pending = sched.timers

return _M
