-- bench/mem-after-load.lua: memory after a load. A server whose members
-- each hold ~2 MB of Lua state while connected (as a busy chat room holds
-- its queues) takes N members at once; the script reports the server's RSS
-- and Lua heap before the load, at its peak, and 10 s after the members
-- left, with no request in between (the loop's idle GC gives it back).
--   host/coronet --run bench/mem-after-load.lua [MEMBERS]
local here = debug.getinfo(1, "S").source:match("^@(.*)/bench/") or "."
package.path = here .. "/t/?.lua;" .. package.path
local server = require "lib.server"
local util = require "lib.util"
local coronet = require "coronet"

local members = tonumber(arg[1]) or 50
local script = server.path("t/lib/svc_hold.lua")

local s = server.start { script = script }
local q = s:connect()
local function sample(what)
  q:write("?\n")
  local heap = tonumber(q:read_line())
  print(string.format("%-28s RSS %6.1f MB   Lua heap %6.1f MB", what,
    util.rss_kib(s.proc.pid) / 1024, heap / 1048576))
end
coronet.sleep(1)
sample("before the load")
local wg, hold = coronet.waitgroup(), coronet.chan()
for k = 1, members do
  wg:add(1)
  coronet.spawn(function()
    local c = s:connect(30)
    for i = 1, 10 do
      c:write(k .. "-" .. i .. "\n")
      c:read_line()
    end
    wg:done()
    hold:recv()
    c:close()
  end)
end
wg:wait(60)
sample(string.format("peak (%d members)", members))
hold:close()
coronet.sleep(10)
sample("10 s after they left")
q:close()
s:stop()
