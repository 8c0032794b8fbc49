-- t/580-shared.t: coronet.shared dictionaries (issue #8, DESIGN.md
-- "Beyond one core"): values of each type round-trip; add, replace,
-- incr, delete, keys, flush_all; ttl expiry; LRU eviction at the byte
-- bound and "no memory" from add; then across the two workers of a server
-- (t/lib/svc_shared.lua): incr from both adds up exactly, an add race has
-- one winner, and the dictionary survives a reload.
local t = require "lib.tap"
local coronet = require "coronet"
local scratch = require "lib.scratch"
-- these tests count versions: no edge-mode reloads (CORONET_EDGE=reload)
require("lib.server").edge_only = "relay"
local server = require "lib.server"
local util = require "lib.util"
local workers = require "lib.workers"
local format = string.format

t.test("values of each type round-trip", function()
  local d = coronet.shared("types")
  local bin = util.random_bytes(5000, 9)
  local cases = { "", "text", bin, 0, 1, -1, 2 ^ 53, -2 ^ 53, 0.1, -1.5e300,
    1 / 0, -1 / 0, true, false }
  local ok = true
  for i, v in ipairs(cases) do
    local k = "k" .. i
    if d:set(k, v) ~= true then ok = false end
    local got = d:get(k)
    if got ~= v or type(got) ~= type(v) then
      ok = false
      t.diag(format("  %s: set %s, got %s", k, util.show_bytes(tostring(v)),
        util.show_bytes(tostring(got))))
    end
  end
  t.ok(ok, "strings (empty, binary), numbers (integers, floats, "
    .. "infinities) and booleans come back as they went in")
  local nan = d:set("nan", 0 / 0) and d:get("nan")
  t.ok(nan ~= nan, "NaN stays NaN")
  t.is(d:get("missing"), nil, "a missing key gives nil")
  t.is(coronet.shared("types"), d, "shared(name) gives the same dictionary "
    .. "again")
  d:flush_all()
end)

