-- t/540-cancel.t: nobody waits forever on a dead object. Closing a
-- connection or its deadline passing wakes every task parked on it with
-- an error; waits on channels and wait groups take a timeout.
local t = require "lib.tap"
local util = require "lib.util"
local coronet = require "coronet"
local net = require "coronet.net"
local io_ = require "coronet.io"

local spawn, chan, now = coronet.spawn, coronet.chan, coronet.now
local rep = string.rep

local settle = util.settle

-- stuck_pair returns a client connection to a server that never reads
-- nor writes, and a function closing both.
local function stuck_pair()
  local server_side, release = chan(1), chan()
  local l = assert(net.listen("127.0.0.1:0", function(c)
    server_side:send(c)
    release:recv(30) -- keeps the task (and so the connection) open
  end))
  local c = assert(net.dial(l:addr(), { timeout = 5 }))
  local s = server_side:recv()
  return c, function()
    c:close()
    s:close()
    l:close()
    release:close()
  end
end

-- park_both starts a reader and a writer on c (the writer fills the
-- socket buffers and the write chain until it parks); returns a channel
-- that receives "reader: RESULT" and "writer: RESULT".
local function park_both(c)
  local out = chan(2)
  spawn(function()
    local s, err = c:read()
    out:send("reader: " .. tostring(s) .. " " .. tostring(err))
  end)
  spawn(function()
    local big = rep("x", 1024 * 1024)
    for _ = 1, 256 do -- 256 MiB: far more than the buffers hold
      local n, err = c:write(big)
      if not n then
        out:send("writer: nil " .. tostring(err))
        return
      end
    end
    out:send("writer: wrote everything")
  end)
  return out
end

local function both(out)
  local a, b = out:recv(10), out:recv(10)
  local r = { tostring(a), tostring(b) }
  table.sort(r)
  return r[1], r[2]
end

t.test("close from a third task wakes a parked reader and writer",
  function()
  local c, done = stuck_pair()
  local out = park_both(c)
  for _ = 1, 100 do -- until the writer is parked on a full queue
    settle(1)
    if out:len() > 0 then break end
    coronet.sleep(0.005)
  end
  t.is(out:len(), 0, "both are parked")
  local closer = chan(1)
  spawn(function()
    c:close()
    closer:send(true)
  end)
  closer:recv()
  local r, w = both(out)
  t.is(r, "reader: nil closed", "the reader woke with closed")
  t.is(w, "writer: nil closed", "the writer woke with closed")
  done()
end)

t.test("a deadline passing wakes a parked reader and writer", function()
  local c, done = stuck_pair()
  local out = park_both(c)
  coronet.sleep(0.05)
  t.is(out:len(), 0, "both are parked")
  local t0 = now()
  c:set_deadline(now() + 0.05)
  local r, w = both(out)
  t.is(r, "reader: nil timeout", "the reader woke with timeout")
  t.is(w, "writer: nil timeout", "the writer woke with timeout")
  t.cmp_ok(now() - t0, ">=", 0.045, "at the deadline")
  t.cmp_ok(now() - t0, "<", 5, "not much later")
  done()
end)

t.test("a deadline already past wakes parked tasks at once", function()
  local c, done = stuck_pair()
  local out = chan(1)
  spawn(function()
    local s, err = c:read_line()
    out:send(tostring(s) .. " " .. tostring(err))
  end)
  settle()
  c:set_read_deadline(now() - 1)
  t.is(out:recv(5), "nil timeout", "the reader woke with timeout")
  done()
end)

t.test("the end of a handler closes its connection and wakes its helpers",
  function()
  local helper_result = chan(1)
  local l = assert(net.listen("127.0.0.1:0", function(c)
    spawn(function() -- a helper task reading the handler's conn
      local s, err = c:read()
      helper_result:send(tostring(s) .. " " .. tostring(err))
    end)
    coronet.yield() -- let it park, then end the handler
  end))
  local c = assert(net.dial(l:addr(), { timeout = 5 }))
  t.is(helper_result:recv(5), "nil closed",
    "the helper woke with closed when the handler ended")
  c:set_timeout(5)
  local s, err = c:read()
  t.ok(s == nil and (err == "eof" or err:find("reset")),
    "and the peer saw the connection end: " .. tostring(err))
  c:close()
  l:close()
end)

-- copy_pair returns two client connections to a server that neither
-- reads nor writes, and a function closing everything.
local function copy_pair()
  local a, done_a = stuck_pair()
  local b, done_b = stuck_pair()
  return a, b, function()
    done_a()
    done_b()
  end
end

local function start_copy(dst, src)
  local out = chan(1)
  spawn(function()
    local n, err = io_.copy(dst, src)
    out:send(tostring(n) .. " " .. tostring(err))
  end)
  settle()
  return out
end

