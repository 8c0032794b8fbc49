-- t/lib/util.lua: small helpers the tests share: the test's PID, scratch
-- files, random payloads, an FNV-1a hash, bounded waits.
--   local util = require "lib.util"
local coronet = require "coronet"
local ffi = require "ffi"
local bit = require "bit"
local bxor, band, lshift, tobit = bit.bxor, bit.band, bit.lshift, bit.tobit
local byte, format = string.byte, string.format
local unpack = unpack

local _M = {}

-- pid() returns this process's id (from /proc/self/stat).
function _M.pid()
  local f = assert(io.open("/proc/self/stat", "r"))
  local pid = f:read("*n")
  f:close()
  return pid
end

-- under_valgrind() says whether the suite runs under valgrind (slow).
function _M.under_valgrind()
  return os.getenv("CORONET_VALGRIND") ~= nil
end

local scratch = {}

-- tmpfile(contents [, suffix]) writes contents to a new file under /tmp
-- named after this process and returns its path; cleanup() removes them.
function _M.tmpfile(contents, suffix)
  local path = format("/tmp/coronet-test-%d-%d%s", _M.pid(), #scratch + 1,
    suffix or ".lua")
  local f = assert(io.open(path, "w"))
  f:write(contents)
  f:close()
  scratch[#scratch + 1] = path
  return path
end

function _M.cleanup()
  for _, p in ipairs(scratch) do os.remove(p) end
  scratch = {}
end

-- random_bytes(n [, seed]) returns n pseudo-random bytes (xorshift32):
-- every byte value appears, including "\0", "\r" and "\n".
function _M.random_bytes(n, seed)
  local buf = ffi.new("uint8_t[?]", n)
  local x = tobit(seed or 2463534242)
  if x == 0 then x = 1 end
  for i = 0, n - 1 do
    x = bxor(x, lshift(x, 13))
    x = bxor(x, bit.rshift(x, 17))
    x = bxor(x, lshift(x, 5))
    buf[i] = band(x, 255)
  end
  return ffi.string(buf, n)
end

-- fnv1a(s [, h]) returns the 32-bit FNV-1a hash of s as a number; pass
-- the previous result as h to hash a stream chunk by chunk.
function _M.fnv1a(s, h)
  h = h or tobit(0x811c9dc5)
  local p = ffi.cast("const uint8_t *", s)
  for i = 0, #s - 1 do
    h = bxor(h, p[i])
    -- h * 16777619 mod 2^32 without losing bits: 16777619 = 2^24 + 403
    h = tobit(lshift(h, 24) + h * 403)
  end
  return h
end

-- hex(h) formats a hash for messages.
function _M.hex(h) return bit.tohex(h) end

-- wait_until(fn [, timeout]) polls fn every 5 ms until it returns a true
-- value (returned) or timeout seconds (default 10) pass (nil).
function _M.wait_until(fn, timeout)
  local deadline = coronet.now() + (timeout or 10)
  repeat
    local v = fn()
    if v then return v end
    coronet.sleep(0.005)
  until coronet.now() > deadline
  return nil
end

-- read_all(conn [, max]) reads until EOF; returns the bytes and the error
-- that ended it ("eof" normally).
function _M.read_all(conn, max)
  local parts, n = {}, 0
  while true do
    local s, err = conn:read(65536)
    if not s then return table.concat(parts), err end
    parts[#parts + 1] = s
    n = n + #s
    if max and n > max then return table.concat(parts), "too much" end
  end
end

-- count_lines(s) counts "\n" in s.
function _M.count_lines(s)
  local n = 0
  for _ in s:gmatch("\n") do n = n + 1 end
  return n
end

-- rss_kib(pid) returns VmRSS of process pid in KiB, or nil.
function _M.rss_kib(pid)
  local f = io.open("/proc/" .. pid .. "/status", "r")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return tonumber(s:match("VmRSS:%s*(%d+)"))
end

-- show_bytes(s) is a short printable form of s for diagnostics: one line,
-- control and high bytes as \ddd.
function _M.show_bytes(s)
  local more = ""
  if #s > 60 then
    more = format("... (%d bytes)", #s)
    s = s:sub(1, 60)
  end
  return '"' .. s:gsub('[%c\128-\255\\"#]', function(ch)
    return format("\\%d", byte(ch))
  end) .. '"' .. more
end

_M.byte = byte
-- settle(n) lets the other ready tasks run n (default 5) loop turns.
function _M.settle(n)
  for _ = 1, n or 5 do coronet.yield() end
end

-- queued(q) counts the nodes of a channel's wait queue.
_M.queued = require("coronet.chan").queued

-- svc_stats(addr) asks a t/lib/svc_mem.lua server for its coronet.stats()
-- ("?\n" gets one line of key=value) and returns them as a table.
function _M.svc_stats(addr)
  local net = require "coronet.net"
  local c = assert(net.dial(addr, { timeout = 10 }))
  c:set_timeout(10)
  c:write("?\n")
  local line = c:read_line() or ""
  c:close()
  local st = {}
  for k, v in line:gmatch("([%w_]+)=(%d+)") do st[k] = tonumber(v) end
  return st
end

-- check_clean(t, base) checks, with t, that this process holds no more
-- connections, buffer blocks or tasks than coronet.stats() said in base
-- (plus the checking task), waiting up to 5 s for closes to finish.
function _M.check_clean(t, base)
  local clean = _M.wait_until(function()
    collectgarbage() -- what a test dropped without closing
    local st = coronet.stats()
    return st.connections <= base.connections and st.blocks <= base.blocks
      and st.tasks <= base.tasks + 1
  end, 5)
  if not t.ok(clean, "connections, buffer blocks and tasks back where they "
    .. "were") then
    local st = coronet.stats()
    t.diag(format("  now %d conns %d blocks %d tasks; before %d %d %d",
      st.connections, st.blocks, st.tasks, base.connections, base.blocks,
      base.tasks))
  end
end

-- spawn_wg(fn [, default_timeout]) runs fn in a task of its own and
-- returns join([timeout]), which waits (default_timeout, else 30 s) for
-- fn to end and returns what it returned.
function _M.spawn_wg(fn, default_timeout)
  local wg, res = coronet.waitgroup(), nil
  wg:add(1)
  coronet.spawn(function()
    res = { fn() }
    wg:done()
  end)
  return function(timeout)
    wg:wait(timeout or default_timeout or 30)
    return unpack(res or {})
  end
end

-- command(argv [, o]) runs a program to its end and returns its exit
-- code (nil if it ran past o.timeout, default 30 s, and was killed), its
-- stdout and its stderr. o.input is written to its stdin, which closes
-- after o.hold seconds (default at once).
function _M.command(argv, o)
  local process = require "coronet.process"
  o = o or {}
  argv.stdin, argv.stdout, argv.stderr = "pipe", "pipe", "pipe"
  local p = assert(process.spawn(argv))
  local outs, pending = {}, 2
  for _, k in ipairs { "stdout", "stderr" } do
    coronet.spawn(function()
      outs[k] = _M.read_all(p[k])
      pending = pending - 1
    end)
  end
  if o.input then p.stdin:write(o.input) end
  if o.hold then p:wait(o.hold) end
  p.stdin:close()
  local code, sig = p:wait(o.timeout or 30)
  if not code then
    p:kill("KILL")
    p:wait()
  end
  while pending > 0 do coronet.sleep(0.001) end
  return code, outs.stdout, outs.stderr, sig
end

-- run_all(n, fn [, timeout]) runs fn(i) for i = 1..n, each in a task of
-- its own, and waits for them all (default 120 s); returns how many
-- returned a true value, and the first error raised, if any.
function _M.run_all(n, fn, timeout)
  local pending, good, first = n, 0, nil
  for i = 1, n do
    coronet.spawn(function()
      local ok, r = pcall(fn, i)
      if ok and r then good = good + 1 end
      if not ok and not first then
        first = "task " .. i .. ": " .. tostring(r)
      end
      pending = pending - 1
    end)
  end
  _M.wait_until(function() return pending == 0 end, timeout or 120)
  return good, first
end

-- bad_arg(t, fn, n, name, why, label) checks, with t, that fn() raises
-- "bad argument #n to 'name' (why..." (why plain text) at a line of the
-- file that calls bad_arg, not inside coronet. fn must make the call as a
-- statement (a tail call leaves no line to blame).
function _M.bad_arg(t, fn, n, name, why, label)
  local here = debug.getinfo(2, "S").short_src
  local ok, err = pcall(fn)
  t.ok(not ok, label .. " raises")
  return t.like(err, "^" .. here:gsub("%p", "%%%0") .. ":%d+: bad argument #"
    .. n .. " to '" .. name .. "' %(" .. why:gsub("%p", "%%%0"),
    label .. ": " .. tostring(err))
end

-- no_leftovers(t) checks, with t, that no connection is open and only the
-- main task and the checking one run, waiting up to 1 s for them to end.
function _M.no_leftovers(t)
  for _ = 1, 100 do
    if coronet.stats().connections == 0 and coronet.stats().tasks == 2 then
      break
    end
    coronet.sleep(0.01)
  end
  t.is(coronet.stats().connections, 0, "no connection")
  t.is(coronet.stats().tasks, 2, "only the main task and this test's")
end

return _M
