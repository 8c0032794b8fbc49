-- coronet.admin: seeing inside a running server. coronet.tasks() and
-- coronet.stats() come from here; with --admin ADDR the host runs start()
-- in every worker, and the first one serves over HTTP (coronet.http):
--   GET /         a short page
--   GET /metrics  Prometheus text format: every worker's counters and
--                 gauges (label worker="N") and the process's
--   GET /tasks    every task of every worker: a text table, or JSON with
--                 ?format=json (or Accept: application/json)
-- Anything but GET and HEAD gets 405; large requests get 414 or 431.
-- Each worker answers for itself: the serving worker asks the others over
-- the bus (a topic of this process's own) and waits for them a moment;
-- a worker that does not answer in time (stuck in a loop) is reported
-- with worker_up 0.
local coronet = require "coronet"
local C = require "coronet.c.admin"
local sched = require "coronet.c.sched"
local host = require "coronet.c.host"
local format, concat, sort, gsub, byte, find, sub, rep = string.format,
  table.concat, table.sort, string.gsub, string.byte, string.find,
  string.sub, string.rep
local pairs, ipairs, type, tostring, tonumber, floor = pairs, ipairs, type,
  tostring, tonumber, math.floor
local next, pcall, setmetatable, getmetatable, loadstring, setfenv, newproxy
  = next, pcall, setmetatable, getmetatable, loadstring, setfenv, newproxy
local getinfo, traceback = debug.getinfo, debug.traceback

local _M = { _VERSION = "0.1.0" }

local ANSWER_WAIT = 2 -- seconds the serving worker waits for the others

-- -- Garbage collection cycles ----------------------------------------------

-- A canary that a collection frees: its finalizer counts the cycle and
-- sets the next one.
local gc_cycles = 0
local function canary()
  local p = newproxy(true)
  getmetatable(p).__gc = function()
    gc_cycles = gc_cycles + 1
    canary()
  end
end
canary()

-- -- This worker ------------------------------------------------------------

-- moddir: where coronet's own modules live; their frames are not where a
-- task is parked from the script's point of view.
local moddir = "@" .. (package.path:match("^([^;]*)/%?%.lua;") or "")
  .. "/coronet/"

-- where(co) -> "file:line" of the innermost frame of co in the script's
-- code (not in coronet's modules, not C), or nil.
local function where(co)
  for level = 0, 200 do
    local info = getinfo(co, level, "Sl")
    if not info then return nil end
    if info.what ~= "C" and info.currentline > 0
        and sub(info.source, 1, #moddir) ~= moddir then
      return info.short_src .. ":" .. info.currentline
    end
  end
end

-- tasks() -> one table per task of this worker: id, worker, kind, state,
-- wait, waited (seconds since it parked or became ready), deadline
-- (seconds left, if its park has one), conn, peer, buffered_in,
-- buffered_out (its connection's, if any), where (the script's line it
-- runs or is parked at) and traceback.
function _M.tasks()
  local list, now = C.tasks(), sched.now()
  for _, t in ipairs(list) do
    local co = t.co
    t.co = nil
    t.waited = now - t.since
    t.since = nil
    t.where = where(co)
    t.traceback = traceback(co, "", 0):gsub("^\n", "")
  end
  return list
end

-- stats() -> coronet.c.sched's stats() of this worker with the counters of
-- its connections (opened, accepted, closed, bytes_in, bytes_out),
-- reloads (reloads, reloads_failed), Lua heap (lua_bytes, lua_peak,
-- gc_cycles), loop (lag_sum, stalls, stopped: tasks the slice stopped).
function _M.stats()
  local st = sched.stats()
  for k, v in pairs(C.counters()) do st[k] = v end
  local ls = host.loop_stats()
  st.lua_bytes, st.lua_peak = ls.lua_bytes, ls.lua_peak
  st.stalls, st.stopped, st.lag_max = ls.stalls, ls.stopped, ls.lag_max
  st.gc_cycles = gc_cycles
  return st
end

-- -- Values between workers -------------------------------------------------

-- encode(v) -> Lua source of v: numbers, strings, booleans and tables of
-- them.
local function encode(v)
  local tv = type(v)
  if tv == "string" then return format("%q", v) end
  if tv == "number" then
    if v == floor(v) and v > -2 ^ 53 and v < 2 ^ 53 then
      return format("%d", v)
    end
    return format("%.17g", v)
  end
  if tv ~= "table" then return tostring(v) end
  local parts = {}
  for k, x in pairs(v) do
    parts[#parts + 1] = "[" .. encode(k) .. "]=" .. encode(x)
  end
  return "{" .. concat(parts, ",") .. "}"
end

local function decode(s)
  local f = loadstring("return " .. s)
  if not f then return nil end
  setfenv(f, {})
  local ok, v = pcall(f)
  return ok and v or nil
end

-- snapshot(what) -> this worker's stats() or tasks()
local function snapshot(what)
  return what == "tasks" and _M.tasks() or _M.stats()
end

local topic -- this process's request topic (the pid keeps it local)
local asked = 0 -- requests made: names their reply topics

-- gather(what) -> list by worker id of every worker's snapshot (nil for a
-- worker that did not answer in time), and the worker count.
local function gather(what)
  local n = host.info().workers
  if n == 1 then return { snapshot(what) }, 1 end
  local bus = require "coronet.bus"
  asked = asked + 1
  local reply = topic .. ".reply." .. asked
  local sub = bus.subscribe(reply)
  bus.publish(topic, what .. "\t" .. reply)
  local list, got = {}, 0
  local deadline = coronet.now() + ANSWER_WAIT
  while got < n do
    local msg = sub:recv(math.max(0, deadline - coronet.now()))
    if not msg then break end
    local w, data = msg:match("^(%d+)\t(.*)$")
    w = tonumber(w)
    if w and not list[w] then
      list[w] = decode(data)
      got = got + 1
    end
  end
  sub:close()
  return list, n
end

-- agent answers the serving worker's requests, which come on sub, until
-- shutdown.
local function agent(worker, sub)
  local bus = require "coronet.bus"
  local stop = coronet.stopping()
  while true do
    local msg = coronet.select {
      { recv = sub, fn = function(m) return m end },
      { recv = stop, fn = function() return false end },
    }
    if not msg then break end
    local what, reply = msg:match("^(%w+)\t(.*)$")
    if what then
      bus.publish(reply, worker .. "\t" .. encode(snapshot(what)))
    end
  end
  sub:close()
end

-- -- Prometheus text format -------------------------------------------------

local function esc_label(s)
  return (gsub(tostring(s), '[\\"\n]', { ["\\"] = "\\\\", ['"'] = '\\"',
    ["\n"] = "\\n" }))
end

local function esc_help(s)
  return (gsub(s, "[\\\n]", { ["\\"] = "\\\\", ["\n"] = "\\n" }))
end

local function number(v)
  if v ~= v then return "NaN" end
  if v == math.huge then return "+Inf" end
  if v == -math.huge then return "-Inf" end
  if v == floor(v) and v > -2 ^ 53 and v < 2 ^ 53 then
    return format("%d", v)
  end
  return format("%.17g", v)
end

local function labels(l)
  if not l or #l == 0 then return "" end
  local parts = {}
  for i = 1, #l, 2 do
    parts[#parts + 1] = l[i] .. '="' .. esc_label(l[i + 1]) .. '"'
  end
  return "{" .. concat(parts, ",") .. "}"
end

-- A Metrics collects families: m:family(name, type, help) then
-- m:sample(suffix, labels, value) for each of its samples; labels is a
-- flat list { "name", value, ... }.
local Metrics = {}
Metrics.__index = Metrics

function Metrics:family(name, kind, help)
  local out = self.out
  self.name = name
  out[#out + 1] = "# HELP " .. name .. " " .. esc_help(help)
  out[#out + 1] = "# TYPE " .. name .. " " .. kind
  return self
end

function Metrics:sample(suffix, l, v)
  local out = self.out
  out[#out + 1] = self.name .. suffix .. labels(l) .. " " .. number(v or 0)
  return self
end

-- per_worker(m, name, kind, help, field) adds one sample per worker of
-- stats field (a function of the stats, or a key).
local function per_worker(m, stats, name, kind, help, field)
  m:family(name, kind, help)
  for w, st in pairs(stats) do
    local v = type(field) == "function" and field(st) or st[field]
    m:sample("", { "worker", w }, v)
  end
end

local WAITS = { "other", "read", "write", "sleep", "channel", "bus", "dial",
  "file", "process" }

-- The families of every worker's stats: { name, type, help, field }.
local WORKER_FAMILIES = {
  { "coronet_connections_open", "gauge", "Connections open (pipes "
    .. "included).", "connections" },
  { "coronet_connections_opened_total", "counter", "Connections opened: "
    .. "accepted, dialed and pipes.", "opened" },
  { "coronet_connections_accepted_total", "counter", "Connections accepted "
    .. "from listeners.", "accepted" },
  { "coronet_connections_closed_total", "counter", "Connections closed.",
    "closed" },
  { "coronet_bytes_received_total", "counter", "Bytes read from sockets.",
    "bytes_in" },
  { "coronet_bytes_sent_total", "counter", "Bytes written to sockets.",
    "bytes_out" },
  { "coronet_tasks", "gauge", "Tasks alive.", "tasks" },
  { "coronet_task_resumes_total", "counter", "Times a task was resumed.",
    "resumes" },
  { "coronet_loop_turns_total", "counter", "Loop turns that ran tasks.",
    "turns" },
  { "coronet_loop_long_turns_total", "counter", "Turns that ended on their "
    .. "time budget with tasks still ready.", "long_turns" },
  { "coronet_run_queue_length", "gauge", "Tasks ready to run.", "runq" },
  { "coronet_timers", "gauge", "Pending timers and task deadlines.",
    "heap" },
  { "coronet_loop_stalls_total", "counter", "Times the watchdog saw the "
    .. "loop not turn for the task slice.", "stalls" },
  { "coronet_tasks_stopped_total", "counter", "Tasks stopped by the task "
    .. "slice.", "stopped" },
  { "coronet_loop_turn_max_seconds", "gauge", "The longest loop turn so "
    .. "far.", "lag_max" },
  { "coronet_reloads_total", "counter", "Reloads of the script.",
    "reloads" },
  { "coronet_reloads_failed_total", "counter", "Reloads that failed (the "
    .. "old handler stayed).", "reloads_failed" },
  { "coronet_lua_memory_bytes", "gauge", "Lua heap.", "lua_bytes" },
  { "coronet_lua_memory_peak_bytes", "gauge", "Largest Lua heap so far.",
    "lua_peak" },
  { "coronet_lua_gc_cycles_total", "counter", "Lua garbage collection "
    .. "cycles completed.", "gc_cycles" },
  { "coronet_buffer_blocks", "gauge", "Buffer blocks in use.", "blocks" },
  { "coronet_buffer_blocks_free", "gauge", "Buffer blocks kept for reuse.",
    "free_blocks" },
}

-- lag histogram: bucket 1 holds lags under 1 us, bucket k lags in
-- [2^(k-2), 2^(k-1)) us, the last one the rest.
local function lag_family(m, stats)
  m:family("coronet_loop_lag_seconds", "histogram", "Time from a task "
    .. "becoming ready to its resume.")
  for w, st in pairs(stats) do
    local sum, lag = 0, st.lag or {}
    for k = 1, #lag do
      sum = sum + lag[k]
      local le = k == #lag and "+Inf" or number(2 ^ (k - 1) * 1e-6)
      m:sample("_bucket", { "worker", w, "le", le }, sum)
    end
    m:sample("_sum", { "worker", w }, st.lag_sum)
    m:sample("_count", { "worker", w }, sum)
  end
end

local function process_families(m, p)
  m:family("coronet_open_fds", "gauge", "File descriptors the process has "
    .. "open."):sample("", nil, p.fds)
  if p.max_fds then
    m:family("coronet_max_fds", "gauge", "The process's limit of open "
      .. "file descriptors."):sample("", nil, p.max_fds)
  end
  m:family("coronet_resident_memory_bytes", "gauge", "The process's "
    .. "resident memory (RSS)."):sample("", nil, p.rss)
  m:family("coronet_heap_trims_total", "counter", "Times the C heap's "
    .. "freed memory was given back to the system."):sample("", nil,
    p.heap.trims)
  m:family("coronet_heap_released_bytes_total", "counter", "Resident "
    .. "bytes those trims gave back."):sample("", nil, p.heap.released)
  if p.heap.in_use > 0 then
    m:family("coronet_heap_in_use_bytes", "gauge", "Bytes the C heap has "
      .. "handed out (buffers, connections, TLS sessions)."):sample("", nil,
      p.heap.in_use)
  end
  local b = p.bus
  m:family("coronet_bus_published_total", "counter", "Messages published "
    .. "on coronet.bus."):sample("", nil, b.published)
  m:family("coronet_bus_delivered_total", "counter", "Bus messages given to "
    .. "subscriptions."):sample("", nil, b.delivered)
  m:family("coronet_bus_dropped_total", "counter", "Bus messages dropped "
    .. "from full subscriptions."):sample("", nil, b.dropped)
  m:family("coronet_bus_topics", "gauge", "Bus topics with subscribers.")
    :sample("", nil, b.topics)
  local state, r = require("coronet.c.busredis").status()
  if state ~= "local" then -- --bus: the bus over Redis
    m:family("coronet_bus_redis_up", "gauge", "Whether the bus reaches the "
      .. "other processes through Redis now."):sample("", nil,
      state == "up" and 1 or 0)
    for _, f in ipairs {
      { "published", "Messages Redis took from this process." },
      { "received", "Messages from other processes delivered here." },
      { "dropped", "Messages dropped from the full outbox." },
      { "lost", "Messages sent but unconfirmed when a connection failed." },
      { "outages", "Times the bus over Redis went down." } } do
      m:family("coronet_bus_redis_" .. f[1] .. "_total", "counter", f[2])
        :sample("", nil, r[f[1]])
    end
    m:family("coronet_bus_redis_outbox", "gauge", "Messages waiting for "
      .. "Redis."):sample("", nil, r.outbox)
  end
  local g = p.groups
  m:family("coronet_groups", "gauge", "Connection groups (coronet.group)."):
    sample("", nil, g.groups)
  m:family("coronet_group_members", "gauge", "Members of all groups."):
    sample("", nil, g.members)
  m:family("coronet_group_members_dropped_total", "counter", "Group members "
    .. "closed at their limit."):sample("", nil, g.dropped)
  for _, f in ipairs {
    { "coronet_shared_dict_bytes", "Bytes a shared dictionary uses.",
      "used" },
    { "coronet_shared_dict_capacity_bytes", "A shared dictionary's "
      .. "capacity.", "capacity" },
    { "coronet_shared_dict_entries", "Keys in a shared dictionary.",
      "count" } } do
    m:family(f[1], "gauge", f[2])
    for _, d in ipairs(p.shared) do
      m:sample("", { "dict", d.name }, d[f[3]])
    end
  end
end

-- collectors: functions(m) that add families of their own (coronet.redis,
-- ...): _M.collect(fn) adds one.
local collectors = {}
function _M.collect(fn) collectors[#collectors + 1] = fn end

-- metrics() -> the Prometheus text exposition of every worker and the
-- process.
function _M.metrics()
  local stats, n = gather("stats")
  local m = setmetatable({ out = {} }, Metrics)
  m:family("coronet_info", "gauge", "coronet's version.")
    :sample("", { "version", coronet._VERSION or _M._VERSION,
      "luajit", jit and jit.version or "" }, 1)
  m:family("coronet_workers", "gauge", "Worker threads."):sample("", nil, n)
  m:family("coronet_worker_up", "gauge", "Whether the worker answered "
    .. "this scrape in time.")
  for w = 1, n do m:sample("", { "worker", w }, stats[w] and 1 or 0) end
  for _, f in ipairs(WORKER_FAMILIES) do
    per_worker(m, stats, f[1], f[2], f[3], f[4])
  end
  m:family("coronet_parks_total", "counter", "Times a task parked, by what "
    .. "it waited for.")
  for w, st in pairs(stats) do
    for _, k in ipairs(WAITS) do
      m:sample("", { "worker", w, "wait", k }, st.parks and st.parks[k])
    end
  end
  lag_family(m, stats)
  process_families(m, C.process())
  for _, fn in ipairs(collectors) do fn(m) end
  return concat(m.out, "\n") .. "\n"
end

-- -- /tasks -----------------------------------------------------------------

-- all_tasks() -> every worker's tasks, by worker then id, and the workers
-- that did not answer.
local function all_tasks()
  local by, n = gather("tasks")
  local list, missing = {}, {}
  for w = 1, n do
    if by[w] then
      for _, t in ipairs(by[w]) do list[#list + 1] = t end
    else
      missing[#missing + 1] = w
    end
  end
  sort(list, function(a, b)
    if a.worker ~= b.worker then return a.worker < b.worker end
    return a.id < b.id
  end)
  return list, missing
end

local function json(v)
  local tv = type(v)
  if tv == "string" then
    return '"' .. gsub(v, '[%c"\\]', function(c)
      return c == '"' and '\\"' or c == "\\" and "\\\\"
        or format("\\u%04x", byte(c))
    end) .. '"'
  elseif tv == "number" then
    return number(v)
  elseif tv == "boolean" then
    return tostring(v)
  elseif tv == "table" then
    local parts = {}
    if #v > 0 or next(v) == nil then
      for i = 1, #v do parts[i] = json(v[i]) end
      return "[" .. concat(parts, ",") .. "]"
    end
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = tostring(k) end
    sort(keys)
    for i, k in ipairs(keys) do parts[i] = json(k) .. ":" .. json(v[k]) end
    return "{" .. concat(parts, ",") .. "}"
  end
  return "null"
end
_M.json = json

local COLUMNS = { { "ID", "id" }, { "WORKER", "worker" }, { "KIND", "kind" },
  { "STATE", "state" }, { "WAIT", "wait" }, { "FOR", "waited" },
  { "CONN", "conn" }, { "PEER", "peer" }, { "IN", "buffered_in" },
  { "OUT", "buffered_out" }, { "WHERE", "where" } }

-- table_text(list) -> the tasks as a plain text table.
local function table_text(list)
  local rows = { {} }
  for i, c in ipairs(COLUMNS) do rows[1][i] = c[1] end
  for _, t in ipairs(list) do
    local row = {}
    for i, c in ipairs(COLUMNS) do
      local v = t[c[2]]
      if c[2] == "waited" then v = format("%.3fs", v) end
      if c[2] == "wait" and t.state ~= "parked" then v = "-" end
      row[i] = v == nil and "-" or tostring(v)
    end
    rows[#rows + 1] = row
  end
  local width = {}
  for _, row in ipairs(rows) do
    for i, s in ipairs(row) do
      if #s > (width[i] or 0) then width[i] = #s end
    end
  end
  local out = {}
  for r, row in ipairs(rows) do
    local cells = {}
    for i, s in ipairs(row) do
      cells[i] = i == #row and s or s .. rep(" ", width[i] - #s)
    end
    out[r] = concat(cells, "  ")
  end
  return concat(out, "\n") .. "\n"
end

-- -- The HTTP side ----------------------------------------------------------

-- Small requests only: a GET has no body; a small one is dropped before
-- the 405, a larger one gets 413.
local HTTP_OPTS = { max_target = 1024, max_head = 4096, max_fields = 32,
  max_body = 4096, discard = 4096, idle = 30, header_timeout = 5,
  body_timeout = 5 }

local started = sched.now()

local function html(s)
  return (gsub(s, "[<>&\"]", { ["<"] = "&lt;", [">"] = "&gt;",
    ["&"] = "&amp;", ['"'] = "&quot;" }))
end

local function page(res)
  local st = _M.stats()
  res:header("Content-Type", "text/html; charset=utf-8")
  res:finish(format([[<!DOCTYPE html>
<html><head><title>coronet admin</title></head><body>
<h1>coronet %s</h1>
<p>%s, %d worker(s), up %d s. Worker %d: %d connections, %d tasks, Lua
heap %d KiB.</p>
<ul>
<li><a href="/metrics">/metrics</a>: Prometheus text format</li>
<li><a href="/tasks">/tasks</a>: every task, where it waits
(<a href="/tasks?format=json">JSON</a>)</li>
</ul>
</body></html>
]], _M._VERSION, html(host.info().script), host.info().workers,
    sched.now() - started, st.worker, st.connections, st.tasks,
    st.lua_bytes / 1024))
end

local function tasks_page(req, res)
  local list, missing = all_tasks()
  local accept = req:header("accept") or ""
  if (req.query or ""):find("format=json", 1, true)
      or accept:find("application/json", 1, true) then
    res:header("Content-Type", "application/json")
    return res:finish(json { tasks = list, missing_workers = missing } .. "\n")
  end
  local text = table_text(list)
  if #missing > 0 then
    text = text .. "(no answer from worker " .. concat(missing, ", ") .. ")\n"
  end
  res:header("Content-Type", "text/plain; charset=utf-8")
  res:finish(text)
end

local ROUTES = {
  ["/"] = function(_, res) page(res) end,
  ["/metrics"] = function(_, res)
    res:header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
    res:finish(_M.metrics())
  end,
  ["/tasks"] = tasks_page,
}

local function handle(req, res)
  if req.method ~= "GET" and req.method ~= "HEAD" then
    res:status(405):header("Allow", "GET, HEAD")
    res:header("Connection", "close")
    return res:finish("the admin port serves GET only\n")
  end
  local route = ROUTES[req.path]
  if not route then
    res:status(404)
    return res:finish("not found: try /, /metrics or /tasks\n")
  end
  route(req, res)
end
_M.handle = handle

-- start(addr): --admin. Every worker answers for itself; the first one
-- serves addr, logs "admin on ADDR", and ends the process if it cannot.
function _M.start(addr)
  local info = host.info()
  topic = "coronet.admin." .. C.process().pid
  if info.workers > 1 then -- subscribed before the main chunk runs, so
    -- before the process says it listens: no request can come before it
    coronet.spawn(agent, info.worker, require("coronet.bus").subscribe(topic))
  end
  if info.worker ~= 1 then return end
  local http = require "coronet.http"
  local net = require "coronet.net"
  local log = require "coronet.log"
  local l, err = net.listen(addr, http.server(handle, HTTP_OPTS))
  if not l then
    log.error("--admin %s", err)
    return coronet.exit(1)
  end
  _M.listener = l -- kept: it serves until the process ends
  log.info("admin on %s", l:addr())
end

return _M
