-- t/250-many-conns.t: a thousand connections open at once against the real
-- echo handler; connection churn; the --max-connections limit. The server
-- is t/lib/svc_mem.lua in echo mode, which reports coronet.stats().
local t = require "lib.tap"
local server = require "lib.server"
local util = require "lib.util"
local coronet = require "coronet"
local net = require "coronet.net"

local script = server.path("t/lib/svc_mem.lua")
local N = util.under_valgrind() and 300 or 1000

local function start(opts)
  local s = server.start { script = script, args = { "echo" }, opts = opts }
  local line = s:wait_log("stats on %S+")
  return s, line and line:match("stats on (%S+)")
end

local stats = util.svc_stats

-- run_all(n, fn) is util.run_all, showing the first error.
local function run_all(n, fn)
  local good, first = util.run_all(n, fn)
  if first then t.diag(first) end
  return good
end

t.test(N .. " connections open at once each get their own bytes back",
  function()
    local s, saddr = start()
    local rss0 = util.rss_kib(s.proc.pid)
    local conns = {}
    local connected = run_all(N, function(i)
      conns[i] = s:connect()
      return true
    end)
    t.is(connected, N, "all " .. N .. " connected")
    local st = util.wait_until(function()
      local x = stats(saddr)
      return x.connections == N + 1 and x
    end, 20) or stats(saddr)
    t.is(st.connections, N + 1, "the server holds them all at once")
    t.is(st.blocks, 0, "idle connections hold no buffer block")
    local rss1 = util.rss_kib(s.proc.pid)
    t.diag(string.format("server RSS %d -> %d KiB with %d idle connections: "
      .. "%.2f KiB per connection", rss0, rss1, N, (rss1 - rss0) / N))
    -- each sends a message naming itself, in two pieces, and reads it back
    local good = run_all(N, function(i)
      local c = conns[i]
      local msg = "connection " .. i .. " says " .. string.rep("x", i % 97)
      c:write(msg:sub(1, 5))
      coronet.sleep(0.001)
      c:write(msg:sub(6) .. "\n")
      return c:read_line() == msg
    end)
    t.is(good, N, "every connection got exactly its own message back")
    -- a second round on the same connections
    good = run_all(N, function(i)
      local c = conns[i]
      c:write("round two " .. i .. "\n")
      return c:read_line() == "round two " .. i
    end)
    t.is(good, N, "and again on a second round")
    for i = 1, N do conns[i]:close() end
    t.ok(util.wait_until(function()
      local x = stats(saddr)
      return x.connections == 1 and x.blocks == 0
    end, 20), "after they close: no connection or block left")
    t.is(s:stop(), 0, "exit 0")
  end, 300)

t.test(N .. " connections one after another leave nothing behind",
  function()
    local s, saddr = start()
    local before = stats(saddr)
    local good = 0
    for i = 1, N do
      local c = s:connect()
      c:write(i .. "\n")
      if c:read_line() == tostring(i) then good = good + 1 end
      c:close()
    end
    t.is(good, N, "each was served")
    t.ok(util.wait_until(function()
      local x = stats(saddr)
      return x.connections == 1 and x.blocks == 0 and x.tasks <= before.tasks
    end, 20), "no connection, block or task is left")
    t.is(s:stop(), 0, "exit 0")
  end, 300)

t.test("past --max-connections, new connections wait and are then served",
  function()
    local s, saddr = start { "--max-connections", "10" }
    local held = {}
    for i = 1, 10 do
      held[i] = s:connect()
      held[i]:write("h" .. i .. "\n")
      t.is(held[i]:read_line(), "h" .. i, "client " .. i .. " served")
    end
    -- the kernel completes the eleventh connection, the server waits
    local more = s:connect(1)
    more:write("over\n")
    local v, err = more:read_line()
    t.is(err, "timeout", "an eleventh waits while all slots are taken")
    held[1]:close()
    more:set_timeout(10)
    t.is(more:read_line(), "over", "it is served once a slot frees")
    for i = 2, 10 do held[i]:close() end
    more:close()
    t.is(s:stop(), 0, "exit 0")
  end, 120)

