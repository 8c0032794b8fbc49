-- t/280-memory.t: memory after load (issue #14): the loop drives Lua's
-- garbage collector, so a server that went idle gives its garbage back;
-- a download to a peer that never reads holds no file buffer.
local t = require "lib.tap"
local server = require "lib.server"
local util = require "lib.util"
local coronet = require "coronet"

local script = server.path("t/lib/svc_hold.lua")

local function heap(c)
  c:write("?\n")
  return tonumber(c:read_line())
end

t.test("the Lua heap falls back once a burst is over", function()
  local s = server.start { script = script }
  local q = s:connect()
  coronet.sleep(0.6) -- the start's own garbage is collected first
  local before = heap(q)
  local wg = coronet.waitgroup()
  for k = 1, 20 do
    wg:add(1)
    coronet.spawn(function()
      local c = s:connect()
      for i = 1, 10 do
        c:write("k" .. k .. "-" .. i .. "\n")
        c:read_line()
      end
      wg:done()
      coronet.sleep(0.2) -- all of them hold their state at once
      c:close()
    end)
  end
  wg:wait(30)
  q:write("cycle\n")
  q:read_line()
  local peak = heap(q)
  t.cmp_ok(peak - before, ">", 4e6, string.format("the burst left garbage: "
    .. "%.1f MB -> %.1f MB", before / 1e6, peak / 1e6))
  coronet.sleep(1.5) -- they left; idle: no request at all
  local after = heap(q)
  t.cmp_ok(after, "<", peak / 8, string.format("1.5 s later the heap is "
    .. "down to %.1f MB without any request", after / 1e6))
  q:close()
  t.is(s:stop(), 0, "exit 0")
end)

t.test("a download to a peer that never reads holds no file buffer",
  function()
    local dir = util.tmpfile("", ".bin")
    local f = assert(io.open(dir, "wb"))
    f:write(string.rep("d", 16 * 1024 * 1024))
    f:close()
    local dl = util.tmpfile(string.format([[
local fs = require "coronet.fs"
local io_ = require "coronet.io"
return function(conn)
  local f = assert(fs.open(%q))
  io_.copy(conn, f)
  f:close()
end
]], dir))
    local s = server.start { script = dl, opts = { "--write-buffer", "16k" } }
    local conns = {}
    for i = 1, 5 do conns[i] = s:connect() end
    coronet.sleep(1)
    local r0 = util.rss_kib(s.proc.pid)
    for i = 6, 45 do conns[i] = s:connect() end
    coronet.sleep(2) -- the kernel's buffers fill, then the write chains
    local per = (util.rss_kib(s.proc.pid) - r0) / 40
    if os.getenv("ASAN_OPTIONS") then
      t.pass("# SKIP RSS figures mean little under AddressSanitizer")
    else t.cmp_ok(per, "<", 64, string.format("%.1f KiB of RSS per stalled "
      .. "download with a 16 KiB write buffer (a 64 KiB file buffer each "
      .. "before)", per)) end
    for _, c in ipairs(conns) do c:close() end
    t.is(s:stop(), 0, "exit 0")
    util.cleanup()
  end)

t.test("the C heap gives a burst's buffers back to the system", function()
  -- each member holds 48 KB of a line it has not finished in its read
  -- chain (blocks of the C heap) until it leaves
  local hold = util.tmpfile([[
return function(conn) conn:read_line() end
]])
  local s = server.start { script = hold, edge = false,
    opts = { "--log-level", "debug" } }
  local pid = s.proc.pid
  local r0 = util.rss_kib(pid)
  local conns, part = {}, string.rep("x", 48 * 1024)
  for i = 1, 400 do
    conns[i] = s:connect()
    conns[i]:write(part)
  end
  local peak = r0
  for _ = 1, 100 do -- until the server has read them all (or 10 s)
    peak = util.rss_kib(pid)
    if peak - r0 > 400 * 40 then break end
    coronet.sleep(0.1)
  end
  t.cmp_ok(peak - r0, ">", 400 * 40, string.format("the members' lines "
    .. "are held: RSS %.1f -> %.1f MB", r0 / 1024, peak / 1024))
  local seen = #s.lines
  for _, c in ipairs(conns) do c:close() end
  local line -- the next trim's log line, within 2 s of a look (or 20 s)
  for _ = 1, 200 do
    for i = seen + 1, #s.lines do
      if s.lines[i]:find("heap: .* trimmed") then line = s.lines[i] end
    end
    if line then break end
    coronet.sleep(0.1)
  end
  local after = util.rss_kib(pid)
  if os.getenv("ASAN_OPTIONS") then
    t.pass("# SKIP the sanitizer's allocator keeps its own memory")
    t.pass("# SKIP the sanitizer's allocator keeps its own memory")
  else
    t.ok(line, "a trim is logged once they left: " .. tostring(line))
    t.cmp_ok(after - r0, "<", (peak - r0) / 2, string.format("RSS falls "
      .. "back to %.1f MB (from %.1f) without any request", after / 1024,
      peak / 1024))
  end
  t.is(s:stop(), 0, "exit 0")
  util.cleanup()
end)

t.done()
