-- bench/idle_server.lua MODE: a server whose idle connections wait as MODE
-- says, for bench/conn-memory.sh (and bench/million.sh's echo):
--   copy  return io.copy(conn, conn), as scripts/echo.lua (the default):
--         the host takes the echo over and the task ends
--   copytask  io.copy(conn, conn) with more to do after it: the task
--         waits in the copy
--   read  a loop of conn:read()
--   park  the task parks and yields at once (the least a task can cost)
--   chat  scripts/chat.lua's handler (run from the scripts directory)
-- A stats listener on a port of its own (logged as "stats on ADDR")
-- answers each line with "lua_kib=N connections=N tasks=N", after a full
-- garbage collection.
local coronet = require "coronet"
local net = require "coronet.net"
local io_ = require "coronet.io"
local log = require "coronet.log"
local sched = require "coronet.c.sched"
local format = string.format

local mode = ... or "copy"

local stats = assert(net.listen("127.0.0.1:0", function(conn)
  for _ in conn:lines() do
    collectgarbage()
    collectgarbage()
    local st = coronet.stats()
    conn:write(format("lua_kib=%.1f connections=%d tasks=%d\n",
      collectgarbage("count"), st.connections, st.tasks))
  end
end))
log.warn("stats on %s", stats:addr()) -- warn: still shown with -q

if mode == "park" then
  return function()
    sched.park()
    coroutine.yield()
  end
elseif mode == "read" then
  return function(conn)
    while conn:read() do end
  end
elseif mode == "chat" then
  local dir = (arg[0]:match("^(.*)/bench/[^/]*$") or ".") .. "/scripts/"
  package.path = dir .. "?.lua;" .. package.path
  return dofile(dir .. "chat.lua")
elseif mode == "copytask" then
  return function(conn)
    local n, err = io_.copy(conn, conn)
    if err then log.info("copy: %s after %d bytes", err, n) end
  end
end
return function(conn)
  return io_.copy(conn, conn)
end
