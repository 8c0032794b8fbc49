-- t/lib/chat_pair.lua: scripts/chat.lua as several processes sharing one
-- room through a private Redis (--bus), seen by chat tests as one server:
-- connect() takes each process in turn.
--   local pair = require "lib.chat_pair"
--   if pair.available() then
--     local s = pair.start(2)        -- s.procs[1], s.procs[2], s.redis
--     local m = chat.must_join(s)    -- on the first process, then the second
--     s:check(t)                      -- each served members, logged nothing
--   end                               -- odd, exits 0; Redis stops
local chat = require "lib.chat"
local rs = require "lib.redis_server"
local server = require "lib.server"
local scratch = require "lib.scratch"
local format = string.format

local _M = {}
local Pair = {}
Pair.__index = Pair

-- available() says whether redis-server is there (with CI set, a missing
-- one is reported by start instead).
function _M.available()
  return rs.bin ~= nil or os.getenv("CI") ~= nil
end

-- start([n [, opts]]) starts n (default 2) chat processes on one Redis,
-- each logging at debug level (chat.spread counts their joins).
function _M.start(n, opts)
  local srv = rs.start {}
  local s = setmetatable({ procs = {}, redis = srv, turn = 0, pair = true },
    Pair)
  for i = 1, n or 2 do
    local o = { "--bus", srv.addr, "--log-level", "debug" }
    for _, v in ipairs(opts or {}) do o[#o + 1] = v end
    s.procs[i] = chat.start(server.path("scripts/chat.lua"), 1, o)
    assert(s.procs[i]:wait_log("bus: redis .* up", 10), "the bus came up")
  end
  s.addr = s.procs[1].addr
  return s
end

-- s:connect([timeout]) connects to the next process in turn; called on
-- another table with an addr (a relay's), it dials that address.
function Pair:connect(timeout)
  local procs = rawget(self, "procs")
  if not procs then return Pair.dial(self, timeout) end
  self.turn = self.turn % #procs + 1
  return procs[self.turn]:connect(timeout)
end

function Pair.dial(self, timeout)
  local net = require "coronet.net"
  local c = assert(net.dial(self.addr, { timeout = 10 }))
  c:set_timeout(timeout or 10)
  return c
end

-- s:check(t) checks, with t, that every process served members and
-- logged nothing odd, and that each exits 0 at SIGTERM; then stops Redis.
function Pair:check(t)
  for i, p in ipairs(self.procs) do
    local served = 0
    for _, n in pairs(chat.spread(p)) do served = served + n end
    t.ok(served > 0, format("process %d served members (%d)", i, served))
    local errs = chat.odd_lines(p, { "bus: redis .* up$" })
    t.is(#errs, 0, format("process %d logged nothing but its start", i))
    if #errs > 0 then t.diag(table.concat(errs, "\n")) end
    t.is(scratch.stop(p), 0, format("process %d exits 0 at SIGTERM", i))
  end
  self.redis:stop()
end

return _M
