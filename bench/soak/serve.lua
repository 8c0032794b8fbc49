-- bench/soak/serve.lua: serves a handler script unchanged and, beside it,
-- once per process, a listener for the soak's sampler: each line it gets
-- is answered with one line of this worker's coronet.stats() and its Lua
-- heap after a full collection ("tasks=9 connections=4 blocks=2
-- lua_kib=812").
--   coronet bench/soak/serve.lua --listen ADDR -- SCRIPT [ARGS...]
-- It logs "soak stats on ADDR". A reload (SIGHUP) runs SCRIPT again, so
-- the handler reloads as it would on its own; the sampler's listener
-- keeps its address.
local coronet = require "coronet"
local net = require "coronet.net"
local log = require "coronet.log"
local format = string.format

local function sample()
  collectgarbage()
  local s = coronet.stats()
  return format("tasks=%d connections=%d blocks=%d free_blocks=%d "
    .. "lua_kib=%d\n", s.tasks, s.connections, s.blocks, s.free_blocks,
    collectgarbage("count"))
end

-- a reload listens again on the same address: it gets the same socket,
-- so the line is logged once
local kept = coronet.state("soak")
local l = assert(net.listen("127.0.0.1:0", function(conn)
  for _ in conn:lines() do
    if not conn:write(sample()) then break end
  end
end))
if not kept.logged then
  kept.logged = true
  log.info("soak stats on %s", l:addr())
end

-- the script's own modules (scripts/chat_proto.lua...) are found beside it
local script = ...
local dir = script:match("^(.*)/[^/]*$") or "."
if not package.path:find(dir .. "/?.lua;", 1, true) then
  package.path = dir .. "/?.lua;" .. package.path
end
local chunk = assert(loadfile(script))
return chunk(select(2, ...))
