-- t/230-backpressure.t: a peer that sends and never reads (or never sends
-- what it should read) cannot make the server's memory grow: reading stops
-- at the read high-water mark, writers park at the write high-water mark.
-- The server (t/lib/svc_mem.lua) reports coronet.stats() on a second port.
local t = require "lib.tap"
local server = require "lib.server"
local util = require "lib.util"
local coronet = require "coronet"
local net = require "coronet.net"

local script = server.path("t/lib/svc_mem.lua")
local BLOCK = 16384

-- start(mode [, opts]) -> server, stats address
-- (no edge relay: its own buffers would stand between the clients and the
-- server's backpressure)
local function start(mode, opts)
  local s = server.start { script = script, args = { mode }, opts = opts,
    edge = "reload" }
  local line = s:wait_log("stats on %S+")
  return s, line and line:match("stats on (%S+)")
end

-- stats(addr) -> table of the server's counters
local stats = util.svc_stats

-- flood(c [, limit]) writes 64 KiB fragments (each tagged with its number)
-- until a write stalls for 0.3 s; returns the bytes written and the hash
-- of the stream.
local payload = util.random_bytes(65536 - 8, 99)
local function flood(c, limit)
  c:set_timeout(10, 0.3)
  local total, h = 0, nil
  limit = limit or 512 * 1024 * 1024
  for i = 1, limit / 65536 do
    local tag = string.format("%08d", i)
    local n, err, queued = c:write { payload, tag }
    if not n then
      -- part of this write may be queued: count what was
      local sent = payload .. tag
      sent = sent:sub(1, queued or 0)
      h = util.fnv1a(sent, h)
      total = total + #sent
      c:set_timeout(10, 10)
      return total, h, err
    end
    h = util.fnv1a(tag, util.fnv1a(payload, h))
    total = total + n
  end
  c:set_timeout(10, 10)
  return total, h, "never stalled"
end

-- drain(c, n) reads n bytes; returns the count and the hash.
local function drain(c, n)
  local got, h = 0, nil
  while got < n do
    local s = c:read(65536)
    if not s then break end
    h = util.fnv1a(s, h)
    got = got + #s
  end
  return got, h
end

t.test("echo: a client that sends and never reads stalls, server bounded",
  function()
    local s, saddr = start("echo")
    local before = stats(saddr)
    local rss0 = util.rss_kib(s.proc.pid)
    local c = s:connect()
    local total, h, why = flood(c)
    t.is(why, "timeout", "the client's writes stalled")
    t.diag(string.format("stalled after %.1f MiB", total / 1048576))
    local st = stats(saddr)
    t.cmp_ok(st.blocks, "<=", 12, "server blocks in use stay bounded")
    t.diag(string.format("server blocks in use: %d (%d KiB), idle before: %d",
      st.blocks, st.blocks * 16, before.blocks))
    local rss1 = util.rss_kib(s.proc.pid)
    t.diag(string.format("server RSS %d -> %d KiB", rss0, rss1))
    t.cmp_ok(rss1 - rss0, "<", 32 * 1024, "server RSS grew less than 32 MiB")
    -- nothing was lost: read back everything that was written
    local got, gh = drain(c, total)
    t.is(got, total, "every byte comes back once the client reads")
    t.ok(gh == h, "unchanged and in order (hash)")
    c:close()
    t.ok(util.wait_until(function() return stats(saddr).blocks == 0 end),
      "after the client closed, no block is in use")
    t.is(s:stop(), 0, "exit 0")
  end, 120)

t.test("lines: a client that sends lines and never reads, server bounded",
  function()
    local s, saddr = start("lines")
    local c = s:connect()
    c:set_timeout(10, 0.3)
    local line = string.rep("l", 99) .. "\n"
    local lines = {}
    for i = 1, 655 do lines[i] = line end -- 64 KiB of lines per write
    local total, why = 0, nil
    for _ = 1, 8000 do
      local n, err, queued = c:write(lines)
      if not n then
        why = err
        total = total + (queued or 0)
        break
      end
      total = total + n
    end
    t.is(why, "timeout", "the client's writes stalled")
    local st = stats(saddr)
    t.cmp_ok(st.blocks, "<=", 14, "server blocks in use stay bounded")
    t.diag(string.format("stalled after %.1f MiB; server blocks: %d",
      total / 1048576, st.blocks))
    local whole = total - total % 100 -- a cut last line is not echoed
    t.is(drain(c, whole), whole, "every whole line comes back once read")
    c:close()
    t.ok(util.wait_until(function() return stats(saddr).blocks == 0 end),
      "after the client closed, no block is in use")
    t.is(s:stop(), 0, "exit 0")
  end, 120)

t.test("a handler that never reads holds at most the read high-water mark",
  function()
    local s, saddr = start("deaf")
    local c = s:connect()
    local total, _, why = flood(c)
    t.is(why, "timeout", "the client's writes stalled")
    local st = stats(saddr)
    t.cmp_ok(st.blocks * BLOCK, "<=", 65536 + 2 * BLOCK,
      "unread bytes held by the server stay near 64 KiB")
    t.diag(string.format("stalled after %.1f MiB; server blocks: %d",
      total / 1048576, st.blocks))
    -- the client's own unsent bytes keep its close lingering (up to 10 s)
    -- before the server sees it go
    c:close()
    t.ok(util.wait_until(function() return stats(saddr).blocks == 0 end, 30),
      "after the client closed, no block is in use")
    t.is(s:stop(), 0, "exit 0")
  end, 120)

t.test("a handler writing to a client that never reads parks, bounded",
  function()
    local s, saddr = start("firehose")
    local c = s:connect()
    -- let the server fill every buffer on the way: wait until its block
    -- count stops changing
    local last, same = -1, 0
    for _ = 1, 200 do
      coronet.sleep(0.02)
      local b = stats(saddr).blocks
      if b == last then same = same + 1 else same = 0 end
      last = b
      if same >= 5 then break end
    end
    t.cmp_ok(last * BLOCK, "<=", 65536 + 2 * BLOCK,
      "queued bytes held by the server stay near 64 KiB")
    t.diag("server blocks with a parked writer: " .. last)
    c:close()
    t.ok(util.wait_until(function() return stats(saddr).blocks == 0 end),
      "after the client closed, no block is in use")
    t.is(s:stop(), 0, "exit 0")
  end, 120)

t.test("twenty stalled clients at once: memory bounded per connection",
  function()
    local n = util.under_valgrind() and 5 or 20
    local s, saddr = start("echo")
    local rss0 = util.rss_kib(s.proc.pid)
    local clients, stalled, totals = {}, 0, {}
    local pending = n
    for i = 1, n do
      clients[i] = s:connect()
      coronet.spawn(function()
        local total, h, why = flood(clients[i], 64 * 1024 * 1024)
        if why == "timeout" then stalled = stalled + 1 end
        totals[i] = { total, h }
        pending = pending - 1
      end)
    end
    util.wait_until(function() return pending == 0 end, 60)
    t.is(stalled, n, "all " .. n .. " clients stalled")
    local st = stats(saddr)
    t.is(st.connections, n + 1, n .. " clients and the stats connection")
    t.cmp_ok(st.blocks, "<=", 12 * n, "server blocks stay bounded")
    local rss1 = util.rss_kib(s.proc.pid)
    t.diag(string.format("%d stalled clients: %d blocks (%.1f per conn); "
      .. "RSS %d -> %d KiB", n, st.blocks, st.blocks / n, rss0, rss1))
    t.cmp_ok(rss1 - rss0, "<", 64 * 1024, "server RSS grew less than 64 MiB")
    local good = 0
    pending = n
    for i = 1, n do
      coronet.spawn(function()
        local got, h = drain(clients[i], totals[i][1])
        if got == totals[i][1] and h == totals[i][2] then good = good + 1 end
        clients[i]:close()
        pending = pending - 1
      end)
    end
    util.wait_until(function() return pending == 0 end, 60)
    t.is(good, n, "each client gets its own bytes back, unchanged")
    t.ok(util.wait_until(function()
      local x = stats(saddr)
      return x.blocks == 0 and x.connections == 1
    end), "after the clients closed: no block, no connection left")
    t.is(s:stop(), 0, "exit 0")
  end, 180)

t.test("smaller --read-buffer and --write-buffer give smaller bounds",
  function()
    local s, saddr = start("echo",
      { "--read-buffer", "16k", "--write-buffer", "16k" })
    local c = s:connect()
    local total, h, why = flood(c)
    t.is(why, "timeout", "the client's writes stalled")
    local st = stats(saddr)
    t.cmp_ok(st.blocks, "<=", 5, "server blocks stay near 16 + 16 KiB")
    t.diag("server blocks with 16k buffers: " .. st.blocks)
    local got, gh = drain(c, total)
    t.is(got, total, "every byte comes back")
    t.ok(gh == h, "unchanged (hash)")
    c:close()
    t.is(s:stop(), 0, "exit 0")
  end, 120)

t.done()
