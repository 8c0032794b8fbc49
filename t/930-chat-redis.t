-- t/930-chat-redis.t: scripts/chat.lua over several processes sharing a
-- Redis (--bus, scripts/chat_redis.lua), beyond the chat suite (whose
-- round 3 runs there too): names unique across processes with one winner
-- of a rename race, a crashed process's members leaving the room within
-- the lease, and a Redis that goes away: members told once that the room
-- is split and once that it healed, the room going on in each process
-- meanwhile, names claimed again (a name two processes gave out while
-- split stays with one member).
local t = require "lib.tap"
local chat = require "lib.chat"
local pair = require "lib.chat_pair"
local rs = require "lib.redis_server"
local util = require "lib.util"
local coronet = require "coronet"
local format = string.format

rs.skip_unless_available(t)

local SPLIT = "* chat: the room is split, reconnecting"
local HEALED = "* chat: the room is whole again"
local LEASE = 5

-- join(p) joins a member to process p (a lib.server).
local function join(p) return chat.must_join(p, 10) end

-- names(m) -> the set of names m's /who lists
local function names(m)
  local reply = m:who() or ""
  local set = {}
  for n in (reply:match("here: (.*)$") or ""):gmatch("[^, ]+") do
    set[n] = true
  end
  return set, reply
end