-- cpu_seconds(pid) is the user + system CPU time of process pid.
local function cpu_seconds(pid)
  local f = io.open("/proc/" .. pid .. "/stat", "r")
  if not f then return 0 end
  local st = f:read("*a")
  f:close()
  local fields = {}
  for x in st:match("%) (.*)$"):gmatch("%S+") do fields[#fields + 1] = x end
  return (tonumber(fields[12]) + tonumber(fields[13])) / 100 -- clock ticks
end

t.test("out of file descriptors, accepting pauses instead of spinning",
  function()
    local s = server.start { script = script, args = { "echo" },
      prefix = { "sh", "-c", 'ulimit -n 40; exec "$@"', "sh" } }
    local n = 45 -- more than the server has descriptors for
    local conns, replies = {}, {}
    for i = 1, n do
      conns[i] = s:connect()
      conns[i]:write("hi " .. i .. "\n")
      coronet.spawn(function() replies[i] = conns[i]:read_line() end)
    end
    local line = s:wait_log("accept on 127%.0%.0%.1:%d+: fewer than 8 of 40 "
      .. "file descriptors left; pausing")
    t.ok(line, "the server logs that it ran out of descriptors, naming the "
      .. "address") -- issue #14: the address was missing
    local served = 0
    util.wait_until(function()
      served = 0
      for i = 1, n do if replies[i] then served = served + 1 end end
      return false
    end, 0.5)
    t.cmp_ok(served, "<", n, served .. " served, the rest wait")
    local c0 = cpu_seconds(s.proc.pid)
    coronet.sleep(1)
    local used = cpu_seconds(s.proc.pid) - c0
    t.cmp_ok(used, "<", 0.5, "the waiting server is not spinning (CPU "
      .. used .. " s in 1 s)")
    -- free descriptors: the waiting connections are accepted and served,
    -- as many at a time as fit
    local closed = {}
    util.wait_until(function()
      local all = true
      for i = 1, n do
        if replies[i] and not closed[i] then
          conns[i]:close()
          closed[i] = true
        end
        all = all and replies[i] ~= nil
      end
      return all
    end, 30)
    local ok = 0
    for i = 1, n do if replies[i] == "hi " .. i then ok = ok + 1 end end
    t.is(ok, n, "every connection was served in the end")
    local _, pauses = s:log():gsub("descriptors left; pausing", "")
    local _, resumes = s:log():gsub("resumed after", "")
    t.cmp_ok(pauses, "<=", 4, pauses .. " pauses logged, one per episode, "
      .. "not one per retry")
    t.cmp_ok(resumes, ">=", pauses - 1, "each ended with a resume line")
    t.ok(s:wait_log("resumed after [%d.]+ s out of file descriptors %(%d+ "
      .. "retries%)"), "and its end once, with a count")
    for i = 1, n do conns[i]:close() end
    t.is(s:stop(), 0, "exit 0")
  end, 120)

-- issue #14: out of descriptors, a dial to a host name said "unknown node
-- or service" (getaddrinfo could not read /etc/hosts)
t.test("out of descriptors, fs.open and net.dial say so", function()
  local path = util.tmpfile([[
local fs = require "coronet.fs"
local net = require "coronet.net"
local l = assert(net.listen("127.0.0.1:0", function() end))
local port = l:addr():match(":(%d+)$")
local keep, err = {}
repeat
  local f
  f, err = fs.open("/dev/null")
  keep[#keep + 1] = f
until not f
print("open: " .. err)
print("dial: " .. select(2, net.dial("localhost:" .. port)))
print("dial: " .. select(2, net.dial("127.0.0.1:" .. port)))
]])
  local process = require "coronet.process"
  local p = assert(process.spawn { "prlimit", "--nofile=32", "--",
    server.bin, "--run", path, stdout = "pipe" })
  local out = util.read_all(p.stdout)
  t.is(p:wait(10), 0, "the program ran")
  t.like(out, "open: open /dev/null: too many open files\n",
    "fs.open fails with 'too many open files'")
  t.like(out, "dial: dial localhost:%d+: too many open files\n",
    "so does a dial to a name, not 'unknown node or service'")
  t.like(out, "dial: dial 127%.0%.0%.1:%d+: too many open files\n",
    "and one to a number")
  util.cleanup()
end)

-- issue #14: a proxy uses two descriptors per client; counting connections
-- let the listener accept clients whose upstream dials then failed
t.test("a proxy out of descriptors stops accepting instead of failing dials",
  function()
    local up = server.start { script = server.path("scripts/echo.lua") }
    local s = server.start { script = server.path("scripts/proxy.lua"),
      args = { up.addr },
      prefix = { "prlimit", "--nofile=48", "--" } }
    local clients, served, waiting = {}, 0, 0
    for i = 1, 40 do
      local c = s:connect(0.5)
      clients[i] = c
      c:write("c" .. i .. "\n")
      local r = c:read_line()
      if r == "c" .. i then served = served + 1 else waiting = waiting + 1 end
    end
    t.cmp_ok(served, ">", 5, served .. " clients served")
    t.cmp_ok(waiting, ">", 0, waiting .. " wait: accepting paused")
    t.ok(s:wait_log("fewer than 8 of 48 file descriptors left; pausing"),
      "the proxy logs the pause")
    t.ok(not s:log():find("too many open files"),
      "no dial failed for want of a descriptor")
    clients[1]:set_timeout(5)
    clients[1]:write("again\n")
    t.is(clients[1]:read_line(), "again", "served clients go on")
    for i = 1, #clients do clients[i]:close() end
    local c = s:connect(5)
    c:write("late\n")
    t.is(c:read_line(), "late", "once clients left, new ones are served")
    c:close()
    t.is(s:stop(), 0, "exit 0")
    t.is(up:stop(), 0, "exit 0")
  end, 60)

t.done()
