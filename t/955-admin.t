-- t/955-admin.t: --admin ADDR: /metrics in Prometheus text format (checked
-- by a strict parser written here), counters that move with traffic,
-- /tasks showing where a task is parked, refusals; coronet.stats() and
-- coronet.tasks() from a script.
local t = require "lib.tap"
local server = require "lib.server"
local httpc = require "lib.httpc"
local util = require "lib.util"
local coronet = require "coronet"
local net = require "coronet.net"
local format, concat = string.format, table.concat

local SCRIPT = "t/lib/svc_admin.lua"
local DICT = 'odd "dict" \\ name\nline two'

-- -- A strict Prometheus text format checker --------------------------------

-- parse_labels(s, i) reads {name="value",...} from s at i (just after the
-- "{"); returns the labels and the index after "}", or nil and why.
local function parse_labels(s, i)
  local labels = {}
  if s:sub(i, i) == "}" then return labels, i + 1 end
  while true do
    local name, j = s:match("^([%a_][%w_]*)=()", i)
    if not name then return nil, "bad label name at " .. s:sub(i, i + 20) end
    if name:sub(1, 2) == "__" then return nil, "reserved label " .. name end
    if labels[name] then return nil, "label " .. name .. " twice" end
    if s:sub(j, j) ~= '"' then return nil, "unquoted value of " .. name end
    j = j + 1
    local v = {}
    while true do
      local c = s:sub(j, j)
      if c == "" then return nil, "unterminated value of " .. name end
      if c == '"' then break end
      if c == "\\" then
        local e = s:sub(j + 1, j + 1)
        local map = { ["\\"] = "\\", ['"'] = '"', n = "\n" }
        if not map[e] then return nil, "bad escape \\" .. e end
        v[#v + 1] = map[e]
        j = j + 2
      else
        v[#v + 1] = c
        j = j + 1
      end
    end
    labels[name] = concat(v)
    j = j + 1
    local c = s:sub(j, j)
    if c == "}" then return labels, j + 1 end
    if c ~= "," then return nil, "junk after the value of " .. name end
    i = j + 1
  end
end

local function parse_value(s)
  if s == "NaN" then return 0 / 0 end
  if s == "+Inf" then return math.huge end
  if s == "-Inf" then return -math.huge end
  if not s:match("^[-+]?%d*%.?%d+[eE]?[-+]?%d*$") then return nil end
  return tonumber(s)
end

local function series_key(name, labels)
  local keys = {}
  for k in pairs(labels) do keys[#keys + 1] = k end
  table.sort(keys)
  local parts = { name }
  for _, k in ipairs(keys) do parts[#parts + 1] = k .. "=" .. labels[k] end
  return concat(parts, "\0")
end

local SUFFIXES = { histogram = { "_bucket", "_sum", "_count" },
  summary = { "", "_sum", "_count" } }
local TYPES = { counter = true, gauge = true, histogram = true,
  summary = true, untyped = true }

-- family_of(fams, name) -> the declared family a sample name belongs to.
local function family_of(fams, name)
  if fams[name] then return fams[name] end
  for _, suf in ipairs { "_bucket", "_sum", "_count" } do
    local base = name:sub(1, -#suf - 1)
    if name:sub(-#suf) == suf and fams[base] then
      for _, ok in ipairs(SUFFIXES[fams[base].type] or {}) do
        if ok == suf then return fams[base] end
      end
    end
  end
end

-- check_histograms adds what is wrong with each histogram to problems.
local function check_histograms(fams, problems)
  for name, f in pairs(fams) do
    if f.type == "histogram" then
      local by = {} -- labels without le -> { buckets, sum, count }
      for _, s in ipairs(f.samples) do
        local l = {}
        for k, v in pairs(s.labels) do if k ~= "le" then l[k] = v end end
        local key = series_key("", l)
        by[key] = by[key] or { buckets = {} }
        if s.name == name .. "_bucket" then
          local le = s.labels.le and parse_value(s.labels.le)
          if not le then
            problems[#problems + 1] = name .. ": a bucket without le"
          else
            table.insert(by[key].buckets, { le = le, v = s.value })
          end
        elseif s.name == name .. "_sum" then
          by[key].sum = s.value
        else
          by[key].count = s.value
        end
      end
      for key, h in pairs(by) do
        local last_le, last_v = -math.huge, 0
        for _, b in ipairs(h.buckets) do
          if b.le <= last_le then
            problems[#problems + 1] = name .. ": buckets not in order of le"
          end
          if b.v < last_v then
            problems[#problems + 1] = name .. ": buckets not cumulative"
          end
          last_le, last_v = b.le, b.v
        end
        if last_le ~= math.huge then
          problems[#problems + 1] = name .. ": no le=\"+Inf\" bucket"
        elseif h.count ~= last_v then
          problems[#problems + 1] = name .. ": _count is not the +Inf bucket"
        end
        if not h.sum then problems[#problems + 1] = name .. ": no _sum" end
        local _ = key
      end
    end
  end
end

-- check_exposition(text) -> problems (a list of strings: empty when text
-- follows the text format and this project's rules: every family has
-- HELP then TYPE before its samples, names start with coronet_, counters
-- end with _total and are not negative, a family's samples are together,
-- no series twice, histograms well formed) and the families by name.
local function check_exposition(text)
  local problems, fams, seen = {}, {}, {}
  local current -- the family whose samples come now
  local function bad(n, why, line)
    problems[#problems + 1] = format("line %d: %s: %s", n, why, line)
  end
  if text:sub(-1) ~= "\n" then problems[1] = "no newline at the end" end
  local n = 0
  for line in text:gmatch("([^\n]*)\n") do
    n = n + 1
    local kw, name, rest = line:match("^# (%u+) ([%a_:][%w_:]*) ?(.*)$")
    if kw == "HELP" then
      if fams[name] and fams[name].help then bad(n, "second HELP", line) end
      if rest:gsub("\\[\\n]", ""):find("\\", 1, true) then
        bad(n, "bad escape in HELP", line)
      end
      fams[name] = fams[name] or { samples = {} }
      fams[name].help = rest
    elseif kw == "TYPE" then
      local f = fams[name]
      if not f or not f.help then bad(n, "TYPE before HELP", line) end
      f = f or { samples = {} }
      fams[name] = f
      if f.type then bad(n, "second TYPE", line) end
      if not TYPES[rest] then bad(n, "unknown type", line) end
      if #f.samples > 0 then bad(n, "TYPE after samples", line) end
      f.type = rest
    elseif line:sub(1, 1) == "#" then
      bad(n, "a comment that is neither HELP nor TYPE", line)
    elseif line ~= "" then
      local sname, i = line:match("^([%a_:][%w_:]*)()")
      local labels = {}
      if not sname then
        bad(n, "bad metric name", line)
      else
        if line:sub(i, i) == "{" then
          local why
          labels, why = parse_labels(line, i + 1)
          if not labels then
            bad(n, why, line)
            labels = {}
          else
            i = why
          end
        end
        local v = line:sub(i):match("^ (%S+)$") or
          line:sub(i):match("^ (%S+) %-?%d+$")
        local value = v and parse_value(v)
        local f = family_of(fams, sname)
        if not value then bad(n, "bad value", line) end
        if not f or not f.type then
          bad(n, "a sample of no declared family", line)
        else
          if f ~= current and f.closed then
            bad(n, "samples of a family apart", line)
          end
          if current and current ~= f then current.closed = true end
          current = f
          local key = series_key(sname, labels)
          if seen[key] then bad(n, "the same series twice", line) end
          seen[key] = true
          if f.type == "counter" and value and value < 0 then
            bad(n, "a negative counter", line)
          end
          f.samples[#f.samples + 1] = { name = sname, labels = labels,
            value = value or 0 }
        end
      end
    end
  end
  for name, f in pairs(fams) do
    if not name:find("^coronet_") then
      problems[#problems + 1] = name .. ": not named coronet_*"
    end
    if not f.type then problems[#problems + 1] = name .. ": no TYPE" end
    if f.type == "counter" and not name:find("_total$") then
      problems[#problems + 1] = name .. ": a counter not named *_total"
    end
  end
  check_histograms(fams, problems)
  return problems, fams
end

-- value(fams, name, labels [, suffix]) -> the value of the sample of
-- family name (named name .. suffix) with those labels, or nil
local function value(fams, name, want, suffix)
  local f = fams[name]
  for _, s in ipairs(f and f.samples or {}) do
    local same = s.name == name .. (suffix or "")
    for k, v in pairs(want or {}) do
      if s.labels[k] ~= tostring(v) then same = false end
    end
    if same then return s.value end
  end
end

t.test("the checker rejects what the text format forbids", function()
  local H = "# HELP coronet_x_total x\n# TYPE coronet_x_total counter\n"
  local HG = "# HELP coronet_h h\n# TYPE coronet_h histogram\n"
  for _, case in ipairs {
    { H .. 'coronet_x_total{a="b\\q"} 1\n', "bad escape" },
    { H .. 'coronet_x_total{a="b} 1\n', "unterminated" },
    { H .. "coronet_x_total 1\ncoronet_x_total 2\n", "twice" },
    { H .. "# TYPE coronet_x_total counter\ncoronet_x_total 1\n",
      "second TYPE" },
    { "# TYPE coronet_x_total counter\ncoronet_x_total 1\n",
      "TYPE before HELP" },
    { H .. "coronet_x_total one\n", "bad value" },
    { H .. "coronet_x_total -1\n", "negative" },
    { H .. "coronet_y 1\n", "no declared family" },
    { H .. 'coronet_x_total{__a="1"} 1\n', "reserved" },
    { H .. 'coronet_x_total{a="1",a="2"} 1\n', "twice" },
    { "# HELP coronet_x x\n# TYPE coronet_x counter\ncoronet_x 1\n",
      "_total" },
    { "# HELP other_total x\n# TYPE other_total counter\nother_total 1\n",
      "coronet_" },
    { H .. 'coronet_x_total{a="1"} 1\n# HELP coronet_g g\n'
      .. '# TYPE coronet_g gauge\ncoronet_g 1\ncoronet_x_total{a="2"} 1\n',
      "apart" },
    { HG .. 'coronet_h_bucket{le="1"} 2\ncoronet_h_bucket{le="+Inf"} 1\n'
      .. "coronet_h_sum 1\ncoronet_h_count 1\n", "cumulative" },
    { HG .. 'coronet_h_bucket{le="1"} 1\ncoronet_h_sum 1\n'
      .. "coronet_h_count 1\n", "+Inf" },
    { HG .. 'coronet_h_bucket{le="+Inf"} 1\ncoronet_h_count 1\n', "_sum" },
    { H .. "coronet_x_total 1", "newline" },
  } do
    local problems = check_exposition(case[1])
    t.like(concat(problems, "; "), case[2], "rejects: " .. case[2])
  end
  local ok = check_exposition(H .. 'coronet_x_total{a="q\\"\\\\\\n"} 1\n'
    .. HG .. 'coronet_h_bucket{le="0.5"} 1\ncoronet_h_bucket{le="+Inf"} 2\n'
    .. "coronet_h_sum 3.5\ncoronet_h_count 2\n")
  t.is(concat(ok, "; "), "", "accepts a well-formed exposition")
end)

-- -- The admin port ---------------------------------------------------------

local s = server.start { script = SCRIPT,
  opts = { "--admin", "127.0.0.1:0", "--workers", "2" } }
local admin = assert(s:wait_log("admin on (%S+)"), "no admin line")
  :match("admin on (%S+)")

-- get(path [, method [, headers [, body]]]) -> the admin's response
local function get(path, method, headers, body)
  local c = assert(net.dial(admin, { timeout = 10 }))
  c:set_timeout(10)
  c:write(httpc.req(method or "GET", path, headers, body))
  local r, err = httpc.read(c, method == "HEAD")
  r = r or { err = err }
  r.closed = httpc.closed(c, 5)
  c:close()
  return r
end

local function scrape()
  local r = get("/metrics")
  local problems, fams = check_exposition(r.body or "")
  return fams, problems, r
end

t.test("/metrics is valid Prometheus text format, per worker", function()
  local fams, problems, r = scrape()
  t.is(r.status, 200, "200")
  t.like(r.headers["content-type"], "^text/plain; version=0%.0%.4",
    "the text format's content type")
  t.is(concat(problems, "\n"), "", "the strict checker finds nothing")
  for _, name in ipairs { "coronet_connections_open",
    "coronet_connections_accepted_total", "coronet_connections_closed_total",
    "coronet_bytes_received_total", "coronet_bytes_sent_total",
    "coronet_tasks", "coronet_parks_total", "coronet_run_queue_length",
    "coronet_loop_lag_seconds", "coronet_reloads_total",
    "coronet_reloads_failed_total", "coronet_bus_published_total",
    "coronet_groups", "coronet_shared_dict_bytes", "coronet_lua_memory_bytes",
    "coronet_lua_gc_cycles_total", "coronet_open_fds",
    "coronet_resident_memory_bytes", "coronet_heap_trims_total",
    "coronet_heap_released_bytes_total" } do
    t.ok(fams[name], "has " .. name)
  end
  t.is(value(fams, "coronet_worker_up", { worker = 2 }), 1,
    "both workers answered")
  t.ok(value(fams, "coronet_lua_memory_bytes", { worker = 1 }) and
    value(fams, "coronet_lua_memory_bytes", { worker = 2 }),
    "samples of worker 1 and of worker 2")
  t.cmp_ok(value(fams, "coronet_shared_dict_bytes", { dict = DICT }) or 0,
    ">", 0, "a dictionary name with quotes, a backslash and a newline "
      .. "comes back through the label's escapes")
  t.cmp_ok(value(fams, "coronet_groups") or 0, ">=", 2, "the groups")
  t.cmp_ok(value(fams, "coronet_open_fds") or 0, ">", 5, "open fds")
  t.cmp_ok(value(fams, "coronet_resident_memory_bytes") or 0, ">", 1e6,
    "the process's resident memory")
  if os.getenv("ASAN_OPTIONS") then
    t.ok(not fams.coronet_heap_in_use_bytes, "no C heap figure under a "
      .. "sanitizer (its allocator is not glibc's)")
  else
    t.cmp_ok(value(fams, "coronet_heap_in_use_bytes") or 0, ">", 1e5,
      "the bytes the C heap has handed out")
  end
end)

t.test("counters move as traffic flows", function()
  local function sum(fams, name, labels)
    return (value(fams, name, { worker = 1, wait = labels }) or 0)
      + (value(fams, name, { worker = 2, wait = labels }) or 0)
  end
  local before = scrape()
  local n, sent = 6, 0
  for i = 1, n do
    local c = s:connect()
    local line = "hello " .. i
    c:write(line .. "\n")
    sent = sent + #line + 1
    t.is(c:read_line(), line, "echo " .. i)
    c:close()
  end
  util.wait_until(function()
    local f = scrape()
    return sum(f, "coronet_connections_closed_total")
      >= sum(before, "coronet_connections_closed_total") + n
  end, 5)
  local after = scrape()
  local function moved(name, by, labels)
    local d = sum(after, name, labels) - sum(before, name, labels)
    t.cmp_ok(d, ">=", by, format("%s%s moved by %d (at least %d)", name,
      labels and "{wait=" .. labels .. "}" or "", d, by))
  end
  moved("coronet_connections_accepted_total", n)
  moved("coronet_connections_closed_total", n)
  moved("coronet_bytes_received_total", sent)
  moved("coronet_bytes_sent_total", sent)
  moved("coronet_parks_total", n, "read")
  moved("coronet_task_resumes_total", n)
  local lag = 0
  for w = 1, 2 do
    local label = { worker = w }
    lag = lag + (value(after, "coronet_loop_lag_seconds", label, "_count")
      or 0) - (value(before, "coronet_loop_lag_seconds", label, "_count")
      or 0)
  end
  t.cmp_ok(lag, ">=", n, "the lag histogram counted the resumes")
end)

local PARKED_LINE
do
  local i = 0
  for line in io.lines(SCRIPT) do
    i = i + 1
    if line:find("-- PARKED", 1, true) then PARKED_LINE = i end
  end
end

t.test("/tasks shows a task parked in read_line at the script's line",
  function()
  -- straight to the server (not through an edge relay): its peer is this
  -- client
  local c = assert(net.dial(s.direct or s.addr, { timeout = 10 }))
  c:write("partial")
  local peer = c:local_addr()
  local where = SCRIPT .. ":" .. PARKED_LINE
  local head, cols -- the table's head, and this connection's row's cells
  util.wait_until(function() -- until the server has read the 7 bytes
    local body = get("/tasks").body or ""
    head = body:match("^[^\n]*")
    for line in body:gmatch("[^\n]+") do
      local cells = {}
      for x in line:gmatch("%S+") do cells[#cells + 1] = x end
      if cells[8] == peer then cols = cells end
    end
    return cols and cols[9] == "7"
  end, 20) -- a bound: on a loaded machine one /tasks may take seconds
  t.like(head, "^ID +WORKER +KIND +STATE +WAIT +FOR +CONN +PEER +IN +OUT "
    .. "+WHERE$", "a table with a head")
  cols = cols or {}
  t.is(cols[11], where, "the handler's row says where it waits: " .. where)
  t.is(concat(cols, " ", 3, 5), "handler parked read", "a handler, parked, "
    .. "reading")
  t.like(cols[6], "^%d+%.%d%d%ds$", "for how long")
  t.is(cols[8], peer, "its peer is this client")
  if not t.is(tostring(cols[9]) .. " " .. tostring(cols[10]), "7 0",
    "7 bytes wait in its "
    .. "read chain, none to send") then
    t.diag(get("/tasks").body)
  end
  local r = get("/tasks?format=json")
  t.is(r.headers["content-type"], "application/json", "JSON on asking")
  local ok, cjson = pcall(require, "cjson")
  if not ok and os.getenv("CI") then t.fail("cjson is installed") end
  if ok then
    local doc = cjson.decode(r.body)
    local task
    for _, x in ipairs(doc.tasks) do
      if x.where == SCRIPT .. ":" .. PARKED_LINE then task = x end
    end
    t.ok(task, "the JSON has the task")
    task = task or {}
    t.is(task.wait, "read", "waits for a read")
    t.is(task.peer, peer, "its peer")
    t.is(task.buffered_in, 7, "7 bytes in")
    t.like(task.traceback, "read_line", "the traceback goes through "
      .. "read_line")
    t.is(#doc.missing_workers, 0, "every worker answered")
    local workers = {}
    for _, x in ipairs(doc.tasks) do workers[x.worker] = true end
    t.ok(workers[1] and workers[2], "tasks of both workers")
  end
  c:close()
end)

t.test("the admin port refuses non-GET and large requests", function()
  for _, m in ipairs { "POST", "PUT", "DELETE" } do
    local r = get("/metrics", m, nil, m == "POST" and "x=1" or nil)
    t.is(r.status, 405, m .. ": 405")
    t.is(r.headers.allow, "GET, HEAD", m .. ": Allow says GET")
    t.ok(r.closed, m .. ": and the connection closes")
  end
  local r = get("/metrics", "POST", nil, string.rep("x", 100000))
  t.is(r.status, 413, "a POST of 100000 bytes: 413")
  t.ok(r.closed, "and the connection closes")
  r = get("/metrics", "HEAD")
  t.is(r.status, 200, "HEAD is served")
  t.is(get("/" .. string.rep("a", 2000)).status, 414, "a 2000-byte target: "
    .. "414")
  r = get("/metrics", "GET", { ["X-Big"] = string.rep("b", 6000) })
  t.is(r.status, 431, "a 6000-byte field: 431")
  t.ok(r.closed, "and the connection closes")
  t.is(get("/nothing").status, 404, "an unknown path: 404")
end)

t.test("/ is a short page pointing at the others", function()
  local r = get("/")
  t.is(r.status, 200, "200")
  t.like(r.body, 'href="/metrics"', "links /metrics")
  t.like(r.body, 'href="/tasks"', "links /tasks")
end)

t.test("the server stops cleanly with the admin port open", function()
  t.is(s:stop(), 0, "exit 0")
end)

t.test("with --bus, /metrics has the bus over Redis", function()
  local rs = require "lib.redis_server"
  if not rs.bin then
    if os.getenv("CI") then return t.fail("redis-server is installed") end
    return t.pass("# SKIP redis-server is not installed")
  end
  local srv = rs.start()
  local b = server.start { script = SCRIPT,
    opts = { "--admin", "127.0.0.1:0", "--bus", srv.addr } }
  admin = b:wait_log("admin on (%S+)"):match("admin on (%S+)")
  local fams, problems
  util.wait_until(function()
    fams, problems = scrape()
    return value(fams, "coronet_bus_redis_up") == 1
  end, 10)
  t.is(concat(problems, "\n"), "", "the strict checker finds nothing")
  t.is(value(fams, "coronet_bus_redis_up"), 1, "the bus is up")
  t.ok(value(fams, "coronet_bus_redis_outages_total"), "outages counted")
  t.is(b:stop(), 0, "exit 0")
  srv:stop()
end)

t.test("a bad --admin address is a usage error; a taken one stops it",
  function()
  local code, err = server.run { SCRIPT, "--admin", "nowhere" }
  t.is(code, 2, "usage error: exit 2")
  t.like(err, "%-%-admin needs an address", "says what --admin needs")
  local l = assert(net.listen("127.0.0.1:0", function() end))
  code, err = server.run({ SCRIPT, "--listen", "127.0.0.1:0", "--admin",
    l:addr() }, 20)
  t.is(code, 1, "the address is taken: exit 1")
  t.like(err, "%-%-admin .*address already in use", "with the cause")
  l:close()
end)

-- -- From a script ----------------------------------------------------------

t.test("coronet.stats() keeps its fields and adds the counters", function()
  local st = coronet.stats()
  for _, k in ipairs { "tasks", "connections", "blocks", "free_blocks",
    "block_size", "worker", "resumes", "turns", "runq", "parks", "lag",
    "opened", "accepted", "closed", "bytes_in", "bytes_out", "reloads",
    "reloads_failed", "lua_bytes", "lua_peak", "gc_cycles", "lag_sum" } do
    t.ok(st[k] ~= nil, "stats()." .. k)
  end
  local cycles = st.gc_cycles
  collectgarbage()
  collectgarbage()
  t.cmp_ok(coronet.stats().gc_cycles, ">", cycles, "gc_cycles counts "
    .. "collections")
end)

t.test("coronet.tasks() sees where this process's tasks wait", function()
  local ch = coronet.chan()
  local line = debug.getinfo(1, "l").currentline + 1
  local task = coronet.spawn(function() ch:recv() end)
  coronet.yield()
  local mine, me
  for _, x in ipairs(coronet.tasks()) do
    if x.where == "t/955-admin.t:" .. line then mine = x end
    if x.state == "running" then me = x end
  end
  t.ok(mine, "the spawned task, at t/955-admin.t:" .. line)
  t.is(mine and mine.wait, "channel", "waits on a channel")
  t.is(mine and mine.kind, "spawned", "a spawned task")
  t.ok(me, "and this one, running")
  ch:send(1)
  local _ = task
end)

t.test("nothing is left", function() util.no_leftovers(t) end)

t.done()
