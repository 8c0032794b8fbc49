-- t/900-redis.t: coronet.redis against a real redis-server (its own, on a
-- unix socket or a free port): every reply type in RESP2 and RESP3,
-- binary-safe keys and values, pipelines, errors, timeouts, AUTH and
-- SELECT, addresses and URLs, method sugar, the pool.
local t = require "lib.tap"
local util = require "lib.util"
local rs = require "lib.redis_server"
local coronet = require "coronet"
local redis = require "coronet.redis"
local format, rep, char = string.format, string.rep, string.char

rs.skip_unless_available(t)
local base = coronet.stats()
local srv = rs.start { args = { "--enable-debug-command", "yes" } }
local tcp = rs.start { tcp = true, args = { "--requirepass", "s3cret" } }

local function connect(o)
  o = o or {}
  o.timeout = o.timeout or 10
  return assert(redis.connect(o.addr or srv.addr, o))
end

t.test("connect over a unix socket: PING, SET, GET", function()
  local r = connect()
  t.is(r:ping(), "PONG", "PING answers the status PONG")
  t.is(r:set("greeting", "hello"), "OK", "SET answers the status OK")
  t.is(r:get("greeting"), "hello", "GET gives the bulk string back")
  t.is(r:call("GET", "greeting"), "hello", "call(cmd, ...) does the same")
  r:close()
end)

t.test("RESP2 replies map to Lua values", function()
  local r = connect()
  r:del("l", "n")
  t.is(r:incr("n"), 1, "an integer is a number")
  t.is(r:incrby("n", -11), -10, "negative integers too")
  local v, err = r:get("no-such-key")
  t.ok(v == nil and err == nil, "a null bulk string is nil, with no error")
  t.is(r:rpush("l", "a", "", "c"), 3, "RPUSH counts")
  local l = r:lrange("l", 0, -1)
  t.ok(type(l) == "table" and #l == 3 and l[1] == "a" and l[2] == ""
    and l[3] == "c", "an array is a list; an empty bulk is \"\"")
  local e = r:lrange("nothing", 0, -1)
  t.ok(type(e) == "table" and next(e) == nil, "an empty array is {}")
  local n = r:eval("return {1, {2, {'deep', {}}}, 'x'}", 0)
  t.ok(n[1] == 1 and n[2][1] == 2 and n[2][2][1] == "deep"
    and next(n[2][2][2]) == nil and n[3] == "x", "nested arrays nest")
  local nul = r:blpop("nothing", 0.01)
  t.ok(nul == nil, "a null array (BLPOP timing out) is nil")
  local m = r:mget("greeting", "no-such-key", "n")
  t.ok(m[1] == "hello" and m[2] == redis.null and m[3] == "-10",
    "a null inside an array is redis.null")
  t.is(tostring(redis.null), "redis.null", "redis.null says what it is")
  t.is(r:incrby("big", "9007199254740993"), "9007199254740993",
    "an integer past 2^53 comes as its exact decimal string")
  t.is(r:eval("return 2^53", 0), 9007199254740992, "2^53 is still a number")
  r:close()
end)

