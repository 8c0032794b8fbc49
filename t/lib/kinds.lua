-- t/lib/kinds.lua: one of every kind of Reader and Writer, for tests that
-- run each io helper on each kind.
--   local kinds = require "lib.kinds"
--   for _, k in ipairs(kinds.readers) do
--     local r, done = k.make(s)   -- a Reader of exactly s; done() cleans up
--   end
--   for _, k in ipairs(kinds.writers) do
--     local w, finish = k.make()  -- finish() -> every byte written to w
--   end
-- Readers include awkward ones: one byte per read, random small pieces,
-- data returned together with "eof".
local coronet = require "coronet"
local io = require "coronet.io"
local bufio = require "coronet.bufio"
local bytes = require "coronet.bytes"
local fs = require "coronet.fs"
local pair = require "lib.pair"
local util = require "lib.util"
local concat, sub, min = table.concat, string.sub, math.min

local _M = {}
local serial = 0

-- path() names a new scratch file under /tmp for this process.
function _M.path(tag)
  serial = serial + 1
  return string.format("/tmp/coronet-t-%d-%s-%d", util.pid(), tag or "f",
    serial)
end

-- chunked(s, sizes) -> a user-defined Reader giving s in pieces whose
-- sizes cycle through the list sizes (never more than asked); with
-- eof_with_data, the last piece comes with "eof".
function _M.chunked(s, sizes, eof_with_data)
  local off, i = 0, 0
  return {
    read = function(_, n)
      if off >= #s then return nil, "eof" end
      i = i % #sizes + 1
      local k = min(sizes[i], n or 4096, #s - off)
      local piece = sub(s, off + 1, off + k)
      off = off + k
      if eof_with_data and off >= #s then return piece, "eof" end
      return piece
    end,
  }
end

-- failing(s, err) -> a Reader of s whose last piece comes with err.
function _M.failing(s, err)
  local done = false
  return {
    read = function(_, n)
      if done then return nil, err end
      done = true
      if #s == 0 then return nil, err end
      return s, err
    end,
  }
end

local function nothing() end

-- conn_reader makes a connection whose peer writes s and closes.
local function conn_reader(s)
  local c, srv, l = pair.pair()
  coronet.spawn(function()
    srv:write(s)
    srv:close()
  end)
  return c, function()
    c:close()
    l:close()
  end
end

local function pipe_reader(s)
  local r, w = io.pipe()
  coronet.spawn(function()
    local off, k = 0, 1
    while off < #s do -- pieces of growing sizes: 1, 3, 9, ... bytes
      local n = min(k, #s - off)
      if not w:write(sub(s, off + 1, off + n)) then return end
      off, k = off + n, k * 3 % 70000
    end
    w:close()
  end)
  return r, function() r:close() end
end

local function file_reader(s)
  local p = _M.path("r")
  assert(fs.write_file(p, s))
  local f = assert(fs.open(p, "r"))
  return f, function()
    f:close()
    fs.remove(p)
  end
end

_M.readers = {
  { name = "string reader", make = function(s) return bytes.reader(s), nothing end },
  { name = "byte buffer", make = function(s) return bytes.buffer(s), nothing end },
  { name = "one-byte table", make = function(s) return _M.chunked(s, { 1 }), nothing end },
  { name = "odd-piece table", make = function(s)
    return _M.chunked(s, { 3, 1, 7, 2, 250 }), nothing end },
  { name = "data+eof table", make = function(s)
    return _M.chunked(s, { 1000 }, true), nothing end },
  { name = "file", make = file_reader },
  { name = "pipe", make = pipe_reader },
  { name = "connection", make = conn_reader },
  { name = "bufio reader", make = function(s)
    return bufio.reader(_M.chunked(s, { 5 }), 16), nothing end },
  { name = "limit reader", make = function(s)
    return io.limit_reader(bytes.reader(s .. "EXTRA"), #s), nothing end },
  { name = "multi reader", make = function(s)
    local a, b = math.floor(#s / 3), math.floor(2 * #s / 3)
    return io.multi_reader(bytes.reader(sub(s, 1, a)), bytes.reader(""),
      _M.chunked(sub(s, a + 1, b), { 2 }), bytes.reader(sub(s, b + 1))),
      nothing end },
}

-- collector(r) reads r to its end in a task of its own; the function it
-- returns waits for that and returns the bytes.
local function collector(r, slow)
  local wg = coronet.waitgroup()
  local got
  wg:add(1)
  coronet.spawn(function()
    if slow then -- small reads: the writer has to wait for this task
      local parts = {}
      while true do
        local s = r:read(777)
        if not s then break end
        parts[#parts + 1] = s
      end
      got = concat(parts)
    else
      got = io.read_all(r)
    end
    wg:done()
  end)
  return function()
    wg:wait(30)
    return got
  end
end

_M.writers = {
  { name = "byte buffer", make = function()
    local b = bytes.buffer()
    return b, function() return b:string() end
  end },
  { name = "user table", make = function()
    local parts = {}
    local w = { write = function(_, s)
      parts[#parts + 1] = s
      return #s
    end }
    return w, function() return concat(parts) end
  end },
  { name = "file", make = function()
    local p = _M.path("w")
    local f = assert(fs.open(p, "w"))
    return f, function()
      assert(f:close())
      local s = fs.read_file(p)
      fs.remove(p)
      return s
    end
  end },
  { name = "pipe", make = function()
    local r, w = io.pipe()
    local wait = collector(r, true)
    return w, function()
      w:close()
      return wait()
    end
  end },
  { name = "connection", make = function()
    local c, srv, l = pair.pair()
    local wait = collector(srv)
    return c, function()
      c:close_write()
      local s = wait()
      c:close()
      l:close()
      return s
    end
  end },
  { name = "bufio writer", make = function()
    local b = bytes.buffer()
    local bw = bufio.writer(b, 16)
    return bw, function()
      assert(bw:flush())
      return b:string()
    end
  end },
  { name = "multi writer", make = function()
    local b1, b2 = bytes.buffer(), bytes.buffer()
    return io.multi_writer(b1, b2), function()
      local s1, s2 = b1:string(), b2:string()
      if s1 ~= s2 then return "multi writer outputs differ" end
      return s1
    end
  end },
}

return _M