-- lines_until(m, want, timeout) reads m's lines until want; returns
-- whether it came and the lines before it.
local function lines_until(m, want, timeout)
  m.conn:set_timeout(timeout)
  local before = {}
  while true do
    local line = m:line()
    if not line or line == want then
      m.conn:set_timeout(10)
      return line == want, before
    end
    before[#before + 1] = line
  end
end

t.test("without --bus the room is one process's, past its ticks too",
  function()
  local s = chat.start(require("lib.server").path("scripts/chat.lua"), 1)
  local a, b = join(s), join(s)
  a:expect("* " .. b.name .. " joined")
  coronet.sleep(1.5) -- the pump's ticks run chat_redis.tick
  b:say("still here")
  a:expect(b.name .. ": still here", "lines flow after the first ticks")
  a:close()
  b:close()
  t.is(require("lib.scratch").stop(s), 0, "the server exits 0")
end)

t.test("a rename race across processes has one winner", function()
  local s = pair.start(2)
  local A, B = s.procs[1], s.procs[2]
  local a, b, c = join(A), join(B), join(A)
  a:expect("* " .. b.name .. " joined")
  a:expect("* " .. c.name .. " joined")
  b:expect("* " .. c.name .. " joined")
  local wins = { 0, 0 }
  for i = 1, 10 do
    local name = "race" .. i
    a:say("/nick " .. name) -- both at once
    b:say("/nick " .. name)
    -- each gets its own answer, and the loser the winner's rename, in
    -- either order
    local function answer(m)
      local others = {}
      for _ = 1, 3 do
        local line = m:line() or "<none>"
        if line == "* you are now " .. name then return true, others end
        if line == "* the name " .. name .. " is taken" then
          return false, others
        end
        others[#others + 1] = line
      end
      return nil, others
    end
    local won_a, seen_a = answer(a)
    local won_b, seen_b = answer(b)
    t.ok(won_a ~= nil and won_b ~= nil and won_a ~= won_b,
      format("race %d: one winner", i))
    local winner, loser, seen = a, b, seen_b
    if won_b then winner, loser, seen = b, a, seen_a end
    local old = winner.name
    winner.name = name
    wins[won_b and 2 or 1] = wins[won_b and 2 or 1] + 1
    c:expect("* " .. old .. " is now " .. name, "c hears the winner only")
    if #seen == 0 then seen[1] = loser:line() end
    t.is(seen[1], "* " .. old .. " is now " .. name,
      "so does the loser, once")
  end
  t.diag(format("  wins: %d on A, %d on B", wins[1], wins[2]))
  local set = names(c)
  t.ok(set[a.name] and set[b.name] and set[c.name], "/who on either "
    .. "process lists the three, each name once")
  for _, m in ipairs { a, b, c } do m:close() end
  s:check(t)
end, 60)

t.test("kill -9 a process: its members leave the others' room within "
  .. "the lease", function()
  local s = pair.start(2)
  local A, B = s.procs[1], s.procs[2]
  local a, b1, b2 = join(A), join(B), join(B)
  a:expect("* " .. b1.name .. " joined")
  a:expect("* " .. b2.name .. " joined")
  t.ok(names(a)[b2.name], "a's /who lists B's members")
  -- whoever holds a name is a process the others can sweep, from its
  -- first claim on (not only after its keeper's first renewal)
  local r = assert(require("coronet.redis").connect(s.redis.addr))
  local owners = r:call("HGETALL", "coronet:chat:0:names")
  local procs = r:call("HGETALL", "coronet:chat:0:procs")
  local listed, bad = {}, {}
  for i = 1, #procs, 2 do listed[procs[i]] = true end
  for i = 2, #owners, 2 do
    local p = owners[i]:match("^(.*)%.%d+:%d+$")
    if not listed[p] or r:call("EXISTS", "coronet:chat:0:lease:" .. p) ~= 1
    then
      bad[#bad + 1] = owners[i - 1] .. " (" .. owners[i] .. ")"
    end
  end
  t.ok(#owners == 6 and #bad == 0, "each of the 3 names is held by a "
    .. "process with a lease and a procs entry, at once: "
    .. (#bad == 0 and #owners .. " fields" or table.concat(bad, ", ")))
  r:close()
  local t0 = coronet.now()
  B.proc:kill("KILL")
  B.proc:wait(10)
  a.conn:set_timeout(LEASE + 5)
  local got = {}
  for _ = 1, 2 do
    local line = a:line() or ""
    local who = line:match("^%* (%S+) left %(gone%)$")
    if who then got[who] = true end
  end
  local took = coronet.now() - t0
  if not t.ok(got[b1.name] and got[b2.name], "a is told both left (gone)")
  then
    t.diag("A's log:\n" .. A:log())
    t.diag("B's log:\n" .. B:log())
  end
  t.cmp_ok(took, "<=", LEASE + 2.5, format("within the lease (%.1f s)",
    took))
  local set = names(a)
  t.ok(set[a.name] and not set[b1.name] and not set[b2.name],
    "a's /who lists a alone")
  t.ok(A:wait_log("chat: process %S+ is gone"), "A's log says so")
  local d = join(A)
  a:expect("* " .. d.name .. " joined", "the room goes on")
  a:close()
  d:close()
  t.is(require("lib.scratch").stop(A), 0, "A exits 0")
  s.redis:stop()
end, 60)

t.test("Redis goes away: members are told once that the room is split, "
  .. "and again when it heals", function()
  local s = pair.start(2)
  local A, B = s.procs[1], s.procs[2]
  local a1, b1 = join(A), join(B)
  a1:expect("* " .. b1.name .. " joined")
  s.redis:kill()
  local ok_a = lines_until(a1, SPLIT, 10)
  local ok_b = lines_until(b1, SPLIT, 10)
  t.ok(ok_a and ok_b, "members of both processes are told")
  local a2 = join(A)
  a1:expect("* " .. a2.name .. " joined", "each process's room goes on")
  a2:say("in the split")
  a1:expect(a2.name .. ": in the split", "lines within a process flow")
  local bset = names(b1)
  t.ok(not bset[a2.name], "B's /who does not list A's newcomer")
  a1:say("/nick dup") -- both processes give the same name while split
  a1:expect("* you are now dup")
  a2:expect("* " .. a1.name .. " is now dup")
  a1.name = "dup"
  b1:say("/nick dup")
  b1:expect("* you are now dup")
  b1.name = "dup"
  t.ok(b1:quiet("B's member heard nothing of A's room while split"))
  s.redis:launch()
  local h1, before1 = lines_until(a1, HEALED, 15)
  local h2 = lines_until(b1, HEALED, 15)
  t.ok(h1 and h2, "members of both processes are told it healed")
  local again = 0
  for _, line in ipairs(before1) do
    if line == SPLIT then again = again + 1 end
  end
  t.is(again, 0, "a1 was told of the split once")
  -- Redis came back empty: every process claims its names again; of the
  -- two "dup", one keeps the name and the other is told its new one
  local function three()
    local set, n = names(a2), 0
    for _ in pairs(set) do n = n + 1 end
    return n == 3 and set.dup and set[a2.name]
  end
  t.ok(util.wait_until(three, 15), "/who lists the three members of both "
    .. "processes again, three names")
  local renamed = {}
  for _, m in ipairs { a1, b1 } do
    m.conn:set_timeout(0.5)
    while true do
      local line = m:line()
      if not line then break end
      local new = line:match("^%* chat: your name dup was taken while the "
        .. "room was split; you are now (%S+)$")
      if new then renamed[#renamed + 1] = new end
    end
    m.conn:set_timeout(10)
  end
  t.is(#renamed, 1, "exactly one dup was renamed, and told")
  a2:say("after the heal")
  t.ok(lines_until(b1, a2.name .. ": after the heal", 10),
    "lines cross processes again")
  for _, m in ipairs { a1, a2, b1 } do m:close() end
  for _, p in ipairs { A, B } do
    t.is(require("lib.scratch").stop(p), 0, "exits 0")
  end
  s.redis:stop()
end, 90)

t.done()
