-- t/430-reload-lifecycle.t: the life of a script version across reloads
-- (issue #13): coronet.superseded() ends an old version's background
-- tasks, listeners opened by a main chunk are handed over to the next
-- version without a gap (and closed when it no longer opens them), and a
-- reload whose main chunk fails to listen is a failed reload.
local t = require "lib.tap"
local scratch = require "lib.scratch"
-- these tests count versions: no edge-mode reloads (CORONET_EDGE=reload)
require("lib.server").edge_only = "relay"
local coronet = require "coronet"
local net = require "coronet.net"
local format = string.format

local ask = scratch.ask

-- ticker(tag) is a script whose main chunk starts a ticker that ends when
-- its version is superseded. Its handler answers "TAG GEN ENDED" where
-- ENDED counts the tickers that ended, and "wait" with "superseded" once
-- the handler's own version is.
local function ticker(tag)
  return format([[
local coronet = require "coronet"
local st = coronet.state("ticker")
st.gen = (st.gen or 0) + 1
local gen, tag = st.gen, %q
local done = coronet.superseded()
coronet.spawn(function()
  local tick = coronet.ticker(0.01)
  while coronet.select {
    { recv = done, fn = function() return false end },
    { recv = tick, fn = function() st.last = gen return true end },
  } do end
  tick:stop()
  st.ended = (st.ended or 0) + 1
end)
return function(conn)
  for line in conn:lines() do
    if line == "wait" then
      local sup = coronet.superseded() -- looked up from a handler task
      sup:recv()
      conn:write("superseded\n")
    elseif line == "poll" then
      local _, _, err = coronet.superseded():recv(0.05)
      conn:write(err == "timeout" and "open\n" or "closed\n")
    else
      conn:write(tag .. " " .. gen .. " " .. (st.ended or 0) .. " "
        .. (st.last or 0) .. "\n")
    end
  end
end
]], tag)
end

t.test("three reloads of a script with a ticker leave one ticker running",
  function()
    local d = scratch.dir("life")
    local path = d:write("s.lua", ticker("v1"))
    local s = scratch.start { script = path }
    local c1 = s:connect()
    t.is(ask(c1, "x"):match("^v1 1 0"), "v1 1 0", "v1 runs its ticker")
    for i = 2, 4 do
      d:write("s.lua", ticker("v" .. i))
      s:signal("HUP")
      t.ok(scratch.wait_count(s, scratch.reloaded(path), i - 1, 10),
        "reload " .. (i - 1))
    end
    local c = s:connect()
    local r = ask(c, "x")
    local gen, ended = r:match("^v4 (%d+) (%d+)")
    t.is(gen, "4", "v4 serves")
    t.is(ended, "3", "the three old tickers ended themselves")
    coronet.sleep(0.05)
    t.like(ask(c, "x"), "^v4 4 3 4$", "the newest ticker ticks")
    t.is(ask(c, "poll"), "open", "the newest version is not superseded")
    t.is(ask(c1, "poll"), "closed",
      "a v1 handler task finds its own version superseded")
    t.is(scratch.stop(s), 0, "exit 0")
    d:remove()
  end)

t.test("superseded() wakes an old version's handler waiting on it",
  function()
    local d = scratch.dir("life")
    local path = d:write("s.lua", ticker("v1"))
    local s = scratch.start { script = path }
    local c = s:connect()
    t.like(ask(c, "x"), "^v1 ", "v1 serves")
    c:write("wait\n")
    coronet.sleep(0.05)
    d:write("s.lua", ticker("v2"))
    s:signal("HUP")
    t.is(c:read_line(), "superseded", "the waiting v1 handler woke")
    t.like(ask(s:connect(), "x"), "^v2 ", "v2 serves")
    t.is(scratch.stop(s), 0, "exit 0")
    d:remove()
  end)

-- extra(tag, listen) is a script whose main chunk listens on the address
-- given as its argument (unless listen is false), answering TAG; listen
-- may also be a Lua expression for a second address to listen on.
local function extra(tag, listen, also)
  return format([[
local net = require "coronet.net"
local host = require "coronet.c.host"
local addr = ...
local tag = %q
if %s then
  local l = assert(net.listen(addr, function(conn)
    conn:write(tag .. "\n")
  end))
  host.log("info", "extra " .. tag .. " on " .. l:addr())
end
%s
return function(conn) conn:write("main " .. tag .. "\n") end
]], tag, tostring(listen ~= false), also or "")
end

-- hammer(addr) connects to addr in a loop until stop() is called; returns
-- stop, which returns the replies seen (tag -> count) and the failures.
local function hammer(addr)
  local seen, fails, stopped, done = {}, {}, false, false
  coronet.spawn(function()
    while not stopped do
      local c, err = net.dial(addr, { timeout = 5 })
      if not c then
        fails[#fails + 1] = err
      else
        c:set_timeout(5)
        local line, rerr = c:read_line()
        if line then
          seen[line] = (seen[line] or 0) + 1
        else
          fails[#fails + 1] = "read: " .. tostring(rerr)
        end
        c:close()
      end
    end
    done = true
  end)
  return function()
    stopped = true
    while not done do coronet.sleep(0.005) end
    return seen, fails
  end
end

t.test("a listener of the main chunk is handed over at reload: no gap, "
  .. "no old handler afterwards", function()
  local d = scratch.dir("life")
  local path = d:write("s.lua", extra("v1"))
  local s = scratch.start { script = path, args = { "127.0.0.1:0" } }
  local line = s:wait_log("extra v1 on ")
  local addr = line and line:match("on (%S+)$")
  t.ok(addr, "v1 listens on its extra address " .. tostring(addr))
  local stop = hammer(addr)
  coronet.sleep(0.1)
  d:write("s.lua", extra("v2"))
  s:signal("HUP")
  t.ok(scratch.wait_count(s, scratch.reloaded(path), 1, 10), "reloaded")
  local after = s:wait_log("extra v2 on ")
  t.is(after and after:match("on (%S+)$"), addr, "v2 got the same socket")
  coronet.sleep(0.1)
  local seen, fails = stop()
  t.is(#fails, 0, "no connection was refused or dropped during the reload")
  if #fails > 0 then t.diag(table.concat(fails, "\n")) end
  t.ok((seen.v1 or 0) > 0 and (seen.v2 or 0) > 0,
    format("served by v1 then v2 (%d, %d)", seen.v1 or 0, seen.v2 or 0))
  for _ = 1, 10 do
    local c = assert(net.dial(addr, { timeout = 5 }))
    c:set_timeout(5)
    t.is(c:read_line(), "v2", "a new connection gets v2")
    c:close()
  end
  t.is(ask(s:connect(), "x"), "main v2", "the main handler is v2's too")
  -- a version that does not listen there any more closes the listener
  d:write("s.lua", extra("v3", false))
  s:signal("HUP")
  t.ok(scratch.wait_count(s, scratch.reloaded(path), 2, 10), "reloaded")
  local c, err = net.dial(addr, { timeout = 5 })
  t.is(c, nil, "v3 does not listen there: the address is closed")
  t.like(err, "refused", "refused")
  t.is(scratch.stop(s), 0, "exit 0")
  d:remove()
end)

t.test("a reload whose main chunk fails to listen is a failed reload",
  function()
    local d = scratch.dir("life")
    local path = d:write("s.lua", extra("v1"))
    local s = scratch.start { script = path, args = { "127.0.0.1:0" } }
    local line = s:wait_log("extra v1 on ")
    local addr = line:match("on (%S+)$")
    -- v2 also listens on the server's own address, which is taken; it
    -- ignores the error, but the reload fails all the same
    d:write("s.lua", extra("v2", true, format(
      "net.listen(%q, function() end)", s.addr)))
    s:signal("HUP")
    local failed = s:wait_log(scratch.failed(""), 10)
    t.ok(failed, "the log says the reload failed")
    t.like(failed or "", "listen " .. scratch.quote(s.addr)
      .. ": address already in use", "with the failed listen as the cause")
    t.is(scratch.count(s, scratch.reloaded(path)), 0, "and not 'reloaded'")
    local c = assert(net.dial(addr, { timeout = 5 }))
    c:set_timeout(5)
    t.is(c:read_line(), "v1", "the old version keeps its extra listener")
    c:close()
    t.is(ask(s:connect(), "x"), "main v1", "and its handler")
    -- an assert on the listen is a failed reload the same way
    d:write("s.lua", extra("v3", true, format(
      "assert(net.listen(%q, function() end))", s.addr)))
    s:signal("HUP")
    t.ok(scratch.wait_count(s, scratch.failed(""), 2, 10), "failed again")
    t.is(ask(s:connect(), "x"), "main v1", "v1 still serves")
    d:write("s.lua", extra("v4"))
    s:signal("HUP")
    t.ok(scratch.wait_count(s, scratch.reloaded(path), 1, 10),
      "a good version reloads")
    c = assert(net.dial(addr, { timeout = 5 }))
    c:set_timeout(5)
    t.is(c:read_line(), "v4", "and takes the extra listener over")
    c:close()
    t.is(scratch.stop(s), 0, "exit 0")
    d:remove()
  end)

t.test("with --workers 2, a failed reload is one line", function()
  local d = scratch.dir("life")
  local path = d:write("s.lua", extra("v1", false))
  local s = scratch.start { script = path, opts = { "--workers", "2" },
    args = { "127.0.0.1:0" } }
  d:write("s.lua", "error('broken v2')\n")
  s:signal("HUP")
  t.ok(s:wait_log(scratch.failed(path) .. ":1: broken v2$"),
    "the failure names file:line")
  coronet.sleep(0.2)
  t.is(scratch.count(s, "broken v2"), 1, "once, not once per worker")
  t.is(scratch.stop(s), 0, "exit 0")
  d:remove()
end)

scratch.cleanup()
t.done()
