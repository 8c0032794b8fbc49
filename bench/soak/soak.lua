-- bench/soak/soak.lua: the soak test's driver (`make soak`; bench/soak.sh
-- starts it):
--   coronet --run bench/soak/soak.lua SECONDS OUTDIR
-- Starts each service (scripts/echo.lua, scripts/chat.lua, and
-- bench/soak/web.lua for HTTP and WebSocket) as a server of its own under
-- bench/soak/serve.lua, with --admin; drives mixed traffic at them for
-- SECONDS (echo round trips and churn; chat sessions with /nick and /who;
-- HTTP on kept-alive and on new connections; WebSocket sessions), reloads
-- every server every SOAK_RELOAD seconds and, when redis-server is
-- installed, runs the chat with --bus on a Redis of its own that it
-- restarts every SOAK_REDIS seconds (default 180). Every SOAK_INTERVAL
-- seconds it samples each server: RSS, open fds, Lua heap (after a full
-- collection), tasks, connections and buffer blocks, and scrapes its
-- /metrics. Writes OUTDIR/samples.csv and OUTDIR/verdict.txt; exits 1
-- when a resource trends upward after the warm-up, a client saw an
-- error, a reload failed, a scrape failed or a server did not stop
-- cleanly.
--
-- How a trend is judged: samples of the warm-up (SOAK_WARMUP seconds, by
-- default a tenth of the run and at least 30 s) are dropped; the rest are
-- cut in thirds; a metric grows when the median of the last third passes
-- the median of the first third by more than its allowance: the larger of
-- an absolute floor (RSS 4 MiB, 4 fds, Lua 1 MiB, 16 tasks) and 10 % of
-- the first third's median. Medians make one odd sample harmless; a leak,
-- however slow, moves the whole last third. The least-squares slope is
-- reported beside it (per hour).
--
-- Parts plug in: SERVICES lists the servers to start, LOADS the traffic
-- (each a function run in tasks until the end); a part whose module or
-- program is missing says so and is skipped.
local root = arg[0]:match("^(.*)/bench/soak/[^/]*$") or "."
package.path = root .. "/t/?.lua;" .. package.path
local coronet = require "coronet"
local net = require "coronet.net"
local io_ = require "coronet.io"
local process = require "coronet.process"
local server = require "lib.server"
local util = require "lib.util"
local format, concat, floor = string.format, table.concat, math.floor
local random = math.random

local SECONDS = assert(tonumber(arg[1]), "usage: soak.lua SECONDS OUTDIR")
local OUT = assert(arg[2], "usage: soak.lua SECONDS OUTDIR")
local function env(name, default)
  return tonumber(os.getenv(name) or "") or default
end
local INTERVAL = env("SOAK_INTERVAL", 10)
local RELOAD = env("SOAK_RELOAD", 10)
local WARMUP = env("SOAK_WARMUP", math.max(30, SECONDS / 10))
local ECHO_CONNS = env("SOAK_ECHO_CONNS", 16)
local CHAT_MEMBERS = env("SOAK_CHAT_MEMBERS", 40)
local HTTP_CLIENTS = env("SOAK_HTTP_CLIENTS", 8)
local WS_CLIENTS = env("SOAK_WS_CLIENTS", 8)
local REDIS_EVERY = env("SOAK_REDIS", 180)
math.randomseed(env("SOAK_SEED", os.time()))

local METRICS = { "rss_kib", "fds", "lua_kib", "tasks", "connections",
  "blocks" }
-- judged metrics and their absolute floors
local FLOORS = { rss_kib = 4096, fds = 4, lua_kib = 1024, tasks = 16 }
local JUDGED = { "rss_kib", "fds", "lua_kib", "tasks" }

local stop = false -- set at the end: every load finishes its round
local counts = {}  -- "load what" -> n
local errors = {}  -- reason -> n
local function count(what, n) counts[what] = (counts[what] or 0) + (n or 1) end
local function fail(why)
  errors[why] = (errors[why] or 0) + 1
  if errors[why] == 1 then io.stderr:write("soak: error: ", why, "\n") end
end

-- pause(s) sleeps s seconds, less when the run ends.
local function pause(s)
  coronet.sleep(stop and 0 or s)
end

