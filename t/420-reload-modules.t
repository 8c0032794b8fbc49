-- t/420-reload-modules.t: modules the script requires from its own
-- directory (issue #5): a reload loads again those whose file changed,
-- and only those; a broken module fails the reload with its file:line
-- and the old handler stays; --watch sees a module's edit.
local t = require "lib.tap"
local scratch = require "lib.scratch"
local coronet = require "coronet"
local format = string.format

local ask = scratch.ask

-- The script replies "GEN HELPER DEEP": GEN counts its own loads; each
-- module's part is "VERSION/LOADS", LOADS counting that module's loads.
local main = [[
local coronet = require "coronet"
local helper = require "helper"
local deep = require "sub.deep"
local st = coronet.state("mods")
st.loads = (st.loads or 0) + 1
local gen = st.loads
return function(conn)
  for line in conn:lines() do
    conn:write(gen .. " " .. helper.describe() .. " " .. deep.describe()
      .. "\n")
  end
end
]]

-- module(key, version) is a module counting its loads in coronet.state.
local function module(key, version)
  return format([[
local coronet = require "coronet"
local st = coronet.state(%q)
st.n = (st.n or 0) + 1
local M = { VERSION = %q, loads = st.n }
function M.describe() return M.VERSION .. "/" .. M.loads end
return M
]], key, version)
end

local function setup(opts)
  local d = scratch.dir("modules")
  d:mkdir("sub")
  d:write("helper.lua", module("helper", "h1"))
  d:write("sub/deep.lua", module("deep", "d1"))
  local path = d:write("s.lua", main)
  -- these tests count reloads: no edge-mode reloads (CORONET_EDGE=reload)
  local s = scratch.start { script = path, opts = opts, edge = "relay" }
  return s, d, path
end

-- reload(s, path, n, what) sends SIGHUP and waits for reload n.
local function reload(s, path, n, what)
  s:signal("HUP")
  local ok = scratch.wait_count(s, scratch.reloaded(path), n, 10)
  if not t.ok(ok, what) then t.diag(s:log()) end
end

local function fresh(s)
  local c = s:connect()
  local r, err = ask(c, "?")
  c:close()
  return r or err
end

for round = 1, 2 do
  t.test(format("a reload loads again the modules whose file changed, "
    .. "and only those (round %d)", round), function()
    local s, d, path = setup()
    local c1 = s:connect()
    t.is(ask(c1, "?"), "1 h1/1 d1/1", "first load")
    reload(s, path, 1, "SIGHUP with nothing changed reloads")
    t.is(fresh(s), "2 h1/1 d1/1", "the script ran again; its modules did not")
    d:write("helper.lua", module("helper", "h2"))
    reload(s, path, 2, "SIGHUP after an edit of helper.lua reloads")
    t.is(fresh(s), "3 h2/2 d1/1", "helper loaded again; sub.deep not")
    d:replace("sub/deep.lua", module("deep", "d2"))
    reload(s, path, 3, "SIGHUP after sub/deep.lua was replaced reloads")
    t.is(fresh(s), "4 h2/2 d2/2", "sub.deep loaded again; helper not")
    reload(s, path, 4, "SIGHUP with nothing changed reloads")
    t.is(fresh(s), "5 h2/2 d2/2", "nothing loaded again but the script")
    t.is(ask(c1, "?"), "1 h1/1 d1/1",
      "the first connection still runs v1 with the first modules")
    t.is(scratch.stop(s), 0, "the server exits 0 at SIGTERM")
    d:remove()
  end)
end

t.test("an edit that keeps a module's size, right after a reload, is seen",
  function()
    local s, d, path = setup()
    t.is(fresh(s), "1 h1/1 d1/1", "first load")
    local n = 0
    for i = 2, 9 do -- "hN": each version has the same size
      d:write("helper.lua", module("helper", "h" .. i))
      reload(s, path, i - 1, "reload " .. (i - 1))
      local r = fresh(s)
      if r ~= format("%d h%d/%d d1/1", i, i, i) then
        t.diag(format("  after edit %d: %s", i - 1, r))
      else
        n = n + 1
      end
    end
    t.is(n, 8, "each of 8 quick same-size edits was loaded")
    t.is(scratch.stop(s), 0, "the server exits 0 at SIGTERM")
    d:remove()
  end)

t.test("a module with a syntax error fails the reload with its file:line; "
  .. "its fix loads", function()
    local s, d, path = setup()
    local c1 = s:connect()
    t.is(ask(c1, "?"), "1 h1/1 d1/1", "first load")
    d:write("helper.lua", "local M = {}\nM.x = = 1\nreturn M\n")
    s:signal("HUP")
    local line = s:wait_log("^coronet: reload failed", 10)
    t.like(line, "^coronet: reload failed, the old handler stays: " .. scratch.quote(d:path("helper.lua"))
      .. ":2: unexpected symbol near '='",
      "the log names the module's file and line")
    t.is(fresh(s), "1 h1/1 d1/1", "the old handler, with its modules, stays")
    d:write("helper.lua", module("helper", "h2"))
    reload(s, path, 1, "after the fix SIGHUP reloads")
    t.is(fresh(s), "2 h2/2 d1/1", "with the fixed module")
    t.is(ask(c1, "?"), "1 h1/1 d1/1", "the first connection is untouched")
    t.is(scratch.stop(s), 0, "the server exits 0 at SIGTERM")
    d:remove()
  end)

-- issue #14: a failed require left Lua's loading marker behind
t.test("a module that failed to load is tried again by the next require "
  .. "and the next reload", function()
  local d = scratch.dir("modules")
  d:write("badmod.lua", [[
local f = assert(io.open("]] .. d.root .. [[/data.txt", "r"))
local M = { data = f:read("*l") }
f:close()
return M
]])
  local path = d:write("s.lua", [[
return function(conn)
  for line in conn:lines() do
    local ok, m = pcall(require, "badmod")
    conn:write((ok and "data " .. m.data or "error " .. tostring(m)) .. "\n")
  end
end
]])
  local s = scratch.start { script = path }
  local c = s:connect()
  t.like(ask(c, "?"), "^error .*data%.txt: No such file",
    "the first require fails with its own error")
  t.like(ask(c, "?"), "^error .*data%.txt: No such file",
    "so does the second, with the same error, not 'loop or previous error'")
  d:write("data.txt", "fixed\n")
  t.is(ask(c, "?"), "data fixed", "once the cause is fixed, require loads it")
  -- at reload: a version that requires it in its main chunk
  os.remove(d:path("data.txt"))
  d:write("s.lua", [[
local m = require "badmod2"
return function(conn) conn:write("v2 " .. m.data .. "\n") end
]])
  d:write("badmod2.lua", (io.open(d:path("badmod.lua")):read("*a")))
  s:signal("HUP")
  t.ok(s:wait_log(scratch.failed(""), 10), "the reload fails: no data")
  d:write("data.txt", "back\n")
  reload(s, path, 1, "after the fix SIGHUP reloads")
  t.is(fresh(s), "v2 back", "with the module loaded this time")
  c:close()
  t.is(scratch.stop(s), 0, "the server exits 0 at SIGTERM")
  d:remove()
end)

t.test("a changed module is loaded once even when the script's reload "
  .. "fails first", function()
    local s, d, path = setup()
    t.is(fresh(s), "1 h1/1 d1/1", "first load")
    d:write("helper.lua", module("helper", "h2"))
    d:write("s.lua", "local helper = require 'helper'\nerror('later')\n")
    s:signal("HUP")
    t.like(s:wait_log(scratch.failed(path), 10),
      scratch.failed(path) .. ":2: later", "the failure is logged")
    t.is(fresh(s), "1 h1/1 d1/1", "the old handler stays")
    d:write("s.lua", main)
    reload(s, path, 1, "the fixed script reloads")
    t.is(fresh(s), "2 h2/2 d1/1",
      "helper v2, loaded by the failed reload, is the one used")
    t.is(scratch.stop(s), 0, "the server exits 0 at SIGTERM")
    d:remove()
  end)

-- outer.lua requires inner.lua; the script requires both, inner first
-- or outer first.
local function nested(order)
  local reqs = order == "inner first"
    and "local inner = require 'inner'\nlocal outer = require 'outer'\n"
    or "local outer = require 'outer'\nlocal inner = require 'inner'\n"
  return reqs .. [[
return function(conn)
  for line in conn:lines() do
    conn:write(outer.describe() .. " " .. inner.VERSION .. "\n")
  end
end
]]
end

local outer = [[
local inner = require "inner"
return { describe = function() return "outer+" .. inner.VERSION end }
]]

for _, order in ipairs { "outer first", "inner first" } do
  t.test("a changed module that an unchanged module requires is seen "
    .. "through it (" .. order .. ")", function()
    local d = scratch.dir("modules")
    d:write("inner.lua", "return { VERSION = 'i1' }\n")
    d:write("outer.lua", outer)
    local path = d:write("s.lua", nested(order))
    local s = scratch.start { script = path, edge = "relay" }
    t.is(fresh(s), "outer+i1 i1", "first load")
    d:write("inner.lua", "return { VERSION = 'i2' }\n")
    reload(s, path, 1, "SIGHUP after an edit of inner.lua reloads")
    t.is(fresh(s), "outer+i2 i2",
      "outer, unchanged, uses the new inner, as the script does")
    reload(s, path, 2, "SIGHUP with nothing changed reloads")
    t.is(fresh(s), "outer+i2 i2", "still the new inner")
    t.is(scratch.stop(s), 0, "the server exits 0 at SIGTERM")
    d:remove()
  end)
end

t.test("--watch: an edit of a module alone reloads the script with it",
  function()
    local s, d, path = setup { "--watch" }
    t.is(fresh(s), "1 h1/1 d1/1", "first load")
    d:replace("helper.lua", module("helper", "h2"))
    local ok = scratch.wait_count(s, scratch.reloaded(path), 1, 10)
    t.ok(ok, "helper.lua's change reloads s.lua")
    t.is(fresh(s), "2 h2/2 d1/1", "with the new helper")
    t.is(scratch.stop(s), 0, "the server exits 0 at SIGTERM")
    d:remove()
  end)

scratch.cleanup()
t.done()
