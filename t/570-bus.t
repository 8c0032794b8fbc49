-- t/570-bus.t: coronet.bus (issue #8, DESIGN.md "Beyond one core"): on
-- one worker (this process), then across the two workers of a server
-- (t/lib/svc_bus.lua): every subscription gets every message, each
-- publisher's in order; select takes a subscription; full subscriptions
-- drop their oldest messages and count them; close wakes a waiting recv;
-- a 1 MiB binary message arrives intact; 10^6 messages leave no leak.
local t = require "lib.tap"
local coronet = require "coronet"
local bus = require "coronet.bus"
local scratch = require "lib.scratch"
local server = require "lib.server"
local util = require "lib.util"
local workers = require "lib.workers"
local format, char, concat = string.format, string.char, table.concat

local slow_env = util.under_valgrind()
  or (os.getenv("CORONET") or ""):find("asan") ~= nil

-- -- One worker --------------------------------------------------------

t.test("every subscription of a topic gets every message, in order; other "
  .. "topics get none", function()
  local base = coronet.stats()
  local a, b = bus.subscribe("news"), bus.subscribe("news")
  local other = bus.subscribe("sport")
  for i = 1, 100 do bus.publish("news", "n" .. i) end
  local ok = true
  for _, s in ipairs { a, b } do
    for i = 1, 100 do
      local m, got = s:recv(0)
      if m ~= "n" .. i or got ~= true then ok = false end
    end
  end
  t.ok(ok, "both got n1..n100 in order")
  t.is(select(3, a:recv(0)), "timeout", "then nothing waits: recv(0) times out")
  t.is(select(3, other:recv(0)), "timeout", "the other topic got nothing")
  for _, s in ipairs { a, b, other } do s:close() end
  util.check_clean(t, base)
end)

t.test("a subscription gets only what is published after it subscribed",
  function()
    bus.publish("late", "before")
    local s = bus.subscribe("late")
    bus.publish("late", "after")
    t.is(s:recv(0), "after", "the message from before is not there")
    s:close()
  end)

t.test("a full subscription drops its oldest messages, counts them and "
  .. "logs once per burst", function()
  local s = bus.subscribe("full", { size = 3 })
  local st0 = bus.stats()
  for i = 1, 10 do bus.publish("full", "m" .. i) end
  local got = {}
  for _ = 1, 4 do got[#got + 1] = s:recv(0) or "-" end
  t.is(concat(got, " "), "m8 m9 m10 -", "the newest 3 wait; the rest went")
  t.is(s:dropped(), 7, "sub:dropped() counts the 7")
  local st = bus.stats()
  t.is(st.dropped - st0.dropped, 7, "so does bus.stats().dropped")
  t.is(st.published - st0.published, 10, "bus.stats().published counts "
    .. "publishes")
  for i = 11, 20 do bus.publish("full", "m" .. i) end
  t.is(s:dropped(), 14, "a second burst adds to the count")
  s:close()
end)

t.test("select takes a subscription beside a channel and a timeout",
  function()
    local s, ch = bus.subscribe("sel"), coronet.chan(1)
    local function pick(tmo)
      return coronet.select {
        { recv = s, fn = function(v, ok) return "sub", v, ok end },
        { recv = ch, fn = function(v) return "chan", v end },
        { timeout = tmo, fn = function() return "timeout" end },
      }
    end
    t.is(pick(0.01), "timeout", "nothing ready: the timeout")
    coronet.spawn(function() coronet.sleep(0.01) bus.publish("sel", "x") end)
    local what, v, ok = pick(5)
    t.ok(what == "sub" and v == "x" and ok == true, "a message wakes the "
      .. "select: " .. tostring(what) .. " " .. tostring(v))
    coronet.spawn(function() coronet.sleep(0.01) ch:send("y") end)
    what, v = pick(5)
    t.ok(what == "chan" and v == "y", "the channel still works beside it")
    bus.publish("sel", "z")
    what, v = pick(0)
    t.ok(what == "sub" and v == "z", "a waiting message is taken at once")
    s:close()
    what, v, ok = pick(5)
    t.ok(what == "sub" and v == nil and ok == false,
      "a closed subscription gives nil, false")
  end)

t.test("close wakes a task waiting in recv with nil, false", function()
  local s = bus.subscribe("wake")
  local res
  local join = util.spawn_wg(function()
    res = { s:recv() }
  end)
  util.settle()
  bus.publish("wake", "1")
  util.settle()
  t.is(res and res[1], "1", "the waiting task got the message")
  join = util.spawn_wg(function() res = { s:recv(10) } end)
  util.settle()
  s:close()
  join(5)
  t.ok(res and res[1] == nil and res[2] == false and res[3] == nil,
    "close woke it with nil, false")
  t.is(select(2, s:recv()), false, "recv after close gives nil, false")
  s:close()
  t.pass("closing twice does nothing")
  bus.publish("wake", "after")
  t.is(select(2, s:recv(0)), false, "nothing reaches a closed subscription")
end)

t.test("misuse raises, naming the function", function()
  local function err(f, ...)
    local ok, e = pcall(f, ...)
    return not ok and tostring(e) or "no error"
  end
  t.like(err(bus.publish, 1, "x"), "bad argument #1 to 'publish'",
    "a topic must be a string")
  t.like(err(bus.publish, "x", {}), "bad argument #2 to 'publish'",
    "so must a message")
  t.like(err(bus.subscribe, nil), "bad argument #1 to 'subscribe'",
    "subscribe checks the topic")
  t.like(err(bus.subscribe, "x", { size = 0 }),
    "bad argument #2 to 'subscribe' %(size must be a positive integer",
    "and the size")
end)

-- -- Two workers ---------------------------------------------------------

local s = scratch.start { script = server.path("t/lib/svc_bus.lua"),
  opts = { "--workers", "2" } }

local function on(w) return workers.on(s, w) end

-- subscribe(w, topic, size [, cmd]) -> a connection subscribed on w
local function subscribe(w, topic, size, cmd)
  local c = on(w)
  c:write(format("%s %s %d\n", cmd or "sub", topic, size))
  local line = c:read_line()
  assert(line == "ready " .. w, "subscribe: " .. tostring(line))
  return c
end

-- messages(c, n) reads n framed messages (fewer on an error or "end").
local function messages(c, n)
  local got = {}
  for _ = 1, n do
    local line = c:read_line()
    local len = line and tonumber(line:match("^#(%d+)$"))
    if not len then got.tail = line break end
    got[#got + 1] = len > 0 and c:read_full(len) or ""
  end
  return got
end

-- finish(c) ends a subscriber's stream -> its dropped count
local function finish(c, got)
  c:write("stop\n")
  for _ = 1, 1e6 do
    local line = got and got.tail or c:read_line()
    if got then got.tail = nil end
    if not line then break end
    local d = line:match("^end (%d+)$")
    if d then
      c:close()
      return tonumber(d)
    end
    local len = tonumber(line:match("^#(%d+)$"))
    if len and len > 0 then c:read_full(len) end
  end
  c:close()
end

local function publish(w, topic, count, tag)
  local c = on(w)
  c:write(format("pub %s %d %s\n", topic, count, tag))
  return c
end

t.test("every subscription on every worker gets every message", function()
  local subs = { subscribe(1, "all", 4096), subscribe(1, "all", 4096),
    subscribe(2, "all", 4096), subscribe(2, "all", 4096) }
  for w = 1, 2 do
    local p = publish(w, "all", 50, "w" .. w)
    t.is(p:read_line(), "done " .. w, "worker " .. w .. " published 50")
    p:close()
  end
  for i, c in ipairs(subs) do
    local got = messages(c, 100)
    local seen = { w1 = 0, w2 = 0 }
    local ok = #got == 100
    for _, m in ipairs(got) do
      local tag, k = m:match("^(w%d) (%d+)$")
      if not tag or tonumber(k) ~= seen[tag] + 1 then ok = false end
      if tag then seen[tag] = tonumber(k) end
    end
    t.ok(ok, format("subscriber %d (worker %d) got all 100, each "
      .. "publisher's in order", i, i <= 2 and 1 or 2))
    t.is(finish(c), 0, "and dropped none")
  end
end)

t.test("concurrent publishers on both workers: per-publisher order at "
  .. "every subscriber", function()
  local N = slow_env and 2000 or 20000
  local subs = { subscribe(1, "race", 1e6), subscribe(2, "race", 1e6) }
  local pubs = {}
  for k = 1, 4 do pubs[k] = publish(k % 2 + 1, "race", N, "p" .. k) end
  local workers = {}
  for k, p in ipairs(pubs) do
    local line = p:read_line()
    workers[#workers + 1] = line
    p:close()
  end
  t.is(concat(workers, ","), "done 2,done 1,done 2,done 1",
    "two publishers ran on each worker")
  for i, c in ipairs(subs) do
    local got = messages(c, 4 * N)
    local seen, bad = {}, 0
    for _, m in ipairs(got) do
      local tag, k = m:match("^(p%d) (%d+)$")
      k = tonumber(k)
      if not tag or k ~= (seen[tag] or 0) + 1 then bad = bad + 1 end
      if tag then seen[tag] = k end
    end
    t.is(#got, 4 * N, format("subscriber on worker %d got all %d", i, 4 * N))
    t.is(bad, 0, "each publisher's messages in the order published")
    t.is(finish(c), 0, "none dropped")
  end
end, 120)

t.test("a message published after one from another worker reached this "
  .. "worker comes after it", function()
  local N = slow_env and 200 or 1000
  local c = subscribe(2, "causal", 4096)
  local p1, p2 = on(1), on(2)
  p1:write("pubs causal\n")
  p2:write("pubs causal\n")
  for i = 1, N do
    p1:write("a" .. i .. "\n")
    p1:read_line()
    p2:write("b" .. i .. "\n")
    p2:read_line()
  end
  local got = messages(c, 2 * N)
  local bad
  for i = 1, N do
    if got[2 * i - 1] ~= "a" .. i or got[2 * i] ~= "b" .. i then
      bad = bad or i
    end
  end
  t.ok(not bad, format("worker 2's subscriber got a1 b1 ... a%d b%d in "
    .. "that order%s", N, N, bad and (" (wrong at " .. bad .. ")") or ""))
  finish(c)
  p1:close()
  p2:close()
end)

t.test("a full subscription on another worker drops the oldest and counts "
  .. "them", function()
  local c = subscribe(2, "lazy", 10, "lazy")
  local p = publish(1, "lazy", 1000, "m")
  t.is(p:read_line(), "done 1", "1000 published on worker 1")
  p:close()
  c:write("go\n")
  local got = messages(c, 1000)
  local dropped = finish(c, got)
  local last = got[#got]
  local inorder = true
  for i = 2, #got do
    if tonumber(got[i]:match("%d+")) <= tonumber(got[i - 1]:match("%d+")) then
      inorder = false
    end
  end
  t.is(#got + (dropped or -1), 1000, format("received %d + dropped %s = "
    .. "1000", #got, tostring(dropped)))
  t.ok(#got >= 10 and #got < 1000, "at least the newest 10 were kept")
  t.is(last, "m 1000", "the last one is the newest")
  t.ok(inorder, "in order")
end)

t.test("a 1 MiB binary message arrives intact on both workers", function()
  local subs = { subscribe(1, "big", 4), subscribe(2, "big", 4) }
  local p = on(2)
  p:write("big big 1048576 7\n")
  t.is(p:read_line(), "done 2", "published")
  p:close()
  local t_ = {}
  for i = 0, 255 do t_[#t_ + 1] = char((i + 7) % 256) end
  local want = concat(t_):rep(4096)
  for w, c in ipairs(subs) do
    local got = messages(c, 1)
    t.ok(got[1] == want, format("worker %d got the %d bytes unchanged", w,
      #want))
    finish(c)
  end
end)

t.test("10^6 messages between workers; the server exits clean (no leak "
  .. "under ASan)", function()
  local N = 1000000
  local c = subscribe(2, "flood", 4096)
  local p = publish(1, "flood", N, "f")
  local n, last = 0, 0
  local ordered = true
  p:set_timeout(120)
  c:set_timeout(30)
  local done = false
  coronet.spawn(function()
    t.is(p:read_line(), "done 1", "worker 1 published 10^6")
    done = true
  end)
  while true do
    local line = c:read_line()
    local len = line and tonumber(line:match("^#(%d+)$"))
    if not len then break end
    local m = c:read_full(len)
    local k = tonumber(m:match("%d+"))
    if k <= last then ordered = false end
    last, n = k, n + 1
    if k == N then break end
  end
  util.wait_until(function() return done end, 120)
  local dropped = finish(c)
  t.is(n + (dropped or -1), N, format("received %d + dropped %s = %d", n,
    tostring(dropped), N))
  t.ok(ordered, "in order")
  p:close()
  local st = on(1)
  st:write("stats\n")
  local line = st:read_line() or ""
  st:close()
  t.like(line, "topics=0", "no topic is left once every subscription "
    .. "closed: " .. line)
end, 240)

t.test("the server exits 0 at SIGTERM (ASan: nothing leaked)", function()
  t.is(scratch.stop(s), 0, "exit status 0")
  local odd = {}
  for _, line in ipairs(s.lines) do
    if not (line:find("^coronet: listening on ")
        or line:find("fell behind")
        or line:find("shutting down") or line:find("waiting up to")) then
      odd[#odd + 1] = line
    end
  end
  t.is(#odd, 0, "nothing unexpected in the log")
  if #odd > 0 then t.diag(concat(odd, "\n")) end
end)

scratch.cleanup()
t.done()
