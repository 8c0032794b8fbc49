-- t/530-dial.t: coronet.net: dial (numeric, IPv6, unix, names through the
-- thread pool), its errors and timeout, listen from a script (names
-- too), lookup, and a proxy made of dial and two copies carrying 64 MiB.
local t = require "lib.tap"
local util = require "lib.util"
local coronet = require "coronet"
local net = require "coronet.net"
local io_ = require "coronet.io"
local process = require "coronet.process"

local spawn, chan, now = coronet.spawn, coronet.chan, coronet.now
local format, rep, concat = string.format, string.rep, table.concat

-- echo_listener serves addr with an echo that honours half-close.
local function echo_listener(addr)
  return net.listen(addr, function(c)
    c:set_timeout(20)
    io_.copy(c, c)
    c:close_write()
  end)
end

local function round_trip(c, msg)
  c:set_timeout(10)
  assert(c:write(msg .. "\n"))
  return c:read_line()
end

t.test("dial connects to a numeric address; the conn works both ways",
  function()
  local l = assert(echo_listener("127.0.0.1:0"))
  local addr = l:addr()
  t.like(addr, "^127%.0%.0%.1:%d+$", "the listener has a real port")
  t.isnt(addr, "127.0.0.1:0", "not port 0")
  local c, err = net.dial(addr, { timeout = 5 })
  t.ok(c, "dial succeeds" .. (err and (": " .. err) or ""))
  t.is(c:remote_addr(), addr, "remote_addr is the listener's")
  t.like(c:local_addr(), "^127%.0%.0%.1:%d+$", "local_addr is loopback")
  t.is(round_trip(c, "ping"), "ping", "bytes go there and back")
  t.is(tostring(c):match("^coronet%.conn"), "coronet.conn",
    "the same kind of object as an accepted connection")
  c:close()
  l:close()
end)

t.test("dial works over IPv6 loopback", function()
  local l, err = echo_listener("[::1]:0")
  if not l then
    t.pass("skipped: no IPv6 loopback here (" .. err .. ")")
    return
  end
  t.like(l:addr(), "^%[::1%]:%d+$", "the listener's address is bracketed")
  local c = assert(net.dial(l:addr(), { timeout = 5 }))
  t.is(round_trip(c, "six"), "six", "bytes go there and back")
  c:close()
  l:close()
end)

t.test("dial works over a unix socket", function()
  local path = os.tmpname()
  os.remove(path)
  local l = assert(echo_listener("unix:" .. path))
  t.is(l:addr(), "unix:" .. path, "addr() gives the path")
  local c = assert(net.dial("unix:" .. path, { timeout = 5 }))
  t.is(round_trip(c, "local"), "local", "bytes go there and back")
  c:close()
  l:close()
  os.remove(path)
end)

t.test("dial resolves names on the thread pool", function()
  local l = assert(echo_listener("127.0.0.1:0"))
  local port = l:addr():match(":(%d+)$")
  -- the loop keeps running while the name resolves: a ticker ticks
  local ticks = 0
  local stop = chan(1)
  spawn(function()
    while not stop:recv(0.001) do ticks = ticks + 1 end
  end)
  local c, err = net.dial("localhost:" .. port, { timeout = 10 })
  stop:send(true)
  t.ok(c, "localhost resolves and connects" .. (err and (": " .. err) or ""))
  if c then
    t.is(round_trip(c, "name"), "name", "bytes go there and back")
    c:close()
  end
  l:close()
end)

t.test("dial to a closed port: connection refused, naming the address",
  function()
  local l = assert(net.listen("127.0.0.1:0", function() end))
  local addr = l:addr()
  l:close()
  local c, err = net.dial(addr, { timeout = 5 })
  t.is(c, nil, "no connection")
  t.is(err, "dial " .. addr .. ": connection refused", "the error")
end)

t.test("dial to a name that does not resolve fails, naming it", function()
  local t0 = now()
  local c, err = net.dial("no-such-host.invalid:80", { timeout = 10 })
  t.is(c, nil, "no connection")
  if err and err:find("timeout") then
    t.pass("skipped: the resolver did not answer for .invalid in 10 s")
    return
  end
  t.like(err, "^dial no%-such%-host%.invalid:80: ", "err names the address")
  t.ok(not err:find("timeout"), "the resolver answered: " .. tostring(err))
  t.cmp_ok(now() - t0, "<", 10, "within the timeout")
end)

t.test("dial with a bad address fails at once", function()
  local c, err = net.dial("no-port-here")
  t.is(c, nil, "no connection")
  t.like(err, "bad address 'no%-port%-here'", "err says why")
  local ok, e = pcall(net.dial, 42)
  t.ok(not ok and e:find("bad argument #1 to 'dial'"), "a number raises")
end)

-- backlog_listener starts a process holding a listening socket with a
-- backlog of 1 that never accepts; returns the process and its port.
local function backlog_listener()
  local code = [[
    use IO::Socket::INET;
    my $s = IO::Socket::INET->new(LocalAddr => "127.0.0.1", LocalPort => 0,
      Listen => 1, ReuseAddr => 1) or die "listen: $!";
    $| = 1;
    print $s->sockport, "\n";
    <STDIN>;
  ]]
  local p, err = process.spawn { "perl", "-e", code, stdin = "pipe",
    stdout = "pipe" }
  if not p then return nil, err end
  p.stdout:set_timeout(10)
  local port = p.stdout:read_line()
  if not port then
    p:kill("KILL")
    p:wait(10)
    return nil, "the helper printed no port"
  end
  return p, port
end

