-- t/910-redis-fake.t: coronet.redis against a fake server (a coronet
-- listener in this test) that sends garbage, replies past the limits, a
-- 1 GiB bulk length, replies cut short, and replies one byte at a time.
-- A bad reply ends that connection with a clear error, never the process.
local t = require "lib.tap"
local util = require "lib.util"
local coronet = require "coronet"
local net = require "coronet.net"
local redis = require "coronet.redis"
local rep, concat = string.rep, table.concat

local base = coronet.stats()

-- fake(fn) serves each connection with fn(conn, command_bytes): the
-- first command's bytes, then whatever fn writes. Returns the listener.
local function fake(fn)
  return assert(net.listen("127.0.0.1:0", function(c)
    c:set_timeout(10)
    local cmd = c:read()
    if cmd then fn(c, cmd) end
  end))
end

-- ask connects to a fake that answers the first command with reply (or
-- runs it, a function) and returns what r:get("k") returns.
local function ask(reply, opts)
  local l = fake(type(reply) == "function" and reply or function(c)
    c:write(reply)
    c:read() -- hold the connection open until the client closes it
  end)
  local o = opts or {}
  o.timeout = o.timeout or 5
  local r = assert(redis.connect(l:addr(), o))
  local v, err = r:get("k")
  local closed = select(2, r:ping()) == "closed"
  r:close()
  l:close()
  return v, err, closed
end

t.test("garbage ends the connection with a protocol error", function()
  local v, err, closed = ask("?what\r\n")
  t.is(v, nil, "no value")
  t.is(err, "redis: protocol error: bad type byte '?'", "the error says why")
  t.ok(closed, "the connection is closed")
  t.is(select(2, ask("+OK\r\n")), nil, "the process and new connections go on")
  local cases = {
    { ":12a\r\n", "bad byte 'a' in a number" },
    { ":\r\n", "empty number" },
    { ":99999999999999999999\r\n", "number too long" },
    { ":9223372036854775808\r\n", "integer out of range" },
    { "+OK\rX", "CR not followed by LF" },
    { "$3\r\nabcd\r\n", "bulk string not ended by CRLF" },
    { "$-2\r\n", "negative length -2" },
    { "*-5\r\n", "negative count -5" },
    { "#x\r\n", "bad boolean byte 'x'" },
    { "_x\r\n", "bad null byte 'x'" },
    { "\0\r\n", "bad type byte 0x00" },
  }
  for _, case in ipairs(cases) do
    local _, e = ask(case[1])
    t.is(e, "redis: protocol error: " .. case[2], util.show_bytes(case[1]))
  end
  t.is(ask(":-9223372036854775808\r\n"), "-9223372036854775808",
    "the smallest int64 is fine")
end)

t.test("a 1 GiB bulk length is refused at once, without allocating",
  function()
  collectgarbage()
  local blocks, lua_kib = coronet.stats().blocks, collectgarbage("count")
  local rss = util.rss_kib(util.pid())
  local t0 = coronet.now()
  local v, err, closed = ask("$1073741824\r\nabc")
  t.like(err, "^redis: protocol error: bulk length 1073741824 over the "
    .. "limit %(536870912%)$", "the error names the length and the limit")
  t.ok(closed, "the connection is closed")
  t.cmp_ok(coronet.now() - t0, "<", 1, "at once: no waiting for the bytes")
  t.cmp_ok(coronet.stats().blocks, "<=", blocks + 2, "no buffer grew")
  t.cmp_ok(collectgarbage("count") - lua_kib, "<", 1024, "no Lua memory")
  t.cmp_ok(util.rss_kib(util.pid()) - rss, "<", 65536, "no process memory")
end)

t.test("count, depth and size limits; lower ones from connect options",
  function()
  local _, e = ask("*16777217\r\n")
  t.is(e, "redis: protocol error: aggregate of 16777217 elements over the "
    .. "limit (16777216)", "an array over 2^24 elements")
  _, e = ask("%8388609\r\n")
  t.like(e, "aggregate of 16777218 elements", "a map counts two per pair")
  _, e = ask(rep("*1\r\n", 33) .. ":1\r\n")
  t.is(e, "redis: protocol error: nesting deeper than 32", "33 levels deep")
  t.is(ask(rep("*1\r\n", 32) .. ":1\r\n") ~= nil, true, "32 levels are fine")
  _, e = ask("$11\r\nhello world\r\n", { max_bulk = 10 })
  t.is(e, "redis: protocol error: bulk length 11 over the limit (10)",
    "max_bulk")
  _, e = ask("*4\r\n:1\r\n:2\r\n:3\r\n:4\r\n", { max_count = 3 })
  t.like(e, "aggregate of 4 elements over the limit %(3%)", "max_count")
  _, e = ask("*1\r\n*1\r\n:1\r\n", { max_depth = 1 })
  t.is(e, "redis: protocol error: nesting deeper than 1", "max_depth")
  _, e = ask("*3\r\n$40\r\n" .. rep("x", 40) .. "\r\n:1\r\n:2\r\n",
    { max_reply = 50 })
  t.like(e, "reply longer than the limit %(50 bytes%)", "max_reply")
  _, e = ask("+" .. rep("s", 70000) .. "\r\n")
  t.is(e, "redis: protocol error: line longer than 65536 bytes",
    "a simple string's line is bounded")
  local ok, err = pcall(redis.connect, "127.0.0.1:1", { max_depth = 65 })
  t.like(not ok and err, "bad option 'max_depth'", "limits are checked")
end)

