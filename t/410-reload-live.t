-- t/410-reload-live.t: reload under live traffic (issue #5). Clients in a
-- request/response loop, and a stream of short connections, go through
-- three reloads (an in-place edit and a rename under --watch, then
-- SIGHUP) with zero errors; every connection stays on the version it
-- started with, to its end, and new connections get the newest one.
-- Run once with one worker and once with two.
local t = require "lib.tap"
local scratch = require "lib.scratch"
local util = require "lib.util"
local coronet = require "coronet"
local format, concat = string.format, table.concat

local ask = scratch.ask

-- version(tag): replies "TAG GEN LINE"; GEN counts the script's loads in
-- this worker (coronet.state), so a reload with the file unchanged (SIGHUP)
-- is a new version too.
local function version(tag)
  return format([[
local coronet = require "coronet"
local st = coronet.state("live")
st.loads = (st.loads or 0) + 1
local gen, tag = st.loads, %q
return function(conn)
  for line in conn:lines() do
    conn:write(tag .. " " .. gen .. " " .. line .. "\n")
  end
end
]], tag)
end

local LIMIT = 30      -- seconds any loop here may run
local PER_PHASE = 20  -- requests each open client makes between reloads

local function live(workers)
  local d = scratch.dir("live")
  local path = d:write("s.lua", version("v1"))
  local s = scratch.start { script = path, edge = "relay", -- counts reloads
    opts = { "--watch", "--workers", tostring(workers) } }
  local deadline = coronet.now() + LIMIT
  local stop = false
  local errors = {}
  local clients = {}   -- every long-lived client, in start order
  local phase = 0      -- reloads done (all workers logged them)
  local want = { "v1 1", "v2 2", "v3 3", "v3 4" } -- by phase

  local function err(msg)
    if #errors < 20 then errors[#errors + 1] = msg end
    errors.n = (errors.n or 0) + 1
  end

  -- client(k) talks on one connection until told to stop; its replies
  -- must all name the version of the phase it started in.
  local function client(k)
    local cl = { phase = phase, n = 0, done = false, k = k }
    clients[#clients + 1] = cl
    coronet.spawn(function()
      local c = s:connect()
      local first = nil
      while not stop and coronet.now() < deadline do
        local q = format("c%d-%d", k, cl.n)
        local r, e = ask(c, q)
        if not r then
          err(format("client %d request %d: %s", k, cl.n, tostring(e)))
          break
        end
        local v, echo = r:match("^(%S+ %d+) (.*)$")
        first = first or v
        if echo ~= q or v ~= first then
          err(format("client %d: asked %q, got %q (first %q)", k, q, r,
            tostring(first)))
          break
        end
        cl.n = cl.n + 1
      end
      cl.version = first
      c:close()
      cl.done = true
    end)
    return cl
  end

  -- churn opens short connections one after another: three requests
  -- each, all answered by one version, never older than the phase it
  -- started in.
  local churn = { n = 0, done = false }
  coronet.spawn(function()
    local last = 0
    while not stop and coronet.now() < deadline do
      local ph = phase
      local c = s:connect()
      local v0
      for i = 1, 3 do
        local r, e = ask(c, "s" .. i)
        local v, gen
        if r then v, gen = r:match("^(%S+ (%d+)) s" .. i .. "$") end
        if not v then
          err(format("short connection %d: %s", churn.n, tostring(r or e)))
          break
        end
        v0 = v0 or v
        gen = tonumber(gen)
        if v ~= v0 then err("short connection changed version: " .. v) end
        if gen < ph + 1 then
          err(format("short connection in phase %d got %s", ph, v))
        end
        if workers == 1 and gen < last then
          err(format("versions went back: %d after %d", gen, last))
        end
        last = gen
      end
      c:close()
      churn.n = churn.n + 1
    end
    churn.done = true
  end)

  -- busy() waits until every running client made PER_PHASE more requests
  -- (traffic flows during and after the reload).
  local function busy(what)
    local base = {}
    for i, cl in ipairs(clients) do base[i] = cl.n end
    local ok = util.wait_until(function()
      for i, cl in ipairs(clients) do
        if cl.n < base[i] + PER_PHASE then return false end
      end
      return true
    end, 20)
    t.ok(ok, what)
  end

  for k = 1, 6 do client(k) end
  busy("phase 0: 6 clients talk to v1")

  local steps = {
    { "an in-place edit", function() d:write("s.lua", version("v2")) end },
    { "a rename over the script",
      function() d:replace("s.lua", version("v3")) end },
    { "SIGHUP", function() s:signal("HUP") end },
  }
  for i, step in ipairs(steps) do
    local churn_before = churn.n
    step[2]()
    local ok, seen = scratch.wait_count(s, scratch.reloaded(path)
      .. (workers > 1 and " %(" .. workers .. " workers%)$" or "$"), i, 10)
    if not t.ok(ok, format("reload %d (%s) is logged once, for every worker",
      i, step[1])) then
      t.diag(format("  %d seen; log:\n%s", seen, s:log()))
    end
    phase = i
    for k = 1, 3 do client(i * 10 + k) end
    busy(format("phase %d: every client, old and new, keeps talking", i))
    t.ok(util.wait_until(function() return churn.n >= churn_before + 5 end,
      20),
      format("phase %d: short connections keep coming", i))
  end

  stop = true
  local all_done = util.wait_until(function()
    if not churn.done then return false end
    for _, cl in ipairs(clients) do
      if not cl.done then return false end
    end
    return true
  end, 20)
  t.ok(all_done, "every client finished")

  local total, wrong = 0, {}
  for _, cl in ipairs(clients) do
    total = total + cl.n
    if cl.version ~= want[cl.phase + 1] then
      wrong[#wrong + 1] = format("client %d (phase %d) ran %s", cl.k,
        cl.phase, tostring(cl.version))
    end
  end
  t.is(#wrong, 0, "each client stayed on the version it started with, "
    .. "from v1 to the fourth load")
  if #wrong > 0 then t.diag(concat(wrong, "\n")) end
  t.is(errors.n or 0, 0, format("zero errors in %d requests on %d long "
    .. "and %d short connections", total, #clients, churn.n))
  if errors.n then t.diag(concat(errors, "\n")) end
  t.is(scratch.stop(s), 0, "the server exits 0 at SIGTERM")
  local odd = {}
  for _, line in ipairs(s.lines) do
    if not (line:find("^coronet: listening on ")
        or line:find(scratch.reloaded(path))
        or line:find("^coronet: Terminated: shutting down")
        or line:find("^coronet: worker %d+: waiting up to")) then
      odd[#odd + 1] = line
    end
  end
  t.is(#odd, 0, "the log has nothing but reloads")
  if #odd > 0 then t.diag(concat(odd, "\n")) end
  local ms = {}
  for _, line in ipairs(s.lines) do
    ms[#ms + 1] = line:match(scratch.reloaded(path))
  end
  t.diag(format("%d worker(s): %d requests, %d short connections; reload "
    .. "times %s ms", workers, total, churn.n, concat(ms, ", ")))
  d:remove()
end

t.test("three reloads under live traffic, one worker: zero errors, old "
  .. "connections on old code", function() live(1) end)
t.test("three reloads under live traffic, two workers: zero errors, old "
  .. "connections on old code", function() live(2) end)

scratch.cleanup()
t.done()