t.test("dial times out against an address that never answers", function()
  local p, port = backlog_listener()
  if not p then
    t.pass("skipped: cannot start the perl helper: " .. tostring(port))
    return
  end
  local addr = "127.0.0.1:" .. port
  local held, err, took = {}, nil, nil
  for _ = 1, 20 do -- fill the accept queue until a connect hangs
    local t0 = now()
    local c, e = net.dial(addr, { timeout = 0.3 })
    if not c then
      err, took = e, now() - t0
      break
    end
    held[#held + 1] = c
  end
  t.diag(format("  %d connections filled the backlog", #held))
  t.is(err, "dial " .. addr .. ": timeout", "the dial timed out")
  if took then
    t.cmp_ok(took, ">=", 0.29, "after the timeout")
    t.cmp_ok(took, "<", 3, "and not much later")
  end
  for _, c in ipairs(held) do c:close() end
  p.stdin:close()
  local code = p:wait(10)
  if not code then
    p:kill("KILL")
    p:wait(10)
  end
end)

t.test("many dials at once all connect", function()
  local l = assert(echo_listener("127.0.0.1:0"))
  local n, ok = 200, 0
  local wg = coronet.waitgroup()
  for i = 1, n do
    wg:add()
    spawn(function()
      local c = net.dial(l:addr(), { timeout = 10 })
      if c and round_trip(c, "n" .. i) == "n" .. i then ok = ok + 1 end
      if c then c:close() end
      wg:done()
    end)
  end
  t.ok(wg:wait(30), "all finished")
  t.is(ok, n, "every one connected and echoed")
  l:close()
end)

t.test("lookup resolves a name to numeric addresses", function()
  local ips, err = net.lookup("localhost")
  t.ok(ips, "localhost resolves" .. (err and (": " .. err) or ""))
  local has = false
  for _, ip in ipairs(ips or {}) do
    if ip == "127.0.0.1" or ip == "::1" then has = true end
  end
  t.ok(has, "to a loopback address: " .. concat(ips or {}, " "))
  ips = net.lookup("127.0.0.1")
  t.is(ips and ips[1], "127.0.0.1", "a numeric address is itself")
  local r, lerr = net.lookup("no-such-host.invalid")
  t.is(r, nil, "a name that does not resolve")
  t.like(lerr, "^lookup no%-such%-host%.invalid: ", "err names it")
end)

t.test("listen accepts a host name, resolved on the thread pool", function()
  local l, err = echo_listener("localhost:0")
  t.ok(l, "listen localhost:0" .. (err and (": " .. err) or ""))
  if not l then return end
  t.like(l:addr(), "^[%d%.%[%]:]+:%d+$", "addr() is numeric")
  local c = assert(net.dial(l:addr(), { timeout = 5 }))
  t.is(round_trip(c, "hi"), "hi", "it serves")
  c:close()
  l:close()
end)

t.test("listen errors name the address", function()
  local l = assert(net.listen("127.0.0.1:0", function() end))
  local addr = l:addr()
  local l2, err = net.listen(addr, function() end)
  t.is(l2, nil, "a second listener on the same port fails")
  t.is(err, "listen " .. addr .. ": address already in use", "the error")
  l:close()
  l2, err = net.listen("not an address", function() end)
  t.like(err, "^listen not an address: bad address", "a bad address")
  l2, err = net.listen("no-such-host.invalid:0", function() end)
  t.like(err, "^listen no%-such%-host%.invalid:0: lookup", "a bad name")
  t.is(select(2, l:addr()), "closed", "a closed listener's addr")
  local c, derr = net.dial(addr, { timeout = 5 })
  t.ok(not c and derr:find("refused"), "and it no longer accepts")
end)

t.test("a proxy of dial and two copies carries 64 MiB each way intact",
  function()
  local MiB = 1024 * 1024
  local total, block = 64 * MiB, 64 * 1024
  local up = assert(echo_listener("127.0.0.1:0"))
  local proxy = assert(net.listen("127.0.0.1:0", function(client)
    client:set_timeout(30)
    local server = assert(net.dial(up:addr(), { timeout = 10 }))
    server:set_timeout(30)
    local done = chan(1)
    spawn(function()
      io_.copy(server, client) -- client -> server
      server:close_write()
      done:send(true)
    end)
    io_.copy(client, server) -- server -> client
    client:close_write()
    done:recv()
    server:close()
  end))
  local c = assert(net.dial(proxy:addr(), { timeout = 10 }))
  c:set_timeout(30)
  local base = rep("0123456789abcdef", block / 16)
  local function chunk(i) -- every block differs: order is checked too
    local head = format("%08d", i)
    return head .. base:sub(#head + 1)
  end
  local n = total / block
  local writer = chan(1)
  spawn(function()
    for i = 1, n do
      if not c:write(chunk(i)) then break end
    end
    c:close_write()
    writer:send(true)
  end)
  local t0 = now()
  local good, bad, got = 0, 0, 0
  for i = 1, n do
    local s, err = c:read_full(block)
    if not s then
      t.diag("  read failed at block " .. i .. ": " .. tostring(err))
      break
    end
    got = got + #s
    if s == chunk(i) then good = good + 1 else bad = bad + 1 end
  end
  local rest, rerr = c:read()
  writer:recv()
  t.is(got, total, "64 MiB came back")
  t.is(good, n, "every block intact and in order")
  t.is(bad, 0, "no block differs")
  t.ok(rest == nil and rerr == "eof", "then EOF, the half-close relayed")
  t.diag(format("  64 MiB each way through the proxy in %.2f s",
    now() - t0))
  c:close()
  proxy:close()
  up:close()
end, 120)

t.test("no task or connection is left over", function()
  util.no_leftovers(t)
end)

t.done()