t.test("RESP3 (HELLO 3) replies map to Lua values", function()
  local r = connect { resp = 3 }
  local function dbg(kind) return r:call("DEBUG", "PROTOCOL", kind) end
  t.is(dbg("string"), "Hello World", "a blob string")
  t.is(dbg("integer"), 12345, "a number")
  t.is(dbg("double"), 3.141, "a double is a number")
  t.is(dbg("bignum"), "1234567999999999999999999999999999999",
    "a big number is its decimal string")
  local v, err = dbg("null")
  t.ok(v == nil and err == nil, "null is nil")
  t.is(dbg("true"), true, "true is true")
  t.is(dbg("false"), false, "false is false")
  local set = dbg("set")
  t.ok(#set == 3 and set[1] == 0 and set[3] == 2, "a set is a list")
  local map = dbg("map")
  t.ok(map[0] == false and map[1] == true and map[2] == false,
    "a map is a table of its keys and values")
  t.is(dbg("verbatim"), "This is a verbatim\nstring",
    "a verbatim string loses its format prefix")
  t.is(dbg("attrib"), "Some real reply following the attribute",
    "an attribute is dropped; the reply it precedes comes")
  t.is(dbg("push"), "Some real reply following the push reply",
    "a push before a reply is kept aside; the reply comes")
  local h = r:eval("redis.setresp(3); return {double=1/0}", 0)
  t.is(h, math.huge, "a double can be inf")
  r:hset("h", "f1", "v1", "f2", "v2")
  local all = r:hgetall("h")
  t.ok(all.f1 == "v1" and all.f2 == "v2", "HGETALL is a map")
  r:close()
end)

t.test("keys and values are binary safe", function()
  local r = connect()
  local key = "k\0\r\n" .. char(255)
  local val = util.random_bytes(4096, 7) .. "\0\r\n$-1\r\n"
  t.is(r:set(key, val), "OK", "SET with NUL, CRLF and high bytes")
  t.is(r:get(key), val, "GET returns the same bytes")
  t.is(r:strlen(key), #val, "the server stored the exact length")
  local mib = util.random_bytes(1024 * 1024, 9)
  t.is(r:set("mib", mib), "OK", "a 1 MiB value is stored")
  local got = r:get("mib")
  t.ok(got == mib, "and comes back whole (" .. #(got or "") .. " bytes)")
  local res = r:pipeline(function(p)
    for i = 1, 4 do p:get("mib") end
  end)
  local whole = true
  for i = 1, 4 do whole = whole and res[i] == mib end
  t.ok(whole, "four 1 MiB replies in one pipeline come back whole")
  t.is(r:set("num", 1.5), "OK", "a number argument is sent as text")
  t.is(r:get("num"), "1.5", "as its shortest exact form")
  r:set("num", 0.1)
  t.is(r:get("num"), "0.1", "0.1 as 0.1")
  r:set("num", 1 / 3)
  t.is(tonumber(r:get("num")), 1 / 3, "1/3 reads back exactly")
  r:set("int", 2 ^ 53)
  t.is(r:get("int"), "9007199254740992", "integral numbers without exponent")
  r:close()
end)

t.test("a pipeline of 10,000 commands returns 10,000 replies in order",
  function()
  local r = connect()
  local res = r:pipeline(function(p)
    for i = 1, 5000 do p:set("p" .. i, i) end
    for i = 1, 5000 do p:get("p" .. i) end
  end)
  t.is(#res, 10000, "one reply per command")
  local ok = true
  for i = 1, 5000 do
    if res[i] ~= "OK" or res[5000 + i] ~= tostring(i) then
      ok = false
      t.diag(format("  reply %d: %s / %s", i, tostring(res[i]),
        tostring(res[5000 + i])))
      break
    end
  end
  t.ok(ok, "each reply answers its own command")
  t.is(r:dbsize() >= 5000, true, "the connection goes on working after it")
  t.is(#r:pipeline(function() end), 0, "an empty pipeline returns {}")
  r:close()
end)

t.test("error replies: nil and the server's message; the connection stays",
  function()
  local r = connect()
  local v, err = r:call("NO-SUCH-COMMAND", "x")
  t.is(v, nil, "no value")
  t.like(err, "^ERR unknown command", "the server's message, as written")
  r:set("str", "x")
  v, err = r:lpush("str", "y")
  t.like(err, "^WRONGTYPE", "WRONGTYPE")
  t.is(r:get("str"), "x", "the connection still works")
  local res = r:pipeline(function(p)
    p:set("a", 1)
    p:lpush("str", "y")
    p:get("a")
  end)
  t.is(res[1], "OK", "pipeline: the replies before the error")
  t.like(redis.is_error(res[2]), "^WRONGTYPE",
    "an error inside a pipeline is an error object")
  t.like(tostring(res[2]), "^WRONGTYPE", "which prints as its message")
  t.is(res[3], "1", "the replies after it")
  t.is(redis.is_error("ERR x"), false, "a string is no error object")
  local ok, e = pcall(r.set, r, "k", {})
  t.like(not ok and e, "bad argument #2 to 'set' %(string expected, got "
    .. "table%)", "a table argument raises, naming the command")
  ok, e = pcall(r.call, r, nil)
  t.like(not ok and e, "bad argument #1 to 'call'", "a missing command raises")
  t.is(r:ping(), "PONG", "still usable after the raised errors")
  r:close()
  t.is(select(2, r:get("a")), "closed", "after close: nil, \"closed\"")
end)

t.test("a pipeline whose function raises closes the connection", function()
  local r = connect()
  local ok, e = pcall(r.pipeline, r, function(p)
    p:set("x", 1)
    error("boom")
  end)
  t.ok(not ok and tostring(e):find("boom"), "the error goes on up")
  t.is(select(2, r:get("x")), "closed", "the connection was closed")
end)

t.test("a command that times out fails and closes the connection",
  function()
  local r = connect { timeout = 0.2 }
  local t0 = coronet.now()
  local v, err = r:blpop("never", 5)
  t.is(err, "timeout", "nil, \"timeout\"")
  t.cmp_ok(coronet.now() - t0, "<", 2, "after the timeout, not the block")
  t.is(select(2, r:ping()), "closed", "the connection is closed: the late "
    .. "reply can not be taken for the next command's")
  local r2 = connect { timeout = 0.2 }
  r2:set_timeout(nil)
  local stop = coronet.after(0.5)
  local got
  coronet.spawn(function()
    got = r2:blpop("late", 2)
  end)
  stop:recv()
  connect():rpush("late", "x")
  util.wait_until(function() return got end, 5)
  t.ok(got and got[2] == "x", "set_timeout(nil) lifts the bound")
  r2:close()
end)

t.test("a second task calling on a busy connection gets nil, \"busy\"",
  function()
  local r = connect()
  local join = util.spawn_wg(function() return r:blpop("busy-list", 1) end)
  util.settle(2)
  local v, err = r:get("x")
  t.is(err, "busy", "the second caller is told, nothing is sent")
  join(5)
  t.is(r:ping(), "PONG", "the first call ended; the connection is fine")
  r:close()
end)

t.test("AUTH: without a password NOAUTH, a wrong one fails connect",
  function()
  local r = connect { addr = tcp.addr }
  local v, err = r:get("k")
  t.like(err, "^NOAUTH", "commands without AUTH get NOAUTH")
  r:close()
  v, err = redis.connect(tcp.addr, { password = "wrong", timeout = 10 })
  t.is(v, nil, "connect with a wrong password fails")
  t.like(err, "WRONGPASS", "with the server's message")
  local ok = connect { addr = tcp.addr, password = "s3cret" }
  t.is(ok:ping(), "PONG", "the right password works")
  ok:close()
end)

t.test("SELECT through db and redis:// URLs with password and db",
  function()
  local url = "redis://:s3cret@" .. tcp.addr .. "/3"
  local r = assert(redis.connect(url, { timeout = 10 }))
  r:set("where", "db3")
  local r0 = connect { addr = tcp.addr, password = "s3cret" }
  t.is(r0:get("where"), nil, "db 0 does not have the key")
  local r3 = connect { addr = tcp.addr, password = "s3cret", db = 3 }
  t.is(r3:get("where"), "db3", "db = 3 selects the same db as the URL")
  local esc = assert(redis.connect("redis://default:s3cr%65t@" .. tcp.addr,
    { timeout = 10 }))
  t.is(esc:ping(), "PONG", "user:password with %-escapes")
  local v, err = redis.connect("redis://", { timeout = 10 })
  t.like(err, "bad address", "a URL without a host is refused")
  for _, c in ipairs { r, r0, r3, esc } do c:close() end
end)

t.test("host:port and unix:PATH addresses; dial failures name them",
  function()
  local r = connect { addr = tcp.addr, password = "s3cret" }
  t.is(r:ping(), "PONG", "host:port")
  r:close()
  local v, err = redis.connect("unix:/nonexistent/redis.sock",
    { timeout = 5 })
  t.like(err, "^dial unix:/nonexistent/redis.sock: ", "unix: failure")
  local ok, e = pcall(redis.connect, 6379)
  t.like(not ok and e, "bad argument #1 to 'connect'", "a number raises")
end)

t.test("method sugar runs any command by name", function()
  local r = connect()
  t.is(r:hset("hs", "a", "1", "b", "2"), 2, "HSET")
  local all = r:hgetall("hs")
  t.is(#all, 4, "HGETALL in RESP2 is a flat list")
  t.is(r:hincrby("hs", "a", 5), 6, "HINCRBY")
  t.is(r:sadd("set", "x"), 1, "SADD")
  t.is(r:type("set"), "set", "TYPE (a method named like a Lua builtin)")
  t.is(r:CLIENT("SETNAME", "me"), "OK", "upper-case names work too")
  t.is(r:client("getname"), "me", "multi-word commands: word by word")
  r:close()
end)

t.test("release hands a healthy connection to the pool; connect reuses it",
  function()
  local r = connect()
  local id = r:client("id")
  t.is(r:release(), true, "release keeps a healthy connection")
  t.is(select(2, r:ping()), "closed", "the released handle is closed")
  local r2 = connect()
  t.is(r2:client("id"), id, "connect reuses the same server connection")
  local r3 = connect()
  t.isnt(r3:client("id"), id, "a second connect while it is in use dials")
  r3:release()
  r2:release()
  local a, b = connect(), connect()
  t.ok(a:client("id") ~= b:client("id"), "two pooled connections are both "
    .. "handed out")
  a:close()
  b:close()
  local other = connect { addr = tcp.addr, password = "s3cret" }
  t.isnt(other:client("id"), id, "another server gets its own")
  other:close()
end)

t.test("the pool drops connections that are not healthy or too old",
  function()
  local r = connect()
  r:subscribe("pool-chan")
  t.is(r:release(), false, "a subscribed connection is closed, not pooled")
  local a = connect()
  local aid = a:client("id")
  a:release()
  connect():client("kill", "id", aid) -- the server closes the idle one
  coronet.sleep(0.1) -- for its close to reach us
  local b = connect()
  t.isnt(b:client("id"), aid, "a pooled connection the server closed is "
    .. "not reused")
  local bid = b:client("id")
  b:release(0.05)
  coronet.sleep(0.1)
  local c = connect()
  t.isnt(c:client("id"), bid, "one idle past max_idle is not reused")
  c:release(60, 1)
  local d, e = connect(), connect()
  local did = d:client("id")
  d:release(60, 1)
  t.is(e:release(60, 1), false, "past the pool's size: closed")
  local f = connect()
  t.is(f:client("id"), did, "the pooled one is still there")
  f:release()
  redis.close_idle()
  t.isnt(connect():client("id"), did, "close_idle empties the pool")
end)

t.test("a 1 MiB reply larger than the read buffer arrives through a "
  .. "small high-water mark", function()
  local r = connect()
  local big = rep("0123456789abcdef", 65536)
  r:set("big", big)
  local res = r:pipeline(function(p) p:get("big"); p:strlen("big") end)
  t.ok(res[1] == big and res[2] == #big, "the reply is whole")
  r:close()
end)

t.test("nothing is left open", function()
  redis.close_idle()
  for _, s in ipairs { srv, tcp } do s:stop() end
  util.check_clean(t, base)
end)

t.done()
