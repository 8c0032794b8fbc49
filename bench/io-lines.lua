-- bench/io-lines.lua: line reading speed. The same lines are read (1) by a
-- plain LuaJIT loop of string.find + string.sub over one string, the
-- baseline, (2) by bufio.reader over a string reader, (3) by bufio.reader
-- over a file (coronet.fs, thread pool), (4) natively by a connection's
-- read_line (the C read chain) while another task of this process sends
-- them over loopback, (5) the same timing only read_line on bytes already
-- in the read chain. Prints one "name lines_per_s" line per way.
--   coronet --run bench/io-lines.lua [MiB] [repeats]
local coronet = require "coronet"
local net = require "coronet.net"
local bufio = require "coronet.bufio"
local bytes = require "coronet.bytes"
local fs = require "coronet.fs"
local find, sub, format = string.find, string.sub, string.format
local now = coronet.now

local MIB = tonumber((...)) or 32
local REPEATS = tonumber(select(2, ...)) or 3

-- lines of 1..120 bytes, with some "\r\n" endings
local function make_data(mib)
  local parts, n, total, x = {}, 0, 0, 12345
  local alphabet = "abcdefghijklmnopqrstuvwxyz0123456789 ,.;:-"
  while total < mib * 1048576 do
    x = (x * 1103515245 + 12345) % 2147483648
    local len = x % 120 + 1
    local start = x % (#alphabet - 1) + 1
    local line = sub(string.rep(alphabet, 4), start, start + len - 1)
    local eol = (x % 7 == 0) and "\r\n" or "\n"
    n = n + 1
    parts[n] = line .. eol
    total = total + #line + #eol
  end
  return table.concat(parts), n
end

local data, nlines = make_data(MIB)

-- best returns the best of REPEATS runs of fn (which returns the count of
-- lines it read), as lines per second.
local function best(fn)
  local top = 0
  for _ = 1, REPEATS do
    collectgarbage()
    local t0 = now()
    local n = fn()
    local dt = now() - t0
    if n ~= nlines then error(format("read %d lines, expected %d", n, nlines)) end
    if n / dt > top then top = n / dt end
  end
  return top
end

local results = {}

results[#results + 1] = { "plain string.find", best(function()
  local pos, n, len = 1, 0, #data
  while pos <= len do
    local i = find(data, "\n", pos, true)
    local line = sub(data, pos, (i or len + 1) - 1)
    if sub(line, -1) == "\r" then line = sub(line, 1, -2) end
    n = n + 1
    pos = (i or len) + 1
  end
  return n
end) }

results[#results + 1] = { "bufio over a string reader", best(function()
  local br = bufio.reader(bytes.reader(data), 65536)
  local n = 0
  while br:read_line() do n = n + 1 end
  return n
end) }

local path = format("/tmp/coronet-bench-lines-%d", os.time())
assert(fs.write_file(path, data))
results[#results + 1] = { "bufio over a file", best(function()
  local f = assert(fs.open(path))
  local br = bufio.reader(f, 65536)
  local n = 0
  while br:read_line() do n = n + 1 end
  f:close()
  return n
end) }
fs.remove(path)

local l = assert(net.listen("127.0.0.1:0", function(conn)
  conn:write(data)
  conn:close()
end))
results[#results + 1] = { "connection read_line (native)", best(function()
  local c = assert(net.dial(l:addr()))
  local n = 0
  while c:read_line() do n = n + 1 end
  c:close()
  return n
end) }

-- The same lines, timing only read_line itself: the reader lets a chunk
-- of bytes pile up in the read chain (peek), then reads the lines that
-- are whole in it; the loopback I/O between chunks is not counted. This
-- is read_line's own cost against string.find's.
local CHUNK = 1048576
local function buffered_lines()
  local c = assert(net.dial(l:addr()))
  local n, spent = 0, 0
  while true do
    local _, err = c:peek(CHUNK) -- parks until CHUNK bytes (or EOF)
    local t0 = now()
    if err then -- the last bytes: all of them
      while c:read_line() do n = n + 1 end
      spent = spent + now() - t0
      break
    end
    -- lines are at most 122 bytes: 64 of them are whole in 7808 bytes
    -- (buffered() is a classic C call: only once per 64 lines)
    while c:buffered() > 7808 do
      for _ = 1, 64 do c:read_line() end
      n = n + 64
    end
    spent = spent + now() - t0
  end
  c:close()
  return n, spent
end
do
  local top = 0
  for _ = 1, REPEATS do
    collectgarbage()
    local n, spent = buffered_lines()
    if n ~= nlines then
      error(format("read %d lines, expected %d", n, nlines))
    end
    if n / spent > top then top = n / spent end
  end
  results[#results + 1] = { "connection read_line, bytes buffered", top }
end
l:close()

for _, r in ipairs(results) do
  print(format("%s\t%.0f", r[1], r[2]))
end
print(format("lines\t%d", nlines))
print(format("bytes\t%d", #data))