-- -- Services -------------------------------------------------------------

-- A Redis of the soak's own, for the chat's --bus, when redis-server is
-- installed.
local rs = require "lib.redis_server"
local redis = rs.bin and rs.start()

-- SERVICES: name, script and more options.
local SERVICES = {
  { name = "echo", script = "scripts/echo.lua" },
  { name = "chat", script = "scripts/chat.lua",
    opts = redis and { "--bus", redis.addr } },
  { name = "web", script = "bench/soak/web.lua" },
}

local servers = {} -- name -> server (lib.server), with .stats_addr

local function start_service(svc)
  local opts = { "--admin", "127.0.0.1:0" }
  for _, o in ipairs(svc.opts or {}) do opts[#opts + 1] = o end
  local s = server.start { script = root .. "/bench/soak/serve.lua",
    args = { root .. "/" .. svc.script }, opts = opts, edge = false }
  local line = assert(s:wait_log("soak stats on (%S+)"), "no stats line")
  s.stats_addr = line:match("soak stats on (%S+)")
  s.admin = assert(s:wait_log("admin on (%S+)"), "no admin line")
    :match("admin on (%S+)")
  s.name = svc.name
  servers[svc.name] = s
  servers[#servers + 1] = s
end

-- -- Loads ------------------------------------------------------------------

local LOADS = {}

-- echo: persistent connections doing round trips of 1 B..16 KiB.
function LOADS.echo(s)
  local c, err = net.dial(s.addr, { timeout = 10 })
  if not c then return fail("echo dial: " .. err) end
  c:set_timeout(10)
  while not stop do
    local n = random(1, 16384)
    local msg = util.random_bytes(n, random(1, 2 ^ 30))
    local ok, werr = c:write(msg)
    if not ok then return fail("echo write: " .. werr) end
    local got, rerr = io_.read_full(c, n)
    if got ~= msg then
      c:close()
      return fail("echo read: " .. tostring(rerr or "bytes differ"))
    end
    count("echo round trips")
    pause(random() * 0.02)
  end
  c:close()
end

-- echo_churn: new connections, a few lines each, ended by a half-close.
function LOADS.echo_churn(s)
  while not stop do
    local c, err = net.dial(s.addr, { timeout = 10 })
    if not c then
      fail("echo churn dial: " .. err)
    else
      c:set_timeout(10)
      local sent = {}
      for i = 1, random(1, 4) do sent[i] = "line " .. i .. "\n" end
      sent = concat(sent)
      c:write(sent)
      c:close_write()
      local got, rerr = io_.read_all(c)
      if got ~= sent then
        fail("echo churn: " .. tostring(rerr or "bytes differ"))
      end
      c:close()
      count("echo connections")
    end
    pause(0.05)
  end
end

-- chat: a member joins, talks (lines, /nick, /who) for 2..30 s, quits,
-- and its place is taken by a new one; a reader task drains what it gets.
local function chat_member(s, slot)
  local c, err = net.dial(s.addr, { timeout = 10 })
  if not c then return fail("chat dial: " .. err) end
  c:set_timeout(20)
  local welcome = c:read_line()
  if not (welcome and welcome:find("^%* welcome")) then
    c:close()
    return fail("chat: no welcome: " .. tostring(welcome))
  end
  local done, bye = false, false
  coronet.spawn(function()
    while true do
      local line, rerr = c:read_line()
      if not line then
        if not bye then fail("chat read: " .. rerr) end
        break
      end
      if line == "* bye" then bye = true end
      count("chat lines received")
    end
    done = true
  end)
  local ends = coronet.now() + 2 + random() * 28
  while not stop and coronet.now() < ends do
    local r = random()
    local line = r < 0.05 and format("/nick soak%d_%d", slot, random(1e6))
      or r < 0.08 and "/who"
      or format("hello from %d: %s", slot, string.rep("x", random(0, 200)))
    if not c:write(line .. "\n") then
      fail("chat write")
      break
    end
    count("chat lines sent")
    pause(0.2 + random() * 0.8)
  end
  bye = true -- from here on, eof is expected
  c:write("/quit\n")
  local deadline = coronet.now() + 20
  while not done and coronet.now() < deadline do coronet.sleep(0.01) end
  if not done then fail("chat: no eof after /quit") end
  c:close()
  count("chat sessions")
end

function LOADS.chat(s, slot)
  while not stop do chat_member(s, slot) end
end

local http = require "coronet.http"
local websocket = require "coronet.websocket"
local httpc = require "lib.httpc"

-- http: requests on kept-alive connections (coronet.http's client pool):
-- GET /, POST /echo of 0..8 KiB, GET /big.
function LOADS.http(s)
  local base = "http://" .. s.addr
  while not stop do
    local r = random()
    local body = r < 0.4 and util.random_bytes(random(0, 8192),
      random(1, 2 ^ 30)) or nil
    local res, err = http.request { method = body and "POST" or "GET",
      url = base .. (body and "/echo" or r < 0.5 and "/big" or "/"),
      body = body, timeout = 20 }
    local got = res and res:read_all()
    if not res or res.status ~= 200 then
      fail("http: " .. tostring(err or res.status))
    elseif body and got ~= body or not body and not got then
      fail("http: the body differs")
    else
      count("http requests (kept alive)")
    end
    pause(random() * 0.05)
  end
end

-- http_new: one request per connection, Connection: close.
function LOADS.http_new(s)
  while not stop do
    local c, err = net.dial(s.addr, { timeout = 10 })
    if not c then
      fail("http dial: " .. err)
    else
      c:set_timeout(20)
      c:write(httpc.req("GET", "/", { Connection = "close" }))
      local res, rerr = httpc.read(c)
      if not res or res.body ~= "hello\n" then
        fail("http new: " .. tostring(rerr or res.status))
      else
        count("http requests (new connections)")
      end
      c:close()
    end
    pause(0.05)
  end
end

-- ws: WebSocket sessions of 10..200 messages of 1 B..16 KiB, text and
-- binary.
function LOADS.ws(s)
  while not stop do
    local ws, err = websocket.dial("ws://" .. s.addr .. "/ws",
      { timeout = 20 })
    if not ws then
      fail("ws dial: " .. tostring(err))
      pause(1)
    else
      for _ = 1, random(10, 200) do
        if stop then break end
        local binary = random() < 0.5
        local msg = binary and util.random_bytes(random(1, 16384),
          random(1, 2 ^ 30)) or string.rep("w", random(1, 16384))
        local ok, werr = ws:send(msg, binary and "binary" or nil)
        local got, kind = ws:recv(20)
        if not ok or got ~= msg
            or kind ~= (binary and "binary" or "text") then
          fail("ws: " .. tostring(werr or kind))
          break
        end
        count("ws messages")
        pause(random() * 0.02)
      end
      ws:close()
      count("ws sessions")
    end
  end
end

-- which loads run, on which service, in how many tasks
local PLAN = {
  { load = "echo", service = "echo", tasks = ECHO_CONNS },
  { load = "echo_churn", service = "echo", tasks = 2 },
  { load = "chat", service = "chat", tasks = CHAT_MEMBERS },
  { load = "http", service = "web", tasks = HTTP_CLIENTS },
  { load = "http_new", service = "web", tasks = 2 },
  { load = "ws", service = "web", tasks = WS_CLIENTS },
}

-- -- Samples ------------------------------------------------------------------

local function stats(s)
  if not s.stats_conn then
    s.stats_conn = assert(net.dial(s.stats_addr, { timeout = 10 }))
    s.stats_conn:set_timeout(10)
  end
  s.stats_conn:write("?\n")
  local line = s.stats_conn:read_line() or ""
  local st = {}
  for k, v in line:gmatch("([%w_]+)=(%d+)") do st[k] = tonumber(v) end
  return st
end

local function fds(pid)
  local p = assert(process.spawn { "sh", "-c", "ls /proc/" .. pid
    .. "/fd | wc -l", stdout = "pipe" })
  local out = p.stdout:read_line()
  p:wait(10)
  return tonumber(out)
end

-- scrape(s) -> /metrics of s: whether it answered 200, and the sum over
-- workers of the samples of family name (a function).
local function scrape(s)
  local c = net.dial(s.admin, { timeout = 10 })
  if not c then return false end
  c:set_timeout(10)
  c:write(httpc.req("GET", "/metrics"))
  local res = httpc.read(c)
  c:close()
  if not res or res.status ~= 200 then return false end
  return true, function(name)
    local sum
    for v in res.body:gmatch("\n" .. name .. "[{ ][^\n]- (%S+)") do
      sum = (sum or 0) + (tonumber(v) or 0)
    end
    return sum
  end
end

local rows = {} -- { t = seconds, [server name] = { metric = value } }

local function sample(t0)
  local row = { t = floor(coronet.now() - t0 + 0.5) }
  for _, s in ipairs(servers) do
    local st = stats(s)
    st.rss_kib = util.rss_kib(s.proc.pid)
    st.fds = fds(s.proc.pid)
    local ok, metric = scrape(s)
    if ok then
      count("scrapes")
      st.metrics_fds = metric("coronet_open_fds")
    else
      fail(s.name .. ": /metrics did not answer 200")
    end
    row[s.name] = st
  end
  rows[#rows + 1] = row
  local parts = { format("%5ds", row.t) }
  for _, s in ipairs(servers) do
    local st = row[s.name]
    parts[#parts + 1] = format("%s rss %d KiB fds %d lua %d KiB tasks %d",
      s.name, st.rss_kib or -1, st.fds or -1, st.lua_kib or -1,
      st.tasks or -1)
  end
  print(concat(parts, " | "))
  io.stdout:flush()
end

local function write_csv(path)
  local f = assert(io.open(path, "w"))
  local head = { "seconds" }
  for _, s in ipairs(servers) do
    for _, m in ipairs(METRICS) do head[#head + 1] = s.name .. "_" .. m end
  end
  f:write(concat(head, ","), "\n")
  for _, row in ipairs(rows) do
    local line = { row.t }
    for _, s in ipairs(servers) do
      for _, m in ipairs(METRICS) do line[#line + 1] = row[s.name][m] or "" end
    end
    f:write(concat(line, ","), "\n")
  end
  f:close()
end

-- write_chart(dir) writes dir/chart.gp, which gnuplot turns into
-- dir/soak.png: one panel per judged metric, a line per server, the end
-- of the warm-up marked.
local function write_chart(dir)
  local f = assert(io.open(dir .. "/chart.gp", "w"))
  f:write(format([[
set terminal pngcairo size 1200,900 font ",9" noenhanced
set output "%s/soak.png"
set datafile separator ","
set key top left
set xlabel "seconds"
set grid
set multiplot layout 2,2 title "coronet soak: %d s, reload every %g s"
]], dir, SECONDS, RELOAD))
  for _, m in ipairs(JUDGED) do
    local plots = {}
    for _, s in ipairs(servers) do
      plots[#plots + 1] = format('"%s/samples.csv" using 1:"%s_%s" with '
        .. 'linespoints title "%s"', dir, s.name, m, s.name)
    end
    f:write(format('set title "%s"\nset arrow from %g, graph 0 to %g, '
      .. 'graph 1 nohead dt 2\nplot %s\nunset arrow\n', m, WARMUP, WARMUP,
      concat(plots, ", ")))
  end
  f:write("unset multiplot\n")
  f:close()
end

-- -- Verdict ---------------------------------------------------------------

local function median(xs)
  local c = {}
  for i = 1, #xs do c[i] = xs[i] end
  table.sort(c)
  if #c == 0 then return 0 end
  local m = floor((#c + 1) / 2)
  return #c % 2 == 1 and c[m] or (c[m] + c[m + 1]) / 2
end

-- slope(ts, xs) is the least-squares slope of xs over ts, per second.
local function slope(ts, xs)
  local n, st, sx, stt, stx = #xs, 0, 0, 0, 0
  for i = 1, n do
    st, sx = st + ts[i], sx + xs[i]
    stt, stx = stt + ts[i] * ts[i], stx + ts[i] * xs[i]
  end
  local d = n * stt - st * st
  return d ~= 0 and (n * stx - st * sx) / d or 0
end

-- judge() returns the verdict lines and whether every metric held.
local function judge()
  local lines, ok = {}, true
  local ts, after = {}, {}
  for _, row in ipairs(rows) do
    if row.t >= WARMUP then
      after[#after + 1] = row
      ts[#ts + 1] = row.t
    end
  end
  if #after < 3 then
    return { format("too few samples after the %gs warm-up (%d): no "
      .. "verdict", WARMUP, #after) }, false
  end
  local third = floor(#after / 3)
  for _, s in ipairs(servers) do
    for _, m in ipairs(JUDGED) do
      local xs, first, last = {}, {}, {}
      for i, row in ipairs(after) do
        local v = row[s.name][m] or 0
        xs[i] = v
        if i <= third then first[#first + 1] = v end
        if i > #after - third then last[#last + 1] = v end
      end
      local m1, m3 = median(first), median(last)
      local allow = math.max(FLOORS[m], 0.1 * m1)
      local grows = m3 - m1 > allow
      if grows then ok = false end
      lines[#lines + 1] = format("%-5s %-8s start %9.0f end %9.0f first "
        .. "third %9.0f last third %9.0f (allowed +%.0f) slope %+.1f/h  %s",
        s.name, m, xs[1], xs[#xs], m1, m3, allow, slope(ts, xs) * 3600,
        grows and "GROWS" or "ok")
    end
  end
  return lines, ok
end

-- -- Main -------------------------------------------------------------------

local t0 = coronet.now()
for _, svc in ipairs(SERVICES) do start_service(svc) end
local wg = coronet.waitgroup()
for _, p in ipairs(PLAN) do
  for i = 1, p.tasks do
    wg:add(1)
    coronet.spawn(function()
      LOADS[p.load](servers[p.service], i)
      wg:done()
    end)
  end
end
local reloads, redis_restarts = 0, 0
coronet.spawn(function()
  while not stop do
    pause(RELOAD)
    if stop then break end
    for _, s in ipairs(servers) do s:signal("HUP") end
    reloads = reloads + 1
  end
end)
if redis then
  coronet.spawn(function()
    while not stop do
      pause(REDIS_EVERY)
      if stop then break end
      redis:kill() -- a crash, then 2 s of outage
      coronet.sleep(2)
      redis:launch()
      redis_restarts = redis_restarts + 1
    end
  end)
end

local ends = t0 + SECONDS
local next_sample = t0
while coronet.now() < ends do
  sample(t0)
  next_sample = next_sample + INTERVAL
  coronet.sleep(math.max(0, math.min(next_sample, ends) - coronet.now()))
end
sample(t0)
stop = true
if not wg:wait(60) then fail("loads did not finish within 60 s") end

local verdict, ok = judge()
local failed_reloads = 0
for _, s in ipairs(servers) do
  for _, line in ipairs(s.lines) do
    if line:find("reload failed", 1, true) then
      failed_reloads = failed_reloads + 1
    end
  end
  if s.stats_conn then s.stats_conn:close() end
  local code = s:stop()
  if code ~= 0 then fail(s.name .. " exited " .. tostring(code)) end
  local f = assert(io.open(OUT .. "/server-" .. s.name .. ".log", "w"))
  f:write(s:log(), "\n")
  f:close()
end
if redis then redis:stop() end
write_csv(OUT .. "/samples.csv")
write_chart(OUT)

local report = {}
report[#report + 1] = format("soak: %d s, %d samples every %g s, warm-up "
  .. "%g s, %d reloads of each server (%d failed), %s", SECONDS, #rows,
  INTERVAL, WARMUP, reloads, failed_reloads, redis
    and redis_restarts .. " restarts of the chat's Redis (--bus)"
    or "no redis-server: the chat without --bus")
local names = {}
for k in pairs(counts) do names[#names + 1] = k end
table.sort(names)
for _, k in ipairs(names) do
  report[#report + 1] = format("  %-22s %d", k, counts[k])
end
for _, l in ipairs(verdict) do report[#report + 1] = l end
local nerr = 0
for why, n in pairs(errors) do
  report[#report + 1] = format("error x%d: %s", n, why)
  nerr = nerr + n
end
ok = ok and nerr == 0 and failed_reloads == 0
report[#report + 1] = ok and "soak: PASS" or "soak: FAIL"
local text = concat(report, "\n") .. "\n"
io.stdout:write(text)
local f = assert(io.open(OUT .. "/verdict.txt", "w"))
f:write(text)
f:close()
os.exit(ok and 0 or 1)
