-- t/640-chat-burst.t: scripts/chat.lua under a burst (issue #8): a
-- hostile client's 1,100 lines in one write once evicted every other
-- member, and with 3,000 members the drops cascaded into a stack
-- overflow. Now a burst paces its sender instead: 20 reading members get
-- all 5,000 lines of a one-write burst, in order, and nobody is dropped;
-- 3,000 members and a burst of 1,100 lines leave a consistent room, with
-- DESIGN.md's large-room rule (joins and leaves batched once a second
-- above 1000 members).
local t = require "lib.tap"
local chat = require "lib.chat"
local coronet = require "coronet"
local scratch = require "lib.scratch"
local server = require "lib.server"
local util = require "lib.util"
local format, concat = string.format, table.concat

local SCRIPT = server.path("scripts/chat.lua")
local slow_env = util.under_valgrind()
  or (os.getenv("CORONET") or ""):find("asan") ~= nil

local function join_n(s, n)
  local ms = {}
  for i = 1, n do ms[i] = chat.must_join(s, 30) end
  return ms
end

-- burst(n) -> n lines "i x..." as one string
local function burst(n)
  local lines = {}
  for i = 1, n do lines[i] = i .. " " .. string.rep("x", i % 40) .. "\n" end
  return concat(lines)
end

-- read_burst(m, from, n) reads until m has n lines of from's burst;
-- notices are counted apart. Returns the count in order, and an error.
local function read_burst(m, from, n)
  local got = 0
  while got < n do
    local line, err = m:line()
    if not line then return got, err end
    if not line:find("^%* ") then
      local want = from.name .. ": " .. (got + 1) .. " "
        .. string.rep("x", (got + 1) % 40)
      if line ~= want then return got, "got " .. line:sub(1, 60) end
      got = got + 1
    elseif line:find(" left") then
      return got, "saw " .. line
    end
  end
  return got
end

for _, workers in ipairs { 1, 2 } do
  t.test(format("20 reading members get all 5,000 lines of a one-write "
    .. "burst, in order; none is dropped (%d worker%s)", workers,
    workers > 1 and "s" or ""), function()
    local s = chat.start(SCRIPT, workers)
    local ms = join_n(s, 21)
    local sender = ms[21]
    local wg, results = coronet.waitgroup(), {}
    for i = 1, 20 do
      wg:add(1)
      coronet.spawn(function()
        results[i] = { read_burst(ms[i], sender, 5000) }
        wg:done()
      end)
    end
    sender.conn:write(burst(5000))
    wg:wait(120)
    local short = {}
    for i = 1, 20 do
      if not results[i] or results[i][1] ~= 5000 then
        short[#short + 1] = format("%s: %s (%s)", ms[i].name,
          tostring(results[i] and results[i][1]),
          tostring(results[i] and results[i][2]))
      end
    end
    t.is(#short, 0, "each of the 20 got the 5,000 lines in order")
    if #short > 0 then t.diag(concat(short, "\n")) end
    local reply = ms[1]:who()
    t.like(reply or "", "^%* 21 here: ", "nobody was dropped: 21 here")
    chat.check_spread(s, workers)
    local odd = chat.odd_lines(s)
    t.is(#odd, 0, "nothing unexpected in the log")
    if #odd > 0 then t.diag(concat(odd, "\n")) end
    t.is(scratch.stop(s), 0, "the server exits 0 at SIGTERM")
  end, 180)
end

t.test("3,000 members and a burst of 1,100 lines: a consistent room; "
  .. "joins and leaves batched above 1000 members", function()
  local N, READERS = 3000, 5
  -- not through the edge relay: the first 4 KiB of each of 6,000 streams
  -- one byte per segment is 12 million writes, which measures the relay
  -- (and its buffers stand between the sender and the room's pacing);
  -- the 20-member bursts above go through it
  local s = chat.start(SCRIPT, 2, nil, "reload")
  local ms = {}
  -- the readers count the joins after theirs: one by one, then batched
  local joins, batches = {}, {}
  -- count_notices(i, line) adds the joins of line to reader i's count;
  -- returns its leaves (guest names are never a bare number)
  local function count_notices(i, line)
    local j = line:match("^%* (%d+) joined")
    local l = line:match("^%* (%d+) left$") or line:match(", (%d+) left$")
    if j then
      joins[i] = joins[i] + tonumber(j)
      batches[i] = batches[i] + 1
    elseif line:find("^%* %S+ joined$") then
      joins[i] = joins[i] + 1
    end
    if l then return tonumber(l) end
    return line:find("^%* guest%d+ left") and 1 or 0
  end
  local t0 = coronet.now()
  for i = 1, N do
    ms[i] = chat.must_join(s, 60)
    if i <= READERS then joins[i], batches[i] = 0, 0 end
  end
  t.diag(format("%d joined in %.1f s", N, coronet.now() - t0))
  -- drain the readers' notices until each counted every later join
  local ok = true
  for i = 1, READERS do
    while joins[i] < N - i do
      local line = ms[i]:line()
      if not line then ok = false break end
      count_notices(i, line)
    end
    ok = ok and joins[i] == N - i and batches[i] > 0
  end
  t.ok(ok, "every reader was told of every later join, in batches once "
    .. "the room passed 1000 (" .. concat(batches, ", ") .. " batches)")
  local sender = ms[N]
  sender.conn:write(burst(1100))
  local wg, res = coronet.waitgroup(), {}
  for i = 1, READERS do
    wg:add(1)
    coronet.spawn(function()
      res[i] = read_burst(ms[i], sender, 1100)
      wg:done()
    end)
  end
  wg:wait(120)
  local all = true
  for i = 1, READERS do all = all and res[i] == 1100 end
  t.ok(all, "the readers got the 1,100 lines in order")
  t.is((ms[1]:who() or ""):match("^%* (%d+) here"), tostring(N),
    "/who: all " .. N .. " are still here")
  -- the others leave at once; the readers are told, batched
  for i = READERS + 1, N do ms[i]:close() end
  local left = {}
  for i = 1, READERS do
    left[i] = 0
    while left[i] < N - READERS do
      local line = ms[i]:line()
      if not line then break end
      left[i] = left[i] + count_notices(i, line)
    end
  end
  t.is(concat(left, ","), ("," .. (N - READERS)):rep(READERS):sub(2),
    "each reader was told of every leave")
  t.is((ms[1]:who() or ""):match("^%* (%d+) here"), tostring(READERS),
    "/who agrees with the open connections")
  for i = 1, READERS do ms[i]:close() end
  local odd = chat.odd_lines(s)
  t.is(#odd, 0, "nothing unexpected in the log (no stack overflow)")
  if #odd > 0 then t.diag(concat(odd, "\n", 1, math.min(#odd, 10))) end
  t.is(scratch.stop(s), 0, "the server exits 0 at SIGTERM")
end, slow_env and 600 or 300)

scratch.cleanup()
t.done()
