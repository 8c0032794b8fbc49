-- t/140-fs.t: coronet.fs: files on libuv's thread pool. Modes, reads,
-- writes, seek, stat, close, errors naming the path, many files at once,
-- and a read blocked in the thread pool (a FIFO) while a connection keeps
-- its ping-pong going.
local t = require "lib.tap"
local util = require "lib.util"
local kinds = require "lib.kinds"
local pair = require "lib.pair"
local coronet = require "coronet"
local io = require "coronet.io"
local fs = require "coronet.fs"
local process = require "coronet.process"
local sub, format, concat = string.sub, string.format, table.concat

local base = coronet.stats()
local scratch = {}
local function path(tag)
  local p = kinds.path(tag)
  scratch[#scratch + 1] = p
  return p
end

local function mkfifo(p)
  local proc = assert(process.spawn { "mkfifo", p })
  return proc:wait(10) == 0
end

local spawn_wg = util.spawn_wg

t.test("write_file and read_file round-trip every size", function()
  for _, n in ipairs { 0, 1, 65535, 65536, 65537, 1000000 } do
    local p = path("rt")
    local s = util.random_bytes(n, n + 1)
    t.is(fs.write_file(p, s), true, "write_file of " .. n .. " bytes")
    local got = fs.read_file(p)
    t.ok(got == s, "read_file gives them back: " .. n .. " bytes")
    t.is(fs.stat(p).size, n, "stat says " .. n)
  end
  local p = path("frag")
  t.is(fs.write_file(p, { "ab", "", "cd" }), true, "write_file of fragments")
  t.is(fs.read_file(p), "abcd", "joined")
  t.is(fs.write_file(p, "ef", "a"), true, "write_file in append mode")
  t.is(fs.read_file(p), "abcdef", "appended")
end)

t.test("errors name the operation and the path", function()
  local missing = "/tmp/coronet-no-such-dir-" .. util.pid() .. "/x"
  local f, err = fs.open(missing)
  t.is(f, nil, "open of a missing file fails")
  t.is(err, "open " .. missing .. ": no such file or directory",
    "the message names the path")
  t.like(select(2, fs.read_file(missing)), "^open .*no such file",
    "read_file too")
  t.like(select(2, fs.write_file(missing, "x")), "^open .*no such file",
    "write_file too")
  t.like(select(2, fs.stat(missing)), "^stat " .. missing:gsub("%-", "%%-"),
    "stat")
  t.like(select(2, fs.remove(missing)), "^remove ", "remove")
  t.like(select(2, fs.read_file("/tmp")), "^read /tmp: ",
    "reading a directory")
  local p = path("ro")
  fs.write_file(p, "abc")
  local r = assert(fs.open(p, "r"))
  local n, werr = r:write("x")
  t.is(n, nil, "writing a file opened for reading fails")
  t.like(werr, "^write " .. p:gsub("%-", "%%-") .. ": ", "naming the path")
  r:close()
  t.ok(not pcall(fs.open, p, "q"), "a bad mode raises")
  t.ok(not pcall(fs.open, 5), "a bad path raises")
end)

t.test("modes: w truncates, a appends, r+ reads and writes, wx is "
  .. "exclusive", function()
  local p = path("modes")
  fs.write_file(p, "0123456789")
  local f = assert(fs.open(p, "w"))
  f:write("ab")
  f:close()
  t.is(fs.read_file(p), "ab", "w truncates")
  f = assert(fs.open(p, "a"))
  f:write("cd")
  f:write("ef")
  f:close()
  t.is(fs.read_file(p), "abcdef", "a appends")
  f = assert(fs.open(p, "r+"))
  t.is(f:read(2), "ab", "r+ reads")
  t.is(f:write("XY"), 2, "and writes where it is")
  t.is(f:seek("set"), 0, "seek to the start")
  t.is(f:read(), "abXYef", "the write landed at the position")
  f:close()
  f = assert(fs.open(p, "a+"))
  t.is(f:read(3), "abX", "a+ reads from the start")
  f:write("!")
  f:close()
  t.is(fs.read_file(p), "abXYef!", "and writes at the end")
  local x, err = fs.open(p, "wx")
  t.ok(x == nil and err:find("exists"), "wx on an existing file fails")
  local q = path("excl")
  f = assert(fs.open(q, "wx"), "wx creates a new file")
  f:close()
  f = assert(fs.open(q, "w+b"))
  f:write("hello")
  f:seek("set", 1)
  t.is(f:read(3), "ell", "w+ reads back")
  f:close()
end)

t.test("read returns 1..n bytes, then eof, and again eof", function()
  local p = path("read")
  local s = util.random_bytes(200000, 5)
  fs.write_file(p, s)
  local f = assert(fs.open(p))
  local parts, sizes = {}, { 1, 2, 100, 70000, 65536, 3 }
  local i = 0
  while true do
    i = i % #sizes + 1
    local x, err = f:read(sizes[i])
    if not x then
      t.is(err, "eof", "ends with eof")
      break
    end
    if #x < 1 or #x > sizes[i] then
      t.fail("read(" .. sizes[i] .. ") returned " .. #x .. " bytes")
    end
    parts[#parts + 1] = x
  end
  t.ok(concat(parts) == s, "every byte in order")
  t.is(select(2, f:read()), "eof", "eof again")
  t.ok(not pcall(f.read, f, 0), "read(0) raises")
  f:close()
end)

t.test("seek: set, cur, end, past the end", function()
  local p = path("seek")
  fs.write_file(p, "0123456789")
  local f = assert(fs.open(p, "r+"))
  t.is(f:read(3), "012", "read 3")
  t.is(f:seek(), 3, "seek() tells the position after read-ahead")
  t.is(f:seek("cur", 2), 5, "seek cur")
  t.is(f:read(2), "56", "read there")
  t.is(f:seek("end", -1), 9, "seek end")
  t.is(f:read(), "9", "the last byte")
  t.is(f:seek("end"), 10, "the size")
  t.is(f:seek("set", 12), 12, "past the end")
  t.is(f:write("Z"), 1, "write there")
  t.is(fs.read_file(p), "0123456789\0\0Z", "the gap reads as zeros")
  t.is(f:seek("set", -1), nil, "a negative position fails")
  t.ok(not pcall(f.seek, f, "middle"), "a bad whence raises")
  f:close()
end)

t.test("stat of files, directories and fifos", function()
  local p = path("stat")
  fs.write_file(p, "abc")
  local st = assert(fs.stat(p))
  t.is(st.size, 3, "size")
  t.is(st.type, "file", "type file")
  t.cmp_ok(st.mtime, ">", 1e9, "mtime in seconds since the epoch")
  t.is(fs.stat("/tmp").type, "directory", "a directory")
  local f = assert(fs.open(p, "a"))
  f:write("defg")
  t.is(f:stat().size, 7, "file:stat after a write")
  f:close()
  local q = path("fifo")
  if mkfifo(q) then
    t.is(fs.stat(q).type, "fifo", "a fifo")
  else
    t.fail("mkfifo failed")
  end
end)

t.test("close: idempotent, and later calls fail with closed", function()
  local p = path("close")
  fs.write_file(p, "abc")
  local f = assert(fs.open(p, "r+"))
  t.is(f:close(), true, "close")
  t.is(f:close(), true, "close again")
  t.ok(select(2, f:read()) == "closed", "read: closed")
  t.ok(select(2, f:write("x")) == "closed", "write: closed")
  t.ok(select(2, f:seek()) == "closed", "seek: closed")
  t.ok(select(2, f:stat()) == "closed", "stat: closed")
  t.like(tostring(f), "%(closed%)$", "tostring says closed")
  t.is(fs.remove(p), true, "remove")
  t.is(fs.stat(p), nil, "it is gone")
end)

t.test("large writes go in slices; fragment tables are one write",
  function()
    local p = path("big")
    local f = assert(fs.open(p, "w"))
    local s = util.random_bytes(300001, 7)
    t.is(f:write(s), #s, "one write of 300001 bytes")
    t.is(f:write({ "x", sub(s, 1, 70000), "y" }), 70002, "fragments")
    f:close()
    t.ok(fs.read_file(p) == s .. "x" .. sub(s, 1, 70000) .. "y",
      "every byte")
  end)

t.test("many tasks with many files at once", function()
  local waits = {}
  for i = 1, 40 do
    waits[i] = spawn_wg(function()
      local p = path("many")
      local s = util.random_bytes(10000 + i * 100, i)
      local f = assert(fs.open(p, "w+"))
      for k = 1, #s, 999 do f:write(sub(s, k, k + 998)) end
      f:seek("set")
      local got = io.read_all(f)
      f:close()
      return got == s
    end)
  end
  local ok = 0
  for i = 1, 40 do if waits[i]() then ok = ok + 1 end end
  t.is(ok, 40, "every task read back its own file")
end)

t.test("a second task using a file in use is told it is busy", function()
  local q = path("busy")
  if not mkfifo(q) then return t.fail("mkfifo failed") end
  local f
  local reader = spawn_wg(function()
    f = assert(fs.open(q, "r"))
    return f:read(10)
  end)
  local w = assert(fs.open(q, "w")) -- the reader's open ends with this one
  assert(util.wait_until(function() return f end, 5))
  coronet.sleep(0.05) -- the reader is now parked in a read of the fifo
  local x, err = f:read(10)
  t.ok(x == nil and err == "busy reading", "read: busy reading")
  t.is(select(2, f:write("x")), "busy writing", "write: busy writing")
  t.is(f:seek(), nil, "seek on a fifo fails")
  w:write("hi")
  t.is(reader(), "hi", "the first reader gets the bytes")
  w:close()
  t.is(select(2, f:read(10)), "eof", "then eof")
  f:close()
end)

t.test("closing a file a task is reading: it gets closed", function()
  local q = path("closing")
  if not mkfifo(q) then return t.fail("mkfifo failed") end
  local f
  local reader = spawn_wg(function()
    f = assert(fs.open(q, "r"))
    return f:read(10)
  end)
  local w = assert(fs.open(q, "w"))
  assert(util.wait_until(function() return f end, 5))
  coronet.sleep(0.05)
  t.is(f:close(), true, "close while another task reads")
  w:write("late")
  local x, err = reader()
  t.ok(x == nil and err == "closed", "the reader gets closed")
  w:close()
end)

t.test("a fifo read blocked in the thread pool does not delay a connection",
  function()
    local q = path("slow")
    if not mkfifo(q) then return t.fail("mkfifo failed") end
    local c, s, l = pair.pair()
    coronet.spawn(function()
      for line in s:lines() do s:write(line .. "\n") end
    end)
    local worst = 0
    local function ping(rounds)
      for i = 1, rounds do
        local t0 = coronet.now()
        c:write("ping " .. i .. "\n")
        if c:read_line() ~= "ping " .. i then return false end
        local dt = coronet.now() - t0
        if dt > worst then worst = dt end
      end
      return true
    end
    local opened, got = false, nil
    local reader = spawn_wg(function()
      local f = assert(fs.open(q, "r")) -- blocks until a writer opens
      opened = true
      got = io.read_all(f)
      f:close()
    end)
    t.ok(ping(200), "200 round trips while the fifo's open is blocked")
    t.ok(not opened, "the open was still blocked after them")
    local w = assert(fs.open(q, "w"))
    assert(util.wait_until(function() return opened end, 5))
    t.ok(ping(200), "200 more while its read is blocked")
    t.is(got, nil, "the read was still waiting after them")
    w:write("late bytes")
    w:close()
    reader()
    t.is(got, "late bytes", "then the read got its bytes")
    t.cmp_ok(worst, "<", 1, "no round trip took a second")
    t.diag(format("  slowest round trip: %.3f ms", worst * 1000))
    c:close()
    l:close()
  end)

t.test("a large file read does not hold up a connection's round trips",
  function()
    local p = path("large")
    local f = assert(fs.open(p, "w"))
    local block = util.random_bytes(1048576, 3)
    for _ = 1, 32 do f:write(block) end
    f:close()
    local c, s, l = pair.pair()
    coronet.spawn(function()
      for line in s:lines() do s:write(line .. "\n") end
    end)
    local reading, total = true, 0
    local reader = spawn_wg(function()
      local r = assert(fs.open(p))
      while true do
        local x = r:read(4096)
        if not x then break end
        total = total + #x
      end
      r:close()
      reading = false
    end)
    local rounds, worst, during = 0, 0, 0
    while rounds < 100000 do
      local t0 = coronet.now()
      c:write("x\n")
      if c:read_line() ~= "x" then break end
      local dt = coronet.now() - t0
      if dt > worst then worst = dt end
      rounds = rounds + 1
      if reading then during = rounds end
      if not reading and rounds >= 100 then break end
    end
    reader()
    t.is(total, 32 * 1048576, "the whole file was read")
    t.cmp_ok(rounds, ">=", 100, "the connection kept going")
    t.cmp_ok(worst, "<", 1, "no round trip took a second")
    t.diag(format("  %d round trips during the read; slowest %.3f ms",
      during, worst * 1000))
    c:close()
    l:close()
  end)

t.test("a file that is collected without close releases its descriptor",
  function()
    local fd_dir = "/proc/" .. util.pid() .. "/fd"
    local function count_fds()
      local ls = assert(process.spawn { "ls", fd_dir, stdout = "pipe" })
      local out = io.read_all(ls.stdout)
      ls.stdout:close()
      ls:wait(10)
      return util.count_lines(out)
    end
    local p = path("gc")
    fs.write_file(p, "abc")
    local before = count_fds()
    for _ = 1, 20 do assert(fs.open(p)) end
    collectgarbage()
    collectgarbage()
    t.ok(util.wait_until(function() return count_fds() <= before end, 5),
      "the descriptors are closed")
  end)

t.test("cleanup", function()
  for _, p in ipairs(scratch) do fs.remove(p) end
  t.pass("scratch files removed")
  util.check_clean(t, base)
end)

t.done()
