-- t/850-tls-chat-web.t: the chat in a browser over HTTPS and WSS:
-- scripts/chat.lua with --web and a certificate (--web-cert, --web-key)
-- serves its page over TLS (curl and http.request check it), and a wss://
-- member chats with a telnet one; websocket.dial checks the certificate.
local t = require "lib.tap"
local certs = require "lib.certs"
local scratch = require "lib.scratch"
local server = require "lib.server"
local chat = require "lib.chat"
local http = require "coronet.http"
local websocket = require "coronet.websocket"

certs.need("openssl", "curl")
local d = certs.make()

local s = scratch.start { script = server.path("scripts/chat.lua"),
  args = { "--web", "127.0.0.1:0", "--web-cert", d.cert, "--web-key", d.key } }
local line = s:wait_log("chat: web page on https://%S+/")
local web = line and line:match("https://(%S+)/")
t.ok(web, "the log names the https address: " .. tostring(line))
local port = web and web:match(":(%d+)$") or "0"
local base = "https://localhost:" .. port

t.test("the page comes over HTTPS, checked, with ALPN http/1.1", function()
  local r, err = http.request { url = base .. "/", tls = { ca = d.ca },
    timeout = 10, headers = { connection = "close" } }
  t.ok(r, "http.request: " .. tostring(err))
  if not r then return end
  local page = r:read_all()
  t.is(r.status, 200, "200")
  t.like(page, 'location%.protocol === "https:" %? "wss:"',
    "its script opens wss:// when loaded over https")
  local code, out = certs.client { "curl", "-sS", "--max-time", "10",
    "--cacert", d.ca, "-o", "/dev/null", "-w", "%{http_code} %{http_version}",
    base .. "/" }
  t.is(code, 0, "curl exits 0")
  t.is(out, "200 1.1", "curl gets it too, over HTTP/1.1")
end)

t.test("a wss:// member and a telnet member chat", function()
  local a = chat.must_join(s)
  local ws, err = websocket.dial("wss://localhost:" .. port .. "/ws",
    { tls = { ca = d.ca } })
  t.ok(ws, "wss dial: " .. (ws and "ok" or tostring(err)))
  if not ws then a:close() return end
  local welcome = ws:recv(5)
  local name = welcome and welcome:match(chat.WELCOME)
  t.ok(name, "the browser member is welcomed: " .. tostring(welcome))
  a:expect("* " .. tostring(name) .. " joined", "telnet sees it join")
  ws:send("hello over wss")
  a:expect(name .. ": hello over wss", "its line reaches telnet")
  a:say("hello from telnet")
  t.is(ws:recv(5), a.name .. ": hello from telnet", "and back, encrypted")
  t.is(ws.conn:tls().alpn, "http/1.1", "the socket negotiated http/1.1")
  ws:close()
  a:expect("* " .. name .. " left", "its leaving is seen")
  a:close()
end)

t.test("wss:// checks the certificate", function()
  local ws, err = websocket.dial("wss://localhost:" .. port .. "/ws")
  t.is(ws, nil, "no socket without the CA")
  t.like(err, "tls: certificate verify failed: unknown ca$", "saying why")
end)

t.test("the server exits cleanly", function()
  t.is(scratch.stop(s), 0, "exit 0")
end)

scratch.cleanup()
t.done()
