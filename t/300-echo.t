-- t/300-echo.t: the echo service (scripts/echo.lua) as a client sees it:
-- exact replies for awkward inputs, half-close, a 16 MiB random payload
-- checked by hash, concurrent connections, and the same through the
-- one-byte relay. Each test runs twice, on two connections in sequence,
-- to catch state left behind.
local t = require "lib.tap"
local server = require "lib.server"
local relay = require "lib.relay"
local util = require "lib.util"
local coronet = require "coronet"
local net = require "coronet.net"

local s = server.start { script = server.path("scripts/echo.lua") }

local function twice(name, fn, timeout)
  for round = 1, 2 do
    t.test(name .. " (round " .. round .. ")", function() fn(round) end,
      timeout)
  end
end

-- exchange(c, data) writes data from its own task, half-closes, and reads
-- everything back until eof; returns the reply and the error that ended it.
local function exchange(c, data, pieces)
  coronet.spawn(function()
    if pieces then
      for i = 1, #data, pieces do
        c:write(data:sub(i, i + pieces - 1))
        coronet.yield()
      end
    else
      c:write(data)
    end
    c:close_write()
  end)
  return util.read_all(c)
end

twice("echo returns each awkward input byte for byte", function()
  local all = {}
  for i = 0, 255 do all[#all + 1] = string.char(i) end
  for _, input in ipairs {
    "x", "\0", "\n", "\r\n", "hello\r\n", "\0\0\0\n\r\r", table.concat(all),
    string.rep("\255", 1000), string.rep("line\n", 3000),
  } do
    local c = s:connect()
    local got, err = exchange(c, input)
    t.is(err, "eof", "eof after " .. util.show_bytes(input))
    t.ok(got == input, "the same bytes back for " .. util.show_bytes(input))
    if got ~= input then t.diag("got " .. util.show_bytes(got)) end
    c:close()
  end
end)

twice("an empty half-closed connection gets eof and nothing else", function()
  local c = s:connect()
  c:close_write()
  local got, err = util.read_all(c)
  t.is(got, "", "no bytes")
  t.is(err, "eof", "just eof")
  c:close()
end)

twice("a client that closes at once does not disturb the server", function()
  for _ = 1, 10 do s:connect():close() end
  local c = s:connect()
  t.is((exchange(c, "still here")), "still here", "the next one is served")
  c:close()
end)

twice("replies come as the bytes arrive, before the half-close", function()
  local c = s:connect()
  for i = 1, 5 do
    c:write("ping " .. i .. "\n")
    t.is(c:read_line(), "ping " .. i, "ping " .. i .. " answered at once")
  end
  c:close_write()
  t.is(select(2, c:read()), "eof", "eof after the half-close")
  c:close()
end)

twice("bytes written one at a time come back in order", function()
  local c = s:connect()
  local input = util.random_bytes(3000, 5)
  local got = exchange(c, input, 1)
  t.is(#got, #input, "3000 bytes back")
  t.ok(got == input, "in order")
  c:close()
end)

twice("a 16 MiB random payload comes back whole after a half-close",
  function(round)
    local size = 16 * 1024 * 1024
    local payload = util.random_bytes(size, 1000 + round)
    local want = util.fnv1a(payload)
    local c = s:connect()
    local t0 = coronet.now()
    coronet.spawn(function()
      for i = 1, size, 65536 do
        if not c:write(payload:sub(i, i + 65535)) then return end
      end
      c:close_write()
    end)
    local got, h, err = 0, nil, nil
    while true do
      local x, e = c:read(65536)
      if not x then err = e; break end
      h = util.fnv1a(x, h)
      got = got + #x
    end
    local dt = coronet.now() - t0
    t.is(err, "eof", "the server closed after echoing everything")
    t.is(got, size, "16 MiB came back")
    t.is(util.hex(h or 0), util.hex(want), "the FNV-1a hash matches")
    t.diag(string.format("16 MiB echoed in %.2f s", dt))
    c:close()
  end, 120)

twice("a transfer in progress does not starve other connections", function()
  local big = s:connect()
  local size = 32 * 1024 * 1024
  local chunk = string.rep("b", 65536)
  local received, finished = 0, false
  coronet.spawn(function()
    for _ = 1, size / 65536 do
      if not big:write(chunk) then return end
    end
    big:close_write()
  end)
  coronet.spawn(function()
    while true do
      local x = big:read(65536)
      if not x then break end
      received = received + #x
    end
    finished = true
  end)
  util.wait_until(function() return received > 0 end)
  local answered = 0
  for i = 1, 20 do
    local c = s:connect()
    c:write("quick " .. i .. "\n")
    if c:read_line() == "quick " .. i then answered = answered + 1 end
    c:close()
  end
  t.is(answered, 20, "20 short exchanges answered during the transfer")
  t.diag(string.format("%.1f MiB of the bulk transfer done meanwhile",
    received / 1048576))
  util.wait_until(function() return finished end, 60)
  t.is(received, size, "and the bulk transfer completed")
  big:close()
end, 120)

twice("many connections echo at the same time, each its own bytes",
  function(round)
    local n = 50
    local good, pending = 0, n
    for i = 1, n do
      coronet.spawn(function()
        local c = s:connect()
        local input = util.random_bytes(10000 + i * 37, i * round)
        local got = exchange(c, input)
        if got == input then good = good + 1 end
        c:close()
        pending = pending - 1
      end)
    end
    util.wait_until(function() return pending == 0 end, 60)
    t.is(good, n, n .. " concurrent exchanges, all exact")
  end)

-- Through the one-byte relay: every byte its own segment.
local r = relay.start(s.direct or s.addr) -- (not through an edge relay too)
local fast = relay.start(s.direct or s.addr, 0) -- a loop turn per byte

local function via(rl)
  local c = assert(net.dial(rl.addr, { timeout = 10 }))
  c:set_timeout(30)
  return c
end

twice("echo through the relay returns lines exactly", function()
  local c = via(r)
  for _, line in ipairs { "hello", "", "with\rcr", "tab\tand space " } do
    c:write(line .. "\r\n")
    t.is(c:read_line(), line, "line " .. util.show_bytes(line))
  end
  c:close()
end, 60)

twice("echo through the relay with a half-close, checked by hash",
  function(round)
    local c = via(fast)
    local input = util.random_bytes(4096, 77 + round)
    local got, err = exchange(c, input)
    t.is(err, "eof", "eof passed through the relay")
    t.is(#got, #input, "4 KiB back")
    t.is(util.hex(util.fnv1a(got)), util.hex(util.fnv1a(input)), "hash matches")
    c:close()
  end, 60)

t.test("the server is still healthy and exits 0", function()
  r.close()
  fast.close()
  local c = s:connect()
  t.is((exchange(c, "bye")), "bye", "still echoing")
  c:close()
  t.is(s:stop(), 0, "exit 0")
end)

t.done()
