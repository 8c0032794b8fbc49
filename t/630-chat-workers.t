-- t/630-chat-workers.t: scripts/chat.lua with --workers 2 is one room
-- (issue #8): joins, lines, renames and leaves reach the members on the
-- other worker, /who lists the whole room, a nick race across workers has
-- one winner, and guest numbers never repeat.
local t = require "lib.tap"
local chat = require "lib.chat"
local scratch = require "lib.scratch"
local server = require "lib.server"
local format, concat, sort = string.format, table.concat, table.sort

local s = chat.start(server.path("scripts/chat.lua"), 2)

-- settle_joins(all) reads, for each member, the joins of those after it.
local function settle_joins(all)
  for i, m in ipairs(all) do
    for j = i + 1, #all do m:expect("* " .. all[j].name .. " joined") end
  end
end

local function quit_all(all)
  for i, m in ipairs(all) do
    m:say("/quit")
    local line
    repeat line = m:line() until not line or line == "* bye"
    t.ok(line == "* bye" and m:eof(), m.name .. " quits")
    for j = i + 1, #all do
      local l
      repeat l = all[j]:line() until not l or l:find(" left$")
      t.is(l, "* " .. m.name .. " left", all[j].name .. " sees it leave")
    end
    m:close()
  end
end

local function who(all)
  local names = {}
  for _, m in ipairs(all) do names[#names + 1] = m.name end
  sort(names)
  return format("* %d here: %s", #names, concat(names, ", "))
end

t.test("joins, lines, renames and leaves cross workers; /who lists the "
  .. "whole room", function()
  local by, all = chat.on_each(s, 2, 2)
  settle_joins(all)
  local a, b = by[1][1], by[2][1]
  t.ok(a.worker == 1 and b.worker == 2, format("%s is on worker 1, %s on "
    .. "worker 2", a.name, b.name))
  a:say("hello from worker 1")
  for _, m in ipairs(all) do
    if m ~= a then
      m:expect(a.name .. ": hello from worker 1", format("%s (worker %d) "
        .. "gets a's line", m.name, m.worker))
    end
  end
  local old = b.name
  b:say("/nick bee2")
  b:expect("* you are now bee2")
  b.name = "bee2"
  for _, m in ipairs(all) do
    if m ~= b then m:expect("* " .. old .. " is now bee2") end
  end
  for _, m in ipairs { a, b } do
    t.is(m:who(), who(all), format("/who on worker %d lists all %d",
      m.worker, #all))
  end
  local c = chat.must_join(s)
  for _, m in ipairs(all) do m:expect("* " .. c.name .. " joined") end
  all[#all + 1] = c
  local nums = {}
  for _, m in ipairs(all) do
    local n = tonumber(m.name:match("^guest(%d+)$") or "")
    if n then nums[n] = (nums[n] or 0) + 1 end
  end
  local dup = false
  for _, k in pairs(nums) do dup = dup or k > 1 end
  t.ok(not dup, "guest numbers are unique across workers")
  quit_all(all)
end)

t.test("a nick race across workers has one winner", function()
  local by, all = chat.on_each(s, 2, 2)
  settle_joins(all)
  local rounds, bad = 20, 0
  for r = 1, rounds do
    local want = "racer" .. r
    for _, m in ipairs(all) do m:say("/nick " .. want) end
    local winners = {}
    for _, m in ipairs(all) do
      local line = m:line()
      m.early = nil -- the winner's renaming, seen before one's own reply
      while line and line:find(" is now " .. want .. "$") do
        m.early = line
        line = m:line()
      end
      if line == "* you are now " .. want then
        winners[#winners + 1] = m
      elseif line ~= "* the name " .. want .. " is taken" then
        bad = bad + 1
        t.diag(format("round %d: %s got %q", r, m.name, tostring(line)))
      end
    end
    if #winners ~= 1 then
      bad = bad + 1
      t.diag(format("round %d: %d winners", r, #winners))
    else
      local w = winners[1]
      local notice = "* " .. w.name .. " is now " .. want
      for _, m in ipairs(all) do
        local l = m ~= w and (m.early or m:line())
        if m ~= w and l ~= notice then
          bad = bad + 1
          t.diag(format("round %d: %s got %q", r, m.name, tostring(l)))
        end
      end
      w.name = want
    end
  end
  t.is(bad, 0, format("%d rounds of 4 members (2 per worker) taking one "
    .. "name: one winner each, told to all", rounds))
  t.is(all[1]:who(), who(all), "/who agrees")
  quit_all(all)
end, 60)

t.test("the room is empty at the end; the log is clean", function()
  local m = chat.must_join(s)
  t.is(m:who(), "* 1 here: " .. m.name, "only the newcomer")
  quit_all { m }
  local odd = chat.odd_lines(s)
  t.is(#odd, 0, "nothing unexpected in the log")
  if #odd > 0 then t.diag(concat(odd, "\n")) end
  t.is(scratch.stop(s), 0, "the server exits 0 at SIGTERM")
end)

scratch.cleanup()
t.done()
