-- t/040-workers.t: workers and processes sharing an address (issue #8):
-- --reuseport lets independent processes share a port; without it a used
-- port is an error, also with --workers 2; shutdown, --max-connections
-- and a dying worker concern the whole process.
local t = require "lib.tap"
local server = require "lib.server"
local util = require "lib.util"
local coronet = require "coronet"
local net = require "coronet.net"

-- The handler answers each line with its process id and worker.
local script = util.tmpfile([[
local coronet = require "coronet"
local host = require "coronet.c.host"
local f = io.open("/proc/self/stat")
local pid = f:read("*n")
f:close()
return function(conn)
  for line in conn:lines() do
    if line == "die" then -- the worker's loop stops under it
      local ffi = require "ffi"
      ffi.cdef "void *cn_worker_self(void); void uv_stop(void *loop);"
      ffi.C.uv_stop(ffi.C.cn_worker_self()) -- the loop is its first member
      conn:write("dying\n")
    elseif line == "hold" then
      conn:write("held " .. host.info().worker .. "\n")
      coronet.stopping():recv()
      conn:write("bye\n")
      return
    else
      conn:write(pid .. " " .. host.info().worker .. "\n")
    end
  end
end
]])

local function ask(c, line)
  c:write(line .. "\n")
  return c:read_line()
end

-- spread(addr, n) opens n connections one after another and counts the
-- answers by their first word (the pid) and by pid and worker.
local function spread(addr, n)
  local pids, workers = {}, {}
  for i = 1, n do
    local c = assert(net.dial(addr, { timeout = 5 }))
    c:set_timeout(5)
    local r = ask(c, "x" .. i) or "?"
    pids[r:match("^%S+")] = (pids[r:match("^%S+")] or 0) + 1
    workers[r] = (workers[r] or 0) + 1
    c:close()
  end
  local np, nw = 0, 0
  for _ in pairs(pids) do np = np + 1 end
  for _ in pairs(workers) do nw = nw + 1 end
  return np, nw
end

t.test("--reuseport: two processes share a port and both accept", function()
  -- edge = false: the processes' own port is the point, not a relay's
  local a = server.start { script = script, opts = { "--reuseport" },
    edge = false }
  local port = a.addr:match(":(%d+)$")
  local b = server.start { script = script, listen = "127.0.0.1:" .. port,
    opts = { "--reuseport" }, edge = false }
  t.is(b.addr, a.addr, "the second one listens on the same address")
  local np = spread(a.addr, 60)
  t.is(np, 2, "connections reach both processes")
  t.is(a:stop(), 0, "exit 0")
  t.is(spread(b.addr, 5), 1, "the other one serves on alone")
  t.is(b:stop(), 0, "exit 0")
end)

for _, workers in ipairs { "1", "2" } do
  t.test("without --reuseport a used port is an error (first with --workers "
    .. workers .. ")", function()
    local a = server.start { script = script, opts = { "--workers", workers } }
    local own = a.direct or a.addr -- its own address, not an edge relay's
    for _, opts in ipairs { {}, { "--workers", "2" } } do
      local args = { script, "-l", own }
      for _, o in ipairs(opts) do args[#args + 1] = o end
      local code, err = server.run(args, 10)
      t.is(code, 1, "a second coronet " .. table.concat(opts, " ")
        .. " exits 1")
      t.like(err, "^coronet: listen " .. own:gsub("%p", "%%%0")
        .. ": address already in use\n$", "with the clear one line")
    end
    t.ok(select(2, spread(a.addr, 20)) >= 1, "the first one still serves")
    t.is(a:stop(), 0, "exit 0")
  end)
end

t.test("--workers 2: connections spread over both workers", function()
  local a = server.start { script = script, opts = { "--workers", "2" } }
  local _, nw = spread(a.addr, 60)
  t.is(nw, 2, "both workers accept")
  t.is(a:stop(), 0, "exit 0")
end)

t.test("SIGTERM reaches every worker: handlers on both learn it", function()
  local a = server.start { script = script,
    opts = { "--workers", "2", "--grace", "30" } }
  local conns, seen = {}, {}
  for i = 1, 40 do
    local c = a:connect()
    local r = ask(c, "hold")
    seen[r] = true
    conns[i] = c
  end
  t.ok(seen["held 1"] and seen["held 2"], "members on both workers")
  local t0 = coronet.now()
  a:signal("TERM")
  local bye = 0
  for _, c in ipairs(conns) do
    if c:read_line() == "bye" then bye = bye + 1 end
    c:close()
  end
  t.is(bye, 40, "every member got its goodbye")
  t.is(a.proc:wait(10), 0, "exit 0")
  t.cmp_ok(coronet.now() - t0, "<", 5, "well before the 30 s grace")
end)

t.test("--max-connections bounds the whole process, every worker", function()
  local a = server.start { script = script,
    opts = { "--workers", "2", "--max-connections", "4" } }
  local conns, answered = {}, 0
  for i = 1, 8 do
    conns[i] = a:connect(0.5)
    if ask(conns[i], "x") then answered = answered + 1 end
  end
  t.is(answered, 4, "4 answered, the other 4 wait")
  for i = 1, 4 do conns[i]:close() end
  local later = 0
  for i = 5, 8 do
    conns[i]:set_timeout(5)
    if conns[i]:read_line() then later = later + 1 end
  end
  t.is(later, 4, "once 4 left, the waiting ones are served")
  for i = 5, 8 do conns[i]:close() end
  t.is(a:stop(), 0, "exit 0")
end)

t.test("a worker whose loop dies takes the process down, saying so",
  function()
    local a = server.start { script = script, opts = { "--workers", "2" } }
    local c = a:connect()
    c:write("die\n")
    local code = a.proc:wait(10)
    t.is(code, 1, "the process exits 1")
    t.ok(a:wait_log("worker %d: its loop stopped unexpectedly; stopping "
      .. "coronet"), "with a log line naming the worker")
    c:close()
  end)

util.cleanup()
t.done()