t.test("closing either side wakes a task parked in copy", function()
  local a, b, done = copy_pair()
  local out = start_copy(b, a)
  t.is(out:len(), 0, "the copy is parked (nothing to move)")
  a:close()
  t.is(out:recv(5), "0 closed", "closing the source ends it: closed")
  done()
  a, b, done = copy_pair()
  out = start_copy(b, a)
  b:close()
  t.is(out:recv(5), "0 closed", "closing the destination too")
  done()
end)

t.test("a deadline set while a copy is parked ends it in time", function()
  local a, b, done = copy_pair()
  local out = start_copy(b, a)
  local t0 = now()
  a:set_read_deadline(now() + 0.05)
  t.is(out:recv(5), "0 timeout", "the copy ended with timeout")
  t.cmp_ok(now() - t0, ">=", 0.045, "at the deadline")
  t.cmp_ok(now() - t0, "<", 3, "not much later")
  done()
end)

t.test("a peer that closes wakes a parked reader with eof", function()
  local l = assert(net.listen("127.0.0.1:0", function(c)
    c:read() -- parks until the client hangs up
  end))
  local c = assert(net.dial(l:addr(), { timeout = 5 }))
  local out = chan(1)
  local l2 = assert(net.listen("127.0.0.1:0", function(s)
    coronet.sleep(0.02)
    s:close()
  end))
  local c2 = assert(net.dial(l2:addr(), { timeout = 5 }))
  spawn(function()
    local s, err = c2:read()
    out:send(tostring(s) .. " " .. tostring(err))
  end)
  t.is(out:recv(5), "nil eof", "eof")
  c:close()
  c2:close()
  l:close()
  l2:close()
end)

t.test("a task waiting on a channel can give up after a timeout",
  function()
  local ch = chan()
  local t0 = now()
  local v, ok, err = ch:recv(0.03)
  t.ok(v == nil and ok == false and err == "timeout", "recv times out")
  local r, serr = ch:send(1, 0.03)
  t.ok(r == nil and serr == "timeout", "send times out")
  local x = coronet.select { { recv = ch }, { timeout = 0.03,
    fn = function() return "t" end } }
  t.is(x, "t", "select times out")
  t.cmp_ok(now() - t0, ">=", 0.089, "each waited its time")
end)

t.test("closing a channel wakes everyone waiting on it", function()
  local rch, sch = chan(), chan(1)
  sch:send(0) -- full: senders wait
  local out = chan(10)
  for _ = 1, 3 do
    spawn(function()
      local v, ok = rch:recv()
      out:send(tostring(v) .. "/" .. tostring(ok))
    end)
  end
  for _ = 1, 2 do
    spawn(function()
      local ok, err = pcall(function() sch:send(1) end)
      out:send(ok and "sent" or (err:match("send on closed channel") or err))
    end)
  end
  settle()
  rch:close()
  sch:close()
  local got = {}
  for i = 1, 5 do got[i] = out:recv(5) end
  table.sort(got)
  t.is(table.concat(got, ","),
    "nil/false,nil/false,nil/false,send on closed channel,"
    .. "send on closed channel", "three receivers and two senders woke")
end)

t.test("a wait group's wait takes a timeout", function()
  local wg = coronet.waitgroup()
  wg:add(1)
  local ok, err = wg:wait(0.02)
  t.ok(ok == nil and err == "timeout", "wait times out while the count is 1")
  local out = chan(1)
  spawn(function() out:send((wg:wait(5))) end)
  settle()
  wg:done()
  t.is(out:recv(5), true, "a waiter wakes when the count reaches zero")
  t.is(wg:wait(), true, "wait at zero returns at once")
  t.is(#wg.waiters, 0, "the timed-out waiter left the list")
  local bad = pcall(function() wg:done() end)
  t.ok(not bad, "done below zero raises")
end)

-- cleanup: wait("x") said "attempt to compare string with number"
t.test("a wait group's wait with a timeout that is not a number raises",
  function()
  local wg = coronet.waitgroup()
  util.bad_arg(t, function() wg:wait("x") end, 1, "wait",
    "number expected, got string", "wait('x') at a count of zero")
  wg:add(1)
  util.bad_arg(t, function() wg:wait({}) end, 1, "wait",
    "number expected, got table", "wait({}) at a count of one")
  t.is(#wg.waiters, 0, "and leaves no waiter behind")
  wg:done()
end)

t.test("a dial given up by its timeout leaves nothing behind", function()
  -- a name lookup that is slow or a connect that hangs: here the lookup
  -- of a name we give no time at all
  local c, err = net.dial("localhost:1", { timeout = 0.000001 })
  t.is(c, nil, "no connection")
  t.ok(err:find("timeout") or err:find("refused"),
    "timeout (or refused, if the lookup won): " .. tostring(err))
end)

t.test("no task or connection is left over", function()
  util.no_leftovers(t)
end)

t.done()
