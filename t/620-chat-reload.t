-- t/620-chat-reload.t: the chat room survives reloads of chat.lua (issue
-- #5): members who joined before a reload and those who joined after it
-- talk with each other, each connection keeps its own version of the
-- code, and a broken edit changes nothing. chat.lua and its modules are
-- copied to a scratch directory and edited there; round 1 reloads with
-- --watch (an in-place edit, then a rename), round 2 with SIGHUP; each
-- on one worker, then on two (issue #8).
local t = require "lib.tap"
local chat = require "lib.chat"
local scratch = require "lib.scratch"
local server = require "lib.server"
local format = string.format

local TRY = "; try /nick NAME, /who or /quit"

-- version(source, n) is chat_room.lua whose unknown-command notice names
-- version n, so that a reply tells which code a connection runs.
local function version(source, n)
  local text, count = source:gsub(scratch.quote(TRY), TRY .. " (v" .. n
    .. ")")
  assert(count == 1, "chat_room.lua's unknown-command notice moved")
  return text
end

-- unknown(m) -> the version named by m's reply to an unknown command
local function unknown(m)
  m:say("/bogus")
  local line = m:line() or ""
  return line:match("^%* unknown command /bogus" .. scratch.quote(TRY)
    .. " %(v(%d+)%)$")
end

-- says(from, text, others) checks that each of others gets from's line.
local function says(from, text, others)
  from:say(text)
  for _, m in ipairs(others) do
    m:expect(from.name .. ": " .. text, format("%s hears %s", m.name,
      from.name))
  end
end

local function joins(new, others)
  for _, m in ipairs(others) do m:expect("* " .. new.name .. " joined") end
end

local function sorted_who(...)
  local names = {}
  for _, m in ipairs { ... } do names[#names + 1] = m.name end
  table.sort(names)
  return format("* %d here: %s", #names, table.concat(names, ", "))
end

for _, workers in ipairs { 1, 2 } do
for round = 1, 2 do
  t.test(format("members from before and after reloads talk to each "
    .. "other (%s, %d worker%s)", round == 1 and "--watch" or "SIGHUP",
    workers, workers > 1 and "s" or ""), function()
    local d = scratch.dir("chat")
    local path, chat_lua = d:copy(server.path("scripts/chat.lua"), "chat.lua")
    d:copy(server.path("scripts/chat_proto.lua"), "chat_proto.lua")
    d:copy(server.path("scripts/chat_redis.lua"), "chat_redis.lua")
    local _, source = d:copy(server.path("scripts/chat_room.lua"),
      "chat_room.lua")
    d:write("chat_room.lua", version(source, 1))
    local s = chat.start(path, workers, round == 1 and { "--watch" } or {})
    local _, first = chat.on_each(s, workers, workers > 1 and 1 or 0)
    for _, m in ipairs(first) do -- every worker serves some, whatever
      m:say("/quit")            -- the kernel picks below
      repeat local l = m:line() until not l or l == "* bye"
      m:close()
    end
    local reloads, broken = 0, false
    local function reload(how)
      reloads = reloads + 1
      if how == "edit" then
        d:write("chat_room.lua", version(source, reloads + 1))
      elseif how == "rename" then
        d:replace("chat_room.lua", version(source, reloads + 1))
      else
        d:write("chat_room.lua", version(source, reloads + 1))
      end
      if broken then -- the edit that mends chat.lua is the one that takes
        broken = false
        d:replace("chat.lua", chat_lua)
      end
      if how == "hup" then s:signal("HUP") end
      local ok = scratch.wait_count(s, scratch.reloaded(path),
        reloads, 10) -- one line per reload, whatever the workers
      if not t.ok(ok, "reload " .. reloads .. " is logged") then
        t.diag(s:log())
      end
    end

    local a = chat.must_join(s)
    local b = chat.must_join(s)
    joins(b, { a })
    t.is(unknown(a), "1", "a runs v1")

    reload(round == 1 and "edit" or "hup")
    local c = chat.must_join(s)
    joins(c, { a, b })
    t.is(tonumber(c.name:match("%d+")), tonumber(b.name:match("%d+")) + 1,
      "guest numbers go on across the reload")
    t.is(unknown(c), "2", "c, who joined after the reload, runs v2")
    t.is(unknown(a), "1", "a still runs v1")
    says(c, "hello from v2", { a, b })
    says(a, "hello from v1", { b, c })
    t.is(c:who(), sorted_who(a, b, c), "c's /who lists everyone")
    t.is(a:who(), sorted_who(a, b, c), "so does a's")
    local old = a.name
    a:say("/nick old_timer")
    a:expect("* you are now old_timer")
    b:expect("* " .. old .. " is now old_timer")
    c:expect("* " .. old .. " is now old_timer")
    a.name = "old_timer"
    c:say("/nick old_timer")
    c:expect("* the name old_timer is taken",
      "v2 sees the names v1 gave: one set of names")

    -- A broken edit: nothing changes for anyone.
    d:write("chat.lua", "local x = = 1\n" .. chat_lua)
    broken = true
    if round == 2 then s:signal("HUP") end
    t.like(s:wait_log(scratch.failed(path) .. ":1: ", 10) or "",
      "stays", "a broken chat.lua is refused, with file:line")
    local e = chat.must_join(s)
    joins(e, { a, b, c })
    t.is(unknown(e), "2", "a newcomer still gets v2")
    says(e, "still one room", { a, b, c })

    reload(round == 1 and "rename" or "hup")
    local f = chat.must_join(s)
    joins(f, { a, b, c, e })
    t.is(unknown(f), "3", "f, who joined after the second reload, runs v3")
    says(f, "v3 here", { a, b, c, e })
    says(b, "v1 here", { a, c, e, f })
    t.is(f:who(), sorted_who(a, b, c, e, f), "f's /who lists everyone")

    -- Leaving works across versions: a v1 member quits, a v2 member
    -- closes its connection.
    a:say("/quit")
    a:expect("* bye")
    t.ok(a:eof(), "a's connection closes after the bye")
    for _, m in ipairs { b, c, e, f } do m:expect("* old_timer left") end
    c:close()
    for _, m in ipairs { b, e, f } do m:expect("* " .. c.name .. " left") end
    t.is(b:who(), sorted_who(b, e, f), "v1's /who after both left")
    t.is(f:who(), sorted_who(b, e, f), "v3's /who agrees")

    -- A v1 member that stops reading is dropped by v3's code when its
    -- queue fills; the rest go on.
    local pad = string.rep("z", 4000)
    local sent, left = 0, false
    for i = 1, 4000 do
      f:say(pad)
      sent = i
      for _, m in ipairs { e } do
        local line = m:line()
        if line == "* " .. b.name .. " left (too slow)" then
          left = true
          line = m:line()
        end
        if line ~= f.name .. ": " .. pad then
          t.fail("e gets f's lines", "  got " .. tostring(line):sub(1, 60))
          break
        end
      end
      if left then break end
    end
    t.ok(left, format("b (v1, not reading) is dropped as too slow after "
      .. "%d lines of 4000 bytes", sent))
    local dropped = b.conn:read(1) -- it still has data; the close comes
    local _, err = require("lib.util").read_all(b.conn, 64 * 1024 * 1024)
    t.ok(dropped and (err == "eof" or err == "reset"
      or err == "connection reset by peer"),
      "b's connection was closed by the server")
    b:close()
    t.is(e:who(), sorted_who(e, f), "e and f remain")
    f:expect("* " .. b.name .. " left (too slow)", "f, who talked, is told")
    e:say("/quit")
    e:expect("* bye")
    f:expect("* " .. e.name .. " left")
    f:say("/quit")
    f:expect("* bye")
    chat.check_spread(s, workers)
    t.is(scratch.stop(s), 0, "the server exits 0 at SIGTERM")
    local odd = chat.odd_lines(s, { scratch.reloaded(path),
      scratch.failed(path) .. ":1: ", "^coronet: Terminated: shutting down",
      "^coronet: worker %d+: waiting up to", "reload superseded" })
    t.is(#odd, 0, "the log has reloads and the one failure, no errors")
    if #odd > 0 then t.diag(table.concat(odd, "\n")) end
    d:remove()
  end, 60)
end
end

scratch.cleanup()
t.done()
