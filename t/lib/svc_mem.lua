-- t/lib/svc_mem.lua: a server for memory and backpressure tests. Its
-- handler is chosen by the first script argument:
--   echo     io.copy(conn, conn) (as scripts/echo.lua)
--   lines    a Lua line echo: each line read is written back
--   deaf     never reads; holds the connection until the peer closes
--   firehose writes 64 KiB chunks until the write fails
-- The main chunk also serves a second listener that answers each line
-- with one line of coronet.stats() ("blocks=3 free_blocks=1 ..."), and the
-- bytes the C heap has handed out (heap=, 0 where it cannot tell), and logs
-- "stats on ADDR" so that a test can find it. A reload keeps it.
local coronet = require "coronet"
local net = require "coronet.net"
local io_ = require "coronet.io"
local host = require "coronet.c.host"
local admin = require "coronet.c.admin"

local mode = ... or "echo"

local function stats_line()
  local s = coronet.stats()
  return string.format("blocks=%d free_blocks=%d connections=%d tasks=%d "
    .. "heap=%d\n", s.blocks, s.free_blocks, s.connections, s.tasks,
    admin.process().heap.in_use)
end

-- a reload listens again on the same address: it gets the same socket
-- (see README: reload), so the line is logged once
local kept = coronet.state("svc_mem")
local stats = assert(net.listen("127.0.0.1:0", function(conn)
  for _ in conn:lines() do conn:write(stats_line()) end
end))
if not kept.logged then
  kept.logged = true
  host.log("info", "stats on " .. stats:addr())
end

local handlers = {}

function handlers.echo(conn)
  io_.copy(conn, conn)
end

function handlers.lines(conn)
  for line in conn:lines() do
    if not conn:write(line .. "\n") then return end
  end
end

function handlers.deaf(conn)
  -- wait for the peer to go, without reading what it sends: poll with
  -- peek(1 + buffered) would read; instead wait on a one-byte write
  -- failing, which happens once the peer closed
  while conn:write("") do
    coronet.sleep(0.05)
    local ok = conn:write(".")
    if not ok then return end
  end
end

function handlers.firehose(conn)
  local chunk = string.rep("f", 65536)
  while conn:write(chunk) do end
end

local h = handlers[mode]
if not h then error("svc_mem.lua: unknown mode " .. tostring(mode)) end
return h
