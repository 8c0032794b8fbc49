-- t/215-keepalive.t: TCP keepalive on accepted and dialed connections
-- (issue #14: half-open connections through a proxy lived for ever). The
-- kernel's /proc/net/tcp shows a socket's keepalive timer (timer_active
-- 2) while it sits idle.
local t = require "lib.tap"
local server = require "lib.server"
local net = require "coronet.net"
local coronet = require "coronet"
local ffi = require "ffi"
ffi.cdef [[
int getsockopt(int fd, int level, int name, void *val, unsigned *len);
ssize_t readlink(const char *path, char *buf, size_t size);
]]

local proxy = server.path("scripts/proxy.lua")
local echo = server.path("scripts/echo.lua")

local function hexport(addr)
  return string.format("%04X", tonumber(addr:match(":(%d+)$")))
end

-- tcp_line(lport, rport) -> the /proc/net/tcp line of the established
-- socket from local port lport to remote port rport (127.0.0.1), and the
-- position just past its state field; or nil.
local function tcp_line(lport, rport)
  local f = assert(io.open("/proc/net/tcp", "r"))
  local want = "0100007F:" .. hexport(":" .. lport) .. " 0100007F:"
    .. hexport(":" .. rport) .. " 01 "
  for line in f:lines() do
    local at = line:find(want, 1, true)
    if at then
      f:close()
      return line, at + #want
    end
  end
  f:close()
end

-- inode(lport, rport) -> that socket's inode, or nil.
local function inode(lport, rport)
  local line = tcp_line(lport, rport)
  return line and line:match("^%s*%d+:" .. ("%s+%S+"):rep(8) .. "%s+(%d+)")
end

-- timer(lport, rport) -> that socket's timer_active field and the clock
-- ticks (USER_HZ, 100 a second) until that timer fires; or nil.
local function timer(lport, rport)
  local line, past = tcp_line(lport, rport)
  if not line then return nil end
  local tr, due = line:sub(past):match("^%S+ (%x%x):(%x+)")
  return tonumber(tr, 16), tonumber(due, 16)
end

-- nodelay(ino) -> TCP_NODELAY of this process's socket with inode ino
-- (its descriptor found through /proc/self/fd), or nil.
local function nodelay(ino)
  local buf = ffi.new("char[64]")
  for fd = 0, 1023 do
    local n = ffi.C.readlink("/proc/self/fd/" .. fd, buf, 64)
    if n > 0 and ffi.string(buf, n) == "socket:[" .. ino .. "]" then
      local v, len = ffi.new("int[1]"), ffi.new("unsigned[1]", 4)
      if ffi.C.getsockopt(fd, 6 --[[IPPROTO_TCP]], 1 --[[TCP_NODELAY]], v,
          len) == 0 then return v[0] end
    end
  end
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

-- The listener carries the options its connections get (Linux's accept
-- copies them): the first probe is due within the configured idle time,
-- not the kernel's default of two hours.
t.test("--keepalive 30: an accepted socket's first probe within 30 s",
  function()
    local s = server.start { script = echo, opts = { "--keepalive", "30" },
      edge = false }
    local c = s:connect()
    c:write("x\n")
    t.is(c:read_line(), "x", "served")
    local tr, due = timer(port(s.addr), port(c:local_addr()))
    t.is(tr, 2, "the keepalive timer runs")
    t.ok(due and due > 0 and due <= 3000, "due in at most 30 s (in ticks: "
      .. tostring(due) .. ")")
    c:close()
    t.is(s:stop(), 0, "exit 0")
  end)

t.test("a script's net.listen gives its connections keepalive too",
  function()
    local served = false
    local l = assert(net.listen("127.0.0.1:0", function(sc)
      served = sc:read_line() == "x"
      sc:read_line() -- holds it open until the client closes
    end))
    local c = assert(net.dial(l:addr()))
    assert(c:write("x\n"))
    local tr, due
    for _ = 1, 200 do -- until the handler has read the line
      if served then break end
      coronet.sleep(0.01)
    end
    t.ok(served, "the listener's handler ran")
    tr, due = timer(port(l:addr()), port(c:local_addr()))
    t.is(tr, 2, "the accepted socket runs the keepalive timer")
    t.ok(due and due > 0 and due <= 6000, "due within the default 60 s "
      .. "(ticks: " .. tostring(due) .. ")")
    local ino = inode(port(l:addr()), port(c:local_addr()))
    t.ok(ino, "the accepted socket is in /proc/net/tcp")
    t.is(ino and nodelay(ino), 1, "and has TCP_NODELAY")
    c:close()
    l:close()
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
