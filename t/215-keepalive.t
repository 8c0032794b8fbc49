-- t/215-keepalive.t: TCP keepalive on accepted and dialed connections
-- (issue #14: half-open connections through a proxy lived for ever). The
-- kernel's /proc/net/tcp shows a socket's keepalive timer (timer_active
-- 2) while it sits idle.
local t = require "lib.tap"
local server = require "lib.server"
local net = require "coronet.net"

local proxy = server.path("scripts/proxy.lua")
local echo = server.path("scripts/echo.lua")

local function hexport(addr)
  return string.format("%04X", tonumber(addr:match(":(%d+)$")))
end

-- timer(lport, rport) -> the timer_active field of the established socket
-- from local port lport to remote port rport (127.0.0.1), or nil.
local function timer(lport, rport)
  local f = assert(io.open("/proc/net/tcp", "r"))
  local want = "0100007F:" .. hexport(":" .. lport) .. " 0100007F:"
    .. hexport(":" .. rport) .. " 01 "
  for line in f:lines() do
    local at = line:find(want, 1, true)
    if at then
      f:close()
      return tonumber(line:sub(at + #want):match("^%S+ (%x%x):"), 16)
    end
  end
  f:close()
end

local function port(addr) return tonumber(addr:match(":(%d+)$")) end

t.test("an accepted connection has keepalive on by default", function()
  -- edge = false: the sockets checked are the server's, not a relay's
  local s = server.start { script = echo, edge = false }
  local c = s:connect()
  c:write("x\n")
  t.is(c:read_line(), "x", "served")
  local here = port(c:local_addr())
  t.is(timer(port(s.addr), here), 2, "the server's socket runs the "
    .. "keepalive timer while idle")
  t.is(timer(here, port(s.addr)), 2, "so does this test's own dialed one")
  c:close()
  t.is(s:stop(), 0, "exit 0")
end)

t.test("--keepalive 0 turns it off", function()
  local s = server.start { script = echo, opts = { "--keepalive", "0" },
    edge = false }
  local c = s:connect()
  c:write("x\n")
  c:read_line()
  t.is(timer(port(s.addr), port(c:local_addr())), 0, "no keepalive timer")
  c:close()
  t.is(s:stop(), 0, "exit 0")
end)

t.test("a dialed connection (the proxy's upstream) has keepalive too",
  function()
    local up = server.start { script = echo, opts = { "--keepalive", "0" } }
    local s = server.start { script = proxy, args = { up.addr },
      opts = { "--keepalive", "30" } }
    local c = s:connect()
    c:write("through\n")
    t.is(c:read_line(), "through", "proxied")
    -- find the proxy's upstream socket: remote port = upstream's port
    local f = assert(io.open("/proc/net/tcp", "r"))
    local found
    for line in f:lines() do
      local l, r, st, tr = line:match("^%s*%d+: 0100007F:(%x+) 0100007F:(%x+)"
        .. " (%x%x) %x+:%x+ (%x%x):")
      if r == hexport(up.addr) and st == "01" and tonumber(l, 16)
          ~= port(c:local_addr()) then
        found = found or {}
        found[#found + 1] = tonumber(tr, 16)
      end
    end
    f:close()
    t.ok(found, "the upstream connection is there")
    t.is(found and found[1], 2, "the dialed socket runs the keepalive timer")
    c:close()
    t.is(s:stop(), 0, "exit 0")
    t.is(up:stop(), 0, "exit 0")
  end)

t.test("a bad --keepalive is a usage error", function()
  local code, err = server.run { echo, "--keepalive", "x" }
  t.is(code, 2, "status 2")
  t.like(err, "%-%-keepalive needs whole seconds", "says what it needs")
end)

t.done()