t.test("add, replace, incr, delete, keys and flush_all", function()
  local d = coronet.shared("ops")
  t.is(d:add("a", 1), true, "add a new key")
  local v, err = d:add("a", 2)
  t.ok(v == nil and err == "exists", "add an existing key: nil, \"exists\"")
  t.is(d:get("a"), 1, "the value stays")
  v, err = d:replace("b", 1)
  t.ok(v == nil and err == "not found", "replace a missing key: nil, "
    .. "\"not found\"")
  t.is(d:replace("a", "x"), true, "replace an existing one")
  t.is(d:get("a"), "x", "it changed, type and all")
  v, err = d:incr("a", 1)
  t.ok(v == nil and err == "not a number", "incr a string: nil, \"not a "
    .. "number\"")
  v, err = d:incr("n", 1)
  t.ok(v == nil and err == "not found", "incr a missing key without init")
  t.is(d:incr("n", 5, 10), 15, "incr with init starts at init + n")
  t.is(d:incr("n", -0.5), 14.5, "incr adds any number")
  t.is(d:set("gone", "x"), true, "set")
  t.is(d:delete("gone"), true, "delete")
  t.is(d:get("gone"), nil, "deleted")
  t.is(d:set("a", nil), true, "set to nil")
  t.is(d:get("a"), nil, "deletes too")
  for i = 1, 10 do d:set("key" .. i, i) end
  local keys = d:keys()
  t.is(#keys, 11, "keys() lists every key")
  t.is(keys[1], "key10", "the most recently used first")
  t.is(#d:keys(3), 3, "keys(max) lists at most max")
  t.is(#d:keys(0), 11, "keys(0) lists all")
  t.is(d:flush_all(), true, "flush_all")
  t.is(#d:keys(), 0, "leaves nothing")
  t.is(d:free_space(), d:capacity(), "and frees every byte")
end)

t.test("a value set with a ttl expires", function()
  local d = coronet.shared("ttl")
  d:set("short", "v", 0.05)
  d:set("long", "v", 60)
  d:set("ever", "v")
  t.is(d:get("short"), "v", "there before its ttl")
  coronet.sleep(0.1)
  t.is(d:get("short"), nil, "gone after it")
  t.is(d:get("long"), "v", "a longer ttl is still there")
  t.is(#d:keys(), 2, "keys() skips the expired")
  d:add("short2", 1, 0.05)
  coronet.sleep(0.1)
  t.is(d:add("short2", 2), true, "add succeeds over an expired value")
  t.is(d:get("short2"), 2, "with the new value")
  d:flush_all()
end)

t.test("set evicts the least recently used at the byte bound; add fails "
  .. "with \"no memory\"", function()
  local d = coronet.shared("lru", { bytes = 4096 })
  t.is(d:capacity(), 4096, "the capacity asked for")
  local val = string.rep("v", 100)
  local n = 0
  while d:add("k" .. n + 1, val) do n = n + 1 end
  local v, err = d:add("one-more", val)
  t.ok(v == nil and err == "no memory", "full: add gives nil, \"no memory\" "
    .. "after " .. n .. " entries")
  t.cmp_ok(d:free_space(), ">=", 0, "used bytes never pass the capacity")
  t.is(d:get("k1"), val, "k1 is read: now the most recent")
  t.is(d:set("new", val), true, "set makes room")
  t.is(d:get("k2"), nil, "by evicting the least recently used (k2)")
  t.is(d:get("k1"), val, "k1, read recently, stays")
  t.is(d:get("new"), val, "the new one is there")
  local keys = #d:keys(0)
  t.is(keys, n, "the count of entries stays " .. n)
  v, err = d:set("huge", string.rep("x", 5000))
  t.ok(v == nil and err == "no memory", "a value larger than the "
    .. "dictionary: nil, \"no memory\"")
  t.is(#d:keys(0), n, "and nothing was evicted for it")
  t.is(d:replace("k3", string.rep("r", 300)), true, "replace with a bigger "
    .. "value evicts too")
  t.cmp_ok(d:free_space(), ">=", 0, "still within bounds")
  d:flush_all()
end)

t.test("misuse raises, naming the method", function()
  local d = coronet.shared("misuse")
  local function err(f)
    local ok, e = pcall(f)
    return not ok and tostring(e) or "no error"
  end
  t.like(err(function() d:get(1) end), "bad argument #1 to 'get' %(string "
    .. "expected, got number%)", "keys are strings")
  t.like(err(function() d:set("", 1) end), "bad argument #1 to 'set' "
    .. "%(empty key%)", "and not empty")
  t.like(err(function() d:set("k", {}) end), "bad argument #2 to 'set' "
    .. "%(string, number or boolean expected, got table%)", "values")
  t.like(err(function() d:set("k", 1, -1) end), "bad argument #3 to 'set'",
    "ttl")
  t.like(err(function() d:incr("k", "x") end), "bad argument #2 to 'incr'",
    "incr's n")
  t.like(err(function() coronet.shared({}) end), "bad argument #1 to "
    .. "'shared'", "the name")
  t.like(err(function() coronet.shared("x", { bytes = -1 }) end),
    "bad argument #2 to 'shared'", "the size")
end)

-- -- Two workers ---------------------------------------------------------

local path = server.path("t/lib/svc_shared.lua")
local s = scratch.start { script = path, opts = { "--workers", "2" } }

local function ask(c, line)
  c:write(line .. "\n")
  return c:read_line()
end

t.test("incr from 2 workers x 50 tasks x 200 times adds up exactly",
  function()
    local cs = { workers.on(s, 1), workers.on(s, 2) }
    for _, c in ipairs(cs) do c:write("incr count 50 200\n") end
    t.is(cs[1]:read_line(), "done 1", "worker 1 is done")
    t.is(cs[2]:read_line(), "done 2", "worker 2 is done")
    local c = workers.on(s, 1)
    t.is(ask(c, "get count"), "20000", "the count is 2 x 50 x 200")
  end)

t.test("add races across workers have one winner", function()
  local rounds, bad = 20, 0
  for r = 1, rounds do
    local cs = { workers.on(s, 1), workers.on(s, 2) }
    for _, c in ipairs(cs) do c:write("add race" .. r .. " 50\n") end
    local wins = 0
    for _, c in ipairs(cs) do
      wins = wins + tonumber((c:read_line() or ""):match("^wins (%d+)") or 99)
    end
    if wins ~= 1 then bad = bad + 1 end
  end
  t.is(bad, 0, format("%d rounds of 2 x 50 tasks adding one key: one "
    .. "winner each", rounds))
end)

t.test("the dictionary survives a reload", function()
  local c = workers.on(s, 2)
  t.is(ask(c, "set kept yes"), "ok", "set on worker 2")
  s:signal("HUP")
  for w = 1, 2 do
    t.ok(util.wait_until(function()
      return ask(workers.on(s, w), "version") == "2"
    end, 10), "worker " .. w .. " reloaded")
    t.is(ask(workers.on(s, w), "get kept"), "yes", "worker " .. w
      .. " reads it after the reload")
  end
  t.is(scratch.stop(s), 0, "the server exits 0 at SIGTERM")
end)

scratch.cleanup()
t.done()