t.test("a server that closes mid-reply: unexpected eof", function()
  local v, err, closed = ask(function(c)
    c:write("*2\r\n$3\r\nabc\r\n$10\r\nab")
    c:close()
  end)
  t.is(err, "unexpected eof", "nil, \"unexpected eof\"")
  t.ok(closed, "the connection is closed")
  v, err = ask(function(c) c:close() end)
  t.is(err, "eof", "closing before replying: nil, \"eof\"")
end)

-- every RESP3 type, nested, with an attribute and a push before it
local resp3 = concat {
  ">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$4\r\ndata\r\n",
  "|1\r\n+ttl\r\n:3600\r\n",
  "*12\r\n",
  "+status\r\n",
  ":-42\r\n",
  "$5\r\nb\0u\r\n\r\n",
  ",1.25\r\n",
  ",-inf\r\n",
  "(12345678901234567890\r\n",
  "#t\r\n",
  "_\r\n",
  "=9\r\ntxt:hello\r\n",
  "%2\r\n+a\r\n:1\r\n$1\r\nb\r\n*2\r\n:1\r\n|1\r\n+x\r\n+y\r\n:2\r\n",
  "~2\r\n+x\r\n+y\r\n",
  "!9\r\nERR inner\r\n",
}

local function check_resp3(v, how)
  t.ok(type(v) == "table" and #v == 12, how .. ": an array of 12")
  if type(v) ~= "table" then return end
  t.ok(v[1] == "status" and v[2] == -42 and v[3] == "b\0u\r\n"
    and v[4] == 1.25 and v[5] == -math.huge
    and v[6] == "12345678901234567890" and v[7] == true
    and v[8] == redis.null and v[9] == "hello", how .. ": the scalars")
  t.ok(v[10].a == 1 and v[10].b[1] == 1 and v[10].b[2] == 2,
    how .. ": the map, its nested array without the attribute")
  t.ok(v[11][1] == "x" and v[11][2] == "y", how .. ": the set")
  t.is(redis.is_error(v[12]), "ERR inner", how .. ": the blob error")
end

t.test("every RESP3 type decodes, all at once or one byte at a time",
  function()
  for _, trickle in ipairs { false, true } do
    local how = trickle and "byte by byte" or "at once"
    local l = fake(function(c)
      if not trickle then
        c:write(resp3)
      else
        for i = 1, #resp3 do
          c:write(resp3:sub(i, i))
          coronet.yield() -- each byte leaves in a write of its own
        end
      end
      c:read()
    end)
    local r = assert(redis.connect(l:addr(), { timeout = 5 }))
    local v = r:get("k")
    check_resp3(v, how)
    local m = r:next_message(0)
    t.ok(m and m.kind == "message" and m.channel == "ch"
      and m.payload == "data", how .. ": the push before it is a message")
    r:close()
    l:close()
  end
end)

t.test("a large reply in pieces is framed once and decoded once", function()
  local n = 20000
  local parts = { "*" .. n .. "\r\n" }
  for i = 1, n do
    parts[#parts + 1] = "$6\r\n" .. ("%06d"):format(i) .. "\r\n"
  end
  local wire = concat(parts)
  local l = fake(function(c)
    for i = 1, #wire, 1000 do
      c:write(wire:sub(i, i + 999))
      coronet.yield()
    end
    c:read()
  end)
  local r = assert(redis.connect(l:addr(), { timeout = 5 }))
  local v = r:get("k")
  local ok = type(v) == "table" and #v == n
  for i = 1, n do
    if not ok then break end
    ok = v[i] == ("%06d"):format(i)
  end
  t.ok(ok, n .. " elements arriving in 1000-byte pieces")
  r:close()
  l:close()
end)

t.test("nothing is left open", function()
  util.check_clean(t, base)
end)

t.done()
