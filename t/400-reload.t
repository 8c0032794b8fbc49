-- t/400-reload.t: hot reload of the handler script (issue #5): SIGHUP and
-- --watch (an in-place edit, a new file renamed over the script), what a
-- failed reload leaves (the old handler, one log line with file:line),
-- bursts of changes giving one reload, coronet.state across versions.
-- Every script is written to a scratch directory of this test's own.
local t = require "lib.tap"
local scratch = require "lib.scratch"
local server = require "lib.server"
local coronet = require "coronet"
local format = string.format

local ask, quote = scratch.ask, scratch.quote

-- version(tag [, extra]) is a handler script whose replies name its
-- version: "TAG GEN HITS LINE", GEN counting the loads of the script and
-- HITS the requests served by every version (both in coronet.state).
local function version(tag, extra)
  return format([[
local coronet = require "coronet"
local st = coronet.state("reload-test")
st.loads = (st.loads or 0) + 1
local gen, tag = st.loads, %q
%s
return function(conn)
  for line in conn:lines() do
    st.hits = (st.hits or 0) + 1
    conn:write(tag .. " " .. gen .. " " .. st.hits .. " " .. line .. "\n")
  end
end
]], tag, extra or "")
end

-- reply(c, line) -> tag, gen, hits (numbers) of the reply to line
local function reply(c, line)
  local r, err = ask(c, line)
  if not r then return nil, err end
  local tag, gen, hits, echo = r:match("^(%S+) (%d+) (%d+) (.*)$")
  if echo ~= line then return nil, "bad reply " .. r end
  return tag, tonumber(gen), tonumber(hits)
end

-- setup(opts) writes version v1 to a new directory and starts a server on
-- it; returns the server, the directory and the script's path.
local function setup(opts, text)
  local d = scratch.dir("reload")
  local path = d:write("s.lua", text or version("v1"))
  -- these tests count reloads: no edge-mode reloads (CORONET_EDGE=reload)
  local s = scratch.start { script = path, opts = opts, edge = "relay" }
  return s, d, path
end

-- finish(s, d) stops s, checks its exit, and removes d.
local function finish(s, d)
  t.is(scratch.stop(s), 0, "the server exits 0 at SIGTERM")
  d:remove()
end

-- reloads(s, path) counts the reloads of path logged so far.
local function reloads(s, path)
  return scratch.count(s, scratch.reloaded(path))
end

-- wait_reloads(s, path, n) waits until n reloads of path were logged.
local function wait_reloads(s, path, n, what)
  local ok, seen = scratch.wait_count(s, scratch.reloaded(path), n, 10)
  if not t.ok(ok, what or ("reload " .. n .. " is logged")) then
    t.diag(format("  %d reloads seen; log:\n%s", seen, s:log()))
  end
  return ok
end

local times = {} -- reload times seen, in ms

local function note_times(s, path)
  for i = 1, #s.lines do
    local ms = s.lines[i]:match(scratch.reloaded(path))
    if ms then times[#times + 1] = tonumber(ms) end
  end
end

for round = 1, 2 do
  t.test(format("SIGHUP reloads: new connections get the new handler, open "
    .. "ones keep the old (round %d)", round), function()
    local s, d, path = setup()
    local c1 = s:connect()
    t.is(table.concat({ reply(c1, "a") }, " "), "v1 1 1", "v1 serves")
    d:write("s.lua", version("v2"))
    local c2 = s:connect()
    t.is(reply(c2, "b"), "v1", "without --watch an edit alone reloads nothing")
    s:signal("HUP")
    wait_reloads(s, path, 1, "SIGHUP gives one 'reloaded FILE in N ms' line")
    local c3 = s:connect()
    local tag, gen, hits = reply(c3, "c")
    t.is(tag, "v2", "a connection opened after the reload gets v2")
    t.is(gen, 2, "the new version ran its main chunk once")
    t.is(hits, 3, "and shares coronet.state with the old one")
    t.is(table.concat({ reply(c1, "d") }, " "), "v1 1 4",
      "a connection opened before it still runs v1")
    t.is(table.concat({ reply(c2, "e") }, " "), "v1 1 5",
      "so does one opened between the edit and the reload")
    s:signal("HUP")
    wait_reloads(s, path, 2, "a second SIGHUP reloads again")
    t.is(table.concat({ reply(s:connect(), "f") }, " "), "v2 3 6",
      "the same file loaded again is a new version")
    t.is(table.concat({ reply(c3, "g") }, " "), "v2 2 7",
      "and the v2 connection keeps its own")
    c1:close()
    c2:close()
    c3:close()
    note_times(s, path)
    finish(s, d)
  end)
end

t.test("--watch reloads after an in-place edit", function()
  local s, d, path = setup { "--watch" }
  local c1 = s:connect()
  t.is(reply(c1, "a"), "v1", "v1 serves")
  d:write("s.lua", version("v2"))
  wait_reloads(s, path, 1, "the edit gives a reload")
  t.is(reply(s:connect(), "b"), "v2", "new connections get v2")
  t.is(reply(c1, "c"), "v1", "the open one keeps v1")
  d:write("s.lua", version("v3"))
  wait_reloads(s, path, 2, "a second edit gives a second reload")
  t.is(reply(s:connect(), "d"), "v3", "new connections get v3")
  c1:close()
  note_times(s, path)
  finish(s, d)
end)

t.test("--watch reloads when a new file is renamed over the script, and "
  .. "keeps watching after it", function()
  local s, d, path = setup { "--watch" }
  local c1 = s:connect()
  t.is(reply(c1, "a"), "v1", "v1 serves")
  for i = 2, 4 do
    d:replace("s.lua", version("v" .. i))
    wait_reloads(s, path, i - 1, "rename " .. (i - 1) .. " gives a reload")
    t.is(reply(s:connect(), "x"), "v" .. i, "new connections get v" .. i)
  end
  d:write("s.lua", version("v5"))
  wait_reloads(s, path, 4, "an in-place edit after the renames reloads")
  t.is(reply(s:connect(), "y"), "v5", "new connections get v5")
  t.is(reply(c1, "z"), "v1", "the first connection still runs v1")
  c1:close()
  note_times(s, path)
  finish(s, d)
end)

t.test("--watch: a script removed, then written again, reloads once it is "
  .. "back", function()
  local s, d, path = setup { "--watch" }
  t.is(reply(s:connect(), "a"), "v1", "v1 serves")
  os.remove(path)
  t.ok(s:wait_log("reload failed, the old handler stays: cannot open "
    .. quote(path), 10),
    "the removal gives a failed reload naming the missing file")
  t.is(reply(s:connect(), "b"), "v1", "v1 still serves")
  d:write("s.lua", version("v2"))
  wait_reloads(s, path, 1, "the file's return gives a reload")
  t.is(reply(s:connect(), "c"), "v2", "v2 serves")
  finish(s, d)
end)

-- Broken edits: each must leave v1 serving and log exactly one line that
-- names the file and line; a good edit afterwards reloads.
local broken = {
  { what = "a syntax error",
    text = "local coronet = require 'coronet'\nlocal x = = 1\n"
      .. "return function(c) end\n",
    want = ":2: unexpected symbol near '='" },
  { what = "a runtime error in the main chunk",
    text = "local coronet = require 'coronet'\n\nlocal t = nil\n"
      .. "local x = t.field\nreturn function(c) end\n",
    want = ":4: attempt to index local 't' %(a nil value%)" },
  { what = "an error raised by the main chunk after it parked",
    text = "local coronet = require 'coronet'\ncoronet.sleep(0.01)\n"
      .. "error('not today')\nreturn function(c) end\n",
    want = ":3: not today" },
  { what = "a missing module",
    text = "local coronet = require 'coronet'\n"
      .. "local m = require 'no_such_module_here'\nreturn function(c) end\n",
    want = ":2: module 'no_such_module_here' not found" },
  { what = "no handler returned",
    text = "local coronet = require 'coronet'\nlocal x = 1\n",
    want = ": the script must return a handler function %(got nothing%)" },
  { what = "a number returned instead of a handler",
    text = "return 42\n",
    want = ": the script must return a handler function %(got number%)" },
}

for _, case in ipairs(broken) do
  t.test("a reload with " .. case.what .. " keeps the old handler and "
    .. "logs one line with the file and line", function()
    local s, d, path = setup()
    local c1 = s:connect()
    t.is(reply(c1, "a"), "v1", "v1 serves")
    local before = #s.lines
    d:write("s.lua", case.text)
    s:signal("HUP")
    local line = s:wait_log(scratch.failed(path), 10)
    t.like(line, scratch.failed(path) .. case.want, "the log says why")
    t.is(reply(s:connect(), "b"), "v1", "new connections still get v1")
    t.is(reply(c1, "c"), "v1", "the open connection still runs v1")
    d:write("s.lua", version("v2"))
    s:signal("HUP")
    wait_reloads(s, path, 1, "a good edit afterwards reloads")
    t.is(reply(s:connect(), "d"), "v2", "and v2 serves")
    t.is(reply(c1, "e"), "v1", "the open connection still runs v1")
    local between = {}
    for i = before + 1, #s.lines do
      if s.lines[i]:find(scratch.reloaded(path)) then break end
      between[#between + 1] = s.lines[i]
    end
    t.is(#between, 1, "the failure is one log line")
    if #between ~= 1 then t.diag(table.concat(between, "\n")) end
    c1:close()
    finish(s, d)
  end)
end

t.test("--watch: a broken edit, then its fix, give a failure and a reload",
  function()
    local s, d, path = setup { "--watch" }
    t.is(reply(s:connect(), "a"), "v1", "v1 serves")
    d:write("s.lua", "return function(c)\n  c:write('unfinished'\n")
    t.like(s:wait_log(scratch.failed(path), 10),
      scratch.failed(path) .. ":%d+: ", "the broken edit is logged")
    t.is(reply(s:connect(), "b"), "v1", "v1 still serves")
    d:write("s.lua", version("v2"))
    wait_reloads(s, path, 1, "the fix reloads")
    t.is(reply(s:connect(), "c"), "v2", "v2 serves")
    finish(s, d)
  end)

t.test("several quick changes give one reload", function()
  local s, d, path = setup { "--watch" }
  local c1 = s:connect()
  t.is(reply(c1, "a"), "v1", "v1 serves")
  for i = 2, 6 do -- five writes, 30 ms apart, some renames
    if i % 2 == 0 then
      d:write("s.lua", version("v" .. i))
    else
      d:replace("s.lua", version("v" .. i))
    end
    coronet.sleep(0.03)
  end
  wait_reloads(s, path, 1, "the burst gives a reload")
  coronet.sleep(0.6) -- four debounce periods: time for a second one
  t.is(reloads(s, path), 1, "and only one")
  t.is(table.concat({ reply(s:connect(), "b") }, " "), "v6 2 2",
    "it loaded the last version, once")
  t.is(reply(c1, "c"), "v1", "the open connection still runs v1")
  c1:close()
  finish(s, d)
end)

t.test("--watch: other *.lua files in the directory reload the script; "
  .. "other files do not", function()
  local s, d, path = setup { "--watch" }
  t.is(reply(s:connect(), "a"), "v1", "v1 serves")
  d:write("notes.txt", "not lua\n")
  d:write("s.lua.bak", "not lua either\n")
  d:mkdir("sub")
  coronet.sleep(0.5)
  t.is(reloads(s, path), 0, "notes.txt, s.lua.bak and a directory: none")
  d:write("other.lua", "return 1\n")
  wait_reloads(s, path, 1, "a new other.lua reloads the script")
  t.is(table.concat({ reply(s:connect(), "b") }, " "), "v1 2 2",
    "the same script, loaded again")
  finish(s, d)
end)

t.test("coronet.state gives every version the same table; a new version "
  .. "migrates its shape", function()
  local v1 = [[
local coronet = require "coronet"
local room = coronet.state("room")
room.list = room.list or {}
return function(conn)
  for line in conn:lines() do
    if line == "show" then
      conn:write("list " .. (room.list and #room.list or "gone") .. "\n")
    else
      room.list[#room.list + 1] = { name = line }
      conn:write("added " .. line .. "\n")
    end
  end
end
]]
  local v2 = [[
local coronet = require "coronet"
local room = coronet.state("room")
room.migrations = (room.migrations or 0) + 1
if (room.version or 1) < 2 then
  room.members = room.members or {}
  for _, m in ipairs(room.list or {}) do room.members[m.name] = m end
  room.list, room.version = nil, 2
end
return function(conn)
  for line in conn:lines() do
    local names = {}
    for name in pairs(room.members) do names[#names + 1] = name end
    table.sort(names)
    conn:write("v2 " .. room.migrations .. " " .. table.concat(names, ",")
      .. "\n")
  end
end
]]
  local s, d, path = setup({}, v1)
  local c = s:connect()
  t.is(ask(c, "ann"), "added ann", "v1 adds ann")
  t.is(ask(c, "bob"), "added bob", "v1 adds bob")
  d:write("s.lua", v2)
  s:signal("HUP")
  wait_reloads(s, path, 1, "v2 loads")
  t.is(ask(s:connect(), "show"), "v2 1 ann,bob",
    "v2 sees v1's members, migrated to its shape")
  s:signal("HUP")
  wait_reloads(s, path, 2, "v2 loads again")
  t.is(ask(s:connect(), "show"), "v2 2 ann,bob",
    "migrated once: loading v2 again keeps the state")
  t.is(ask(c, "show"), "list gone", "an open v1 connection sees the "
    .. "migrated table (its list is gone): migration is the script's job")
  finish(s, d)
end)

t.test("with --workers 2, SIGHUP reloads each worker, logged once",
  function()
  local s, d, path = setup { "--workers", "2" }
  d:write("s.lua", version("v2"))
  s:signal("HUP")
  local pat = scratch.reloaded(path) .. " %(2 workers%)$"
  t.ok(scratch.wait_count(s, pat, 1, 10),
    "one 'reloaded ... (2 workers)' line") -- issue #13
  coronet.sleep(0.2)
  t.is(scratch.count(s, "reloaded"), 1, "and no other")
  local tags = {}
  for i = 1, 20 do
    local c = s:connect()
    tags[reply(c, "n" .. i) or "?"] = true
    c:close()
  end
  t.ok(tags.v2 and not tags.v1 and not tags["?"],
    "20 new connections, spread over both workers, all get v2")
  finish(s, d)
end)

-- A reload asked for while the main chunk still runs (the server does not
-- listen yet) was dropped, without a word: an edit made then was lost.
t.test("SIGHUP while the script's main chunk still runs reloads once it "
  .. "has started", function()
  local process = require "coronet.process"
  local d = scratch.dir("reload")
  local slow = [[
local coronet = require "coronet"
require("coronet.c.host").log("info", "VERSION main chunk parks")
coronet.sleep(0.3)
return function(conn) conn:write("VERSION\n") end
]]
  local path = d:write("s.lua", (slow:gsub("VERSION", "v1")))
  local p = assert(process.spawn { server.bin, path, "--listen",
    "127.0.0.1:0", stdout = "null", stderr = "pipe" })
  p.stderr:set_timeout(10)
  local lines = {}
  local function until_line(pattern)
    for _ = 1, 100 do
      local line = p.stderr:read_line()
      if not line then return nil end
      lines[#lines + 1] = line
      if line:find(pattern) then return line end
    end
  end
  t.ok(until_line("v1 main chunk parks"), "the main chunk runs")
  d:write("s.lua", (slow:gsub("VERSION", "v2")))
  p:kill("HUP")
  local addr = (until_line("listening on") or ""):match("listening on (%S+)")
  t.ok(addr, "the server starts listening")
  t.ok(until_line(scratch.reloaded(path)), "then reloads")
  local c = addr and require("coronet.net").dial(addr, { timeout = 5 })
  if c then c:set_timeout(5) end
  t.is(c and c:read_line(), "v2", "new connections get the edit made "
    .. "during the start")
  if c then c:close() end
  p:kill("TERM")
  t.is(p:wait(10), 0, "the server exits 0 at SIGTERM")
  if not c then t.diag(table.concat(lines, "\n")) end
  d:remove()
end)

t.test("a reload asked for while the last one's main chunk still runs "
  .. "supersedes it", function()
  local slow = version("v2", "coronet.sleep(0.3)")
  local s, d, path = setup()
  d:write("s.lua", slow)
  s:signal("HUP")
  coronet.sleep(0.05) -- the first reload's main chunk sleeps
  d:write("s.lua", version("v3", "coronet.sleep(0.1)"))
  s:signal("HUP")
  t.ok(s:wait_log("reload superseded by a newer one", 10),
    "the first reload is logged as superseded")
  wait_reloads(s, path, 1, "the second one is logged as done")
  coronet.sleep(0.4) -- both main chunks have ended by now
  t.is(reloads(s, path), 1, "one reload took effect")
  t.is(reply(s:connect(), "a"), "v3", "the newest version serves")
  finish(s, d)
end)

t.test("reload times are logged in ms", function()
  t.cmp_ok(#times, ">=", 8, "reload times were seen")
  local max = 0
  for _, ms in ipairs(times) do if ms > max then max = ms end end
  t.cmp_ok(max, "<", 2000, "each reload took under 2 s")
  t.diag(format("%d reloads, slowest %.1f ms", #times, max))
end)

scratch.cleanup()
t.done()
