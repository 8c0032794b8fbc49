-- t/740-websocket.t: coronet.websocket (issue #10, RFC 6455): the
-- handshake, real clients (Python's websockets, Node's ws, coronet's own
-- dial), and raw frames for the rules: masking, the 126 and 127 length
-- forms, a 2^63 length refused without allocating, fragments split
-- inside a UTF-8 sequence, invalid UTF-8 (1007), a ping inside a
-- fragmented message, control frame limits, max_message (1009), close
-- codes, and the idle deadline.
local t = require "lib.tap"
local server = require "lib.server"
local httpc = require "lib.httpc"
local wsraw = require "lib.wsraw"
local ext = require "lib.ext"
local util = require "lib.util"
local coronet = require "coronet"
local websocket = require "coronet.websocket"
local rep, char, format = string.rep, string.char, string.format

local s = server.start { script = "t/lib/ws_app.lua" }
local url = "ws://" .. s.addr

-- closed_with(c, code) reads frames until a close frame; checks its code
-- and that the server then closes the connection.
local function closed_with(c, code, what)
  local f = wsraw.read(c)
  while f and f.op ~= 8 do f = wsraw.read(c) end
  t.is(f and f.code, code, what .. ": close " .. code)
  t.ok(httpc.closed(c), what .. ": then the connection closes")
end

-- refused(bytes, code, what [, path]) sends bytes on a new socket (to
-- /echo unless path) and checks the close that answers them.
local function refused(bytes, code, what, path)
  local c = wsraw.connect(s, path or "/echo")
  c:write(bytes)
  closed_with(c, code, what)
end

t.test("the handshake answers 101 with the accept value", function()
  local c, r = wsraw.connect(s, "/echo")
  t.is(r.headers["sec-websocket-accept"], wsraw.ACCEPT, "RFC 6455's example")
  t.is(r.headers.upgrade, "websocket", "Upgrade: websocket")
  c:close()
end)

t.test("a bad handshake is refused", function()
  local c = s:connect()
  c:write(httpc.req("GET", "/echo", { Upgrade = "websocket",
    Connection = "Upgrade", ["Sec-WebSocket-Version"] = "13" }))
  t.is((httpc.read(c) or {}).status, 400, "no key: 400")
  c:close()
  c = s:connect()
  c:write(httpc.req("GET", "/echo", { Upgrade = "websocket",
    Connection = "Upgrade", ["Sec-WebSocket-Key"] = "dGhlIHNhbXBsZSBub25jZQ==",
    ["Sec-WebSocket-Version"] = "8" }))
  local r = httpc.read(c) or {}
  t.is(r.status, 426, "version 8: 426")
  t.is(r.headers and r.headers["sec-websocket-version"], "13", "asking for 13")
  c:close()
end)

t.test("Python's websockets: text, binary, large, fragmented, ping, close",
  function()
    if not ext.need(t, "/usr/bin/python3") then return end
    local code, out, err = ext.run({ "/usr/bin/python3",
      server.path("t/py/ws_client.py"), url .. "/echo" }, nil, 40)
    t.is(code, 0, "python succeeds " .. err)
    t.is(out, "text h\195\169llo \226\156\147\nbinary bytes 0001ff\n"
      .. "large 200000\nfragmented fragment\195\169d\npong\nclosed 1000\n",
      "every echo, the pong and a clean close")
  end)

t.test("Node's ws: text, binary, large, fragmented, ping, close", function()
  if not ext.need(t, "node") then return end
  local js = server.path("t/node/ws_client.js")
  if not ext.which(server.path("t/node/node_modules/ws/package.json")) then
    if os.getenv("CI") then
      return t.fail("t/node/node_modules has ws", "run npm ci in t/node")
    end
    return t.pass("# SKIP ws is not installed in t/node (npm ci)")
  end
  local code, out = ext.run({ "node", js, url .. "/recv" }, nil, 40)
  t.is(code, 0, "node succeeds")
  t.is(out, "text h\195\169llo \226\156\147\nbinary bytes 0001ff\n"
    .. "large 200000\nfragmented fragment\195\169d\npong\nclosed 1000\n",
    "every echo, the pong and a clean close")
end)

t.test("coronet's own client: messages, kinds and the server's close",
  function()
    local ws = assert(websocket.dial(url .. "/echo"))
    t.is(ws:send("hi"), 2, "send returns the length")
    t.is(select(2, ws:recv(5)), "text", "a text message")
    ws:send("\0\1", "binary")
    local msg, kind = ws:recv(5)
    t.ok(msg == "\0\1" and kind == "binary", "a binary one")
    t.ok(ws:ping("x"), "ping")
    ws:close()
    t.is(select(2, ws:recv()), "closed", "closed after close")
    local bye = assert(websocket.dial(url .. "/bye"))
    t.is(bye:recv(5), "bye", "the server's message")
    local m, err, code, reason = bye:recv(5)
    t.ok(m == nil and err == "closed" and code == 4001 and reason == "done",
      "then its close: 4001 done")
    local p = assert(websocket.dial(url .. "/proto",
      { protocols = { "superchat" } }))
    t.is(p.protocol, "superchat", "the subprotocol agreed")
    t.is(p:recv(5), "superchat", "the server agrees")
    p:close()
  end)

t.test("the 126 and 127 length forms carry 200 and 70,000 bytes",
  function()
    local c = wsraw.connect(s, "/echo")
    c:write(wsraw.frame(2, rep("a", 200)))
    local f = wsraw.read(c)
    t.is(f and #f.data, 200, "200 bytes (the 126 form)")
    t.ok(f and not f.mask, "server frames are not masked")
    c:write(wsraw.frame(2, rep("b", 70000)))
    f = wsraw.read(c)
    t.is(f and #f.data, 70000, "70,000 bytes (the 127 form)")
    c:close()
  end)

t.test("a length in a longer form than needed is refused", function()
  refused(wsraw.frame(2, "abc", { form = 126 }), 1002,
    "3 bytes in the 126 form")
end)

t.test("a 2^63 length is refused at once, nothing allocated", function()
  local rss = util.rss_kib(s.proc.pid)
  refused(wsraw.frame(2, "", { form = 127,
    raw_len = char(0x80, 0, 0, 0, 0, 0, 0, 0) }), 1002, "2^63")
  refused(wsraw.frame(2, "", { form = 127,
    raw_len = char(0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff) }), 1009,
    "2^63 - 1: too big")
  t.ok(util.rss_kib(s.proc.pid) < rss + 1024, "the server did not grow")
end)

t.test("an unmasked client frame is refused with 1002", function()
  refused(wsraw.frame(1, "hello", { mask = false }), 1002, "unmasked")
end)

t.test("text fragmented inside a UTF-8 sequence is reassembled", function()
  local c = wsraw.connect(s, "/echo")
  local text = "caf\195\169 \226\130\172" -- café €
  c:write(wsraw.frame(1, text:sub(1, 4), { fin = false })
    .. wsraw.frame(0, text:sub(5, 8), { fin = false })
    .. wsraw.frame(0, text:sub(9), { fin = true }))
  local f = wsraw.read(c)
  t.is(f and f.data, text, "the whole text, once")
  t.is(f and f.op, 1, "as text")
  c:close()
end)

t.test("invalid UTF-8 closes with 1007", function()
  refused(wsraw.frame(1, "ab\192\175"), 1007, "an overlong slash")
  refused(wsraw.frame(1, "ab\226\130", { fin = false })
    .. wsraw.frame(0, "", { fin = true }), 1007,
    "a sequence cut at the message's end")
  refused(wsraw.frame(1, "\237\160\128"), 1007, "a surrogate")
end)

t.test("a ping inside a fragmented message is answered first", function()
  local c = wsraw.connect(s, "/echo")
  c:write(wsraw.frame(1, "one ", { fin = false }) .. wsraw.frame(9, "p!")
    .. wsraw.frame(0, "two", { fin = true }))
  local f = wsraw.read(c)
  t.ok(f and f.op == 10 and f.data == "p!", "the pong, with the ping's data")
  f = wsraw.read(c)
  t.is(f and f.data, "one two", "then the message")
  c:close()
end)

t.test("control frames: at most 125 bytes, never fragmented", function()
  refused(wsraw.frame(9, rep("p", 126)), 1002, "a 126-byte ping")
  refused(wsraw.frame(9, "p", { fin = false }), 1002, "a fragmented ping")
end)

t.test("fragments out of order and reserved bits are refused", function()
  refused(wsraw.frame(0, "x"), 1002,
    "a continuation with nothing to continue")
  refused(wsraw.frame(1, "a", { fin = false }) .. wsraw.frame(1, "b"), 1002,
    "a new message inside a fragmented one")
  refused(wsraw.frame(1, "a", { rsv = 0x40 }), 1002,
    "RSV1 without an extension")
  refused(wsraw.frame(3, "a"), 1002, "a reserved opcode")
end)

t.test("max_message bounds a message, fragments included (1009)",
  function()
    local c = wsraw.connect(s, "/small")
    c:write(wsraw.frame(2, rep("a", 1000)))
    t.is(#(wsraw.read(c) or { data = "" }).data, 1000, "1000 bytes pass")
    c:write(wsraw.frame(2, rep("a", 600), { fin = false })
      .. wsraw.frame(0, rep("a", 600)))
    closed_with(c, 1009, "1200 in two fragments")
  end)

t.test("close codes: echoed, checked", function()
  refused(wsraw.close(1000, "done"), 1000, "1000 is echoed")
  refused(wsraw.close(3000), 3000, "3000 (registered) is echoed")
  for _, code in ipairs { 999, 1004, 1005, 1006, 1015, 5000 } do
    refused(wsraw.close(code), 1002, "code " .. code .. " is not to be sent")
  end
  refused(wsraw.frame(8, "\3"), 1002, "a one-byte close body")
  refused(wsraw.close(1000, "\255"), 1007, "a reason that is not UTF-8")
end)

t.test("ws:close waits close_wait for the peer's close, then closes",
  function()
    local c = wsraw.connect(s, "/bye")
    local f = wsraw.read(c)
    t.is(f and f.data, "bye", "the message")
    local t0 = coronet.now()
    f = wsraw.read(c)
    t.is(f and f.code, 4001, "the close frame")
    t.ok(httpc.closed(c, 10), "no answer: the server closes")
    local took = coronet.now() - t0
    t.ok(took > 1.5 and took < 4, format("after close_wait, 2 s (%.2f)", took))
  end)

t.test("a silent socket gets a ping, then a close at its deadline",
  function()
    local c = wsraw.connect(s, "/idle")
    local t0 = coronet.now()
    local f = wsraw.read(c)
    t.is(f and f.op, 9, "a ping after half the timeout")
    closed_with(c, 1001, "no answer")
    t.ok(coronet.now() - t0 < 3, "after about 1 s")
    t.ok(s:wait_log("idle recv: nil timeout"), "the handler saw 'timeout'")
  end)

t.test("a pong keeps a quiet socket open", function()
  local c = wsraw.connect(s, "/idle")
  for _ = 1, 3 do
    local f = wsraw.read(c)
    if not (f and f.op == 9) then break end
    c:write(wsraw.frame(10, f.data))
  end
  c:write(wsraw.frame(1, "late"))
  t.ok(s:wait_log("idle recv: late"), "a message after 1.5 s of pongs")
  c:close()
end)

t.is(s:stop(), 0, "the server exits cleanly")
t.done()
