-- t/240-handler-errors.t: a handler that raises ends only its own
-- connection; the error is logged once, with a traceback naming the
-- script's file:line, the connection id and the peer address; every other
-- connection goes on untouched. Server: t/lib/svc_fail.lua.
local t = require "lib.tap"
local server = require "lib.server"
local util = require "lib.util"
local coronet = require "coronet"
local net = require "coronet.net"

local script = server.path("t/lib/svc_fail.lua")

-- line_of(mark) is the line number of "MARK:mark" in the script.
local function line_of(mark)
  local n = 0
  for l in io.lines(script) do
    n = n + 1
    if l:find("MARK:" .. mark, 1, true) then return n end
  end
  error("no mark " .. mark)
end

local function esc(s) return (s:gsub("%p", "%%%0")) end

local function count(hay, needle)
  local n, i = 0, 1
  while true do
    local a, b = hay:find(needle, i, true)
    if not a then return n end
    n, i = n + 1, b + 1
  end
end

local s = server.start { script = script }

-- ask(c, line) sends a line and returns the reply line (or nil, err)
local function ask(c, line)
  c:write(line .. "\n")
  return c:read_line()
end

t.test("a raising handler closes only its connection", function()
  local a, b = s:connect(), s:connect()
  t.is(ask(a, "one"), "echo: one", "a works")
  t.is(ask(b, "one"), "echo: one", "b works")
  a:write("half a li") -- a is in the middle of a line
  b:write("boom\n")
  local v, err = b:read_line()
  t.is(v, nil, "the failing connection gets no reply")
  t.is(err, "eof", "it is closed: eof")
  a:write("ne\n")
  t.is(a:read_line(), "echo: half a line", "the other finishes its line")
  t.is(ask(a, "two"), "echo: two", "and goes on")
  local c = s:connect()
  t.is(ask(c, "new"), "echo: new", "a new connection is served")
  a:close()
  c:close()
end)

t.test("the error is logged once with file:line, conn id and peer",
  function()
    -- straight to the server, past an edge relay: the peer is this client
    local c = assert(net.dial(s.direct or s.addr, { timeout = 10 }))
    c:set_timeout(10)
    local peer = c:local_addr()
    t.is(ask(c, "hello"), "echo: hello", "served first")
    c:write("boom\n")
    t.is(select(2, c:read_line()), "eof", "closed")
    local where = esc(script) .. ":" .. line_of("boom") .. ": boom requested"
    local line = s:wait_log(where .. " %(conn %d+ from " .. esc(peer) .. "%)")
    t.ok(line, "the log line names file:line, the conn id and the peer " .. peer)
    if not line then t.diag(s:log()) end
    local log = s:log()
    t.is(count(log, "boom requested (conn"), 2, "once per failure (two so far)")
    t.like(log, "stack traceback:", "with a traceback")
    t.like(log, "\n\t" .. esc(script) .. ":" .. line_of("boom") .. ": in ",
      "whose frames name the script")
    c:close()
  end)

t.test("a runtime error names the line where it happened", function()
  local c = s:connect()
  c:write("nil\n")
  t.is(select(2, c:read_line()), "eof", "closed")
  local line = s:wait_log(esc(script) .. ":" .. line_of("nil")
    .. ": attempt to index")
  t.ok(line, "file:line of the faulting expression")
  t.like(line or "", "%(conn %d+ from 127%.0%.0%.1:%d+%)", "with conn and peer")
  c:close()
end)

t.test("an error that is not a string is logged too", function()
  local c = s:connect()
  c:write("table\n")
  t.is(select(2, c:read_line()), "eof", "closed")
  t.ok(s:wait_log("^coronet: {code = 1} %(conn %d+ from "),
    "the table is logged by its fields, with the conn") -- issue #13
  c:close()
end)

-- issue #14: a failing message handler hid the real error
for _, case in ipairs {
  { "recurse", "stack overflow", "infinite recursion" },
  { "badtostring", "__tostring failed: .*tostring fails too",
    "an error whose __tostring raises" },
  { "oddtostring", "__tostring failed: it returned a table",
    "an error whose __tostring returns a table" },
} do
  t.test(case[3] .. " is logged once with its own message", function()
    local before = #s.lines
    local c = s:connect()
    c:write(case[1] .. "\n")
    t.is(select(2, c:read_line()), "eof", "closed")
    c:close()
    local line = s:wait_log(case[2])
    t.ok(line, "the log has '" .. case[2] .. "'")
    t.ok(line and line:find("%(conn %d+ from "), "with the conn")
    local joined = table.concat(s.lines, "\n", before + 1)
    t.is(count(joined, "attempt to concatenate"), 0,
      "no error of the error handler instead")
    local entries = 0
    for i = before + 1, #s.lines do
      if s.lines[i]:find("^coronet: ") then entries = entries + 1 end
    end
    t.is(entries, 1, "one log entry")
    local c2 = s:connect()
    t.is(ask(c2, "y"), "echo: y", "the server goes on")
    c2:close()
  end)
end

t.test("a handler that closes its connection and then raises", function()
  -- regression: the task used to close its (already freed) connection
  -- again when it ended: a use-after-free
  local c = s:connect()
  local id_line
  c:write("closeboom\n")
  t.is(select(2, c:read_line()), "eof", "closed by the handler")
  id_line = s:wait_log(esc(script) .. ":" .. line_of("closeboom")
    .. ": after close")
  t.ok(id_line, "logged with file:line")
  t.like(id_line or "", "%(conn [1-9]%d* from ", "with the conn's real id")
  local c2 = s:connect()
  t.is(ask(c2, "still"), "echo: still", "the server goes on")
  c2:close()
  c:close()
end)

t.test("an error in a task spawned by a handler spares the connection",
  function()
    local c = s:connect()
    t.is(ask(c, "spawnboom"), "spawned", "the handler replied")
    t.ok(s:wait_log(esc(script) .. ":" .. line_of("spawnboom")
      .. ": in a spawned task"), "the task's error is logged with file:line")
    t.is(ask(c, "after"), "echo: after", "the connection still works")
    c:close()
  end)

t.test("a hundred failing connections leave no connection or task behind",
  function()
    local n = util.under_valgrind() and 20 or 100
    local before = count(s:log(), "boom requested")
    local pending = n
    for _ = 1, n do
      coronet.spawn(function()
        local c = s:connect()
        c:write("boom\n")
        c:read()
        c:close()
        pending = pending - 1
      end)
    end
    util.wait_until(function() return pending == 0 end, 60)
    util.wait_until(function()
      return count(s:log(), "boom requested") - before >= n
    end, 20)
    t.is(count(s:log(), "boom requested") - before, n, n .. " errors logged")
    local c = s:connect()
    local stats
    util.wait_until(function()
      stats = ask(c, "stats")
      return stats and stats:find("^connections=1 ")
    end, 10)
    t.like(stats, "^connections=1 tasks=%d+ blocks=%d+$",
      "only this connection is open: " .. tostring(stats))
    t.like(stats, "tasks=[12] ", "and only its task (and the main chunk's)")
    c:close()
  end)

t.test("the same failure on a second connection behaves the same", function()
  for round = 1, 2 do
    local c = s:connect()
    t.is(ask(c, "x"), "echo: x", "round " .. round .. ": served")
    c:write("boom\n")
    t.is(select(2, c:read_line()), "eof", "round " .. round .. ": closed")
    c:close()
  end
end)

t.test("the server exits 0 at SIGTERM after all this", function()
  t.is(s:stop(), 0, "exit 0")
  local log = s:log()
  t.is(count(log, "Segmentation"), 0, "no crash")
end)

t.done()
