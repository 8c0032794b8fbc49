-- chat_web: the chat room in a browser. GET / is one small page (HTML,
-- CSS and JS inline, nothing fetched from elsewhere); /ws joins the same
-- room over WebSocket, one chat line per text message, both ways. The
-- page shows the members, marks notices, and reconnects (taking its name
-- back) when the server restarts.
--
-- scripts/chat.lua uses it when given --web ADDR (and over HTTPS and WSS
-- with --web-cert FILE --web-key FILE):
--   coronet scripts/chat.lua -l 127.0.0.1:7000 -- --web 127.0.0.1:8080
-- Browser members are served by the chat's own session code: their
-- connections sit in a group of their own (transport), to which the room
-- sends each line as one pre-framed WebSocket text frame (server frames
-- are not masked: the same bytes suit every browser), and their messages
-- come to the session as lines (reader).
local http = require "coronet.http"
local websocket = require "coronet.websocket"
local coronet = require "coronet"
local net = require "coronet.net"
local log = require "coronet.log"
local host = require "coronet.c.host"
local setmetatable = setmetatable
local gsub = string.gsub
local valid_utf8 = websocket.valid_utf8

local _M = {}

-- A message longer than a chat line still arrives, to be refused as a
-- line ("* line too long"); past this the socket closes (1009).
local MAX_MESSAGE = 65536

_M.PAGE = [==[<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>coronet chat</title>
<style>
body{margin:0;font:15px/1.4 system-ui,sans-serif;display:flex;height:100vh}
main{flex:1;display:flex;flex-direction:column;min-width:0}
#log{flex:1;overflow-y:auto;padding:.5em 1em;margin:0}
#log div{white-space:pre-wrap;word-wrap:break-word}
#log .notice{color:#777;font-style:italic}
#log .mine{color:#05a}
aside{width:12em;border-left:1px solid #ddd;padding:.5em 1em;overflow-y:auto}
aside ul{list-style:none;padding:0;margin:0}
aside li.me{font-weight:bold}
form{display:flex;border-top:1px solid #ddd}
#input{flex:1;font:inherit;padding:.6em;border:0}
#status{font-size:.8em;color:#777}
#status.off{color:#c00}
</style></head>
<body><main><div id="log" aria-live="polite"></div>
<form id="form"><input id="input" autocomplete="off" maxlength="4096"
placeholder="say something, or /nick NAME, /who"></form></main>
<aside><div id="status" class="off">connecting</div>
<h4>here</h4><ul id="members"></ul></aside>
<script>
"use strict";
const log = document.getElementById("log"),
  list = document.getElementById("members"),
  status = document.getElementById("status"),
  input = document.getElementById("input");
let ws = null, me = null, wanted = null, members = new Set(), quiet = 0,
  delay = 500;

function show(text, cls) {
  const atEnd = log.scrollTop + log.clientHeight >= log.scrollHeight - 4;
  const div = document.createElement("div");
  div.textContent = text;
  if (cls) div.className = cls;
  log.appendChild(div);
  while (log.childNodes.length > 500) log.removeChild(log.firstChild);
  if (atEnd) log.scrollTop = log.scrollHeight;
}

function render() {
  list.textContent = "";
  [...members].sort().forEach(function (name) {
    const li = document.createElement("li");
    li.textContent = name;
    if (name === me) li.className = "me";
    list.appendChild(li);
  });
}

function who() { quiet++; ws.send("/who"); }

// notice reads what a notice says about the members.
function notice(text) {
  let m;
  if ((m = /^\* welcome, (\S+)!/.exec(text))) {
    me = m[1];
    members.add(me);
    if (wanted && wanted !== me) ws.send("/nick " + wanted);
    who();
  } else if ((m = /^\* you are now (\S+)$/.exec(text))) {
    members.delete(me);
    me = wanted = m[1];
    members.add(me);
  } else if ((m = /^\* (\S+) joined$/.exec(text))) {
    members.add(m[1]);
  } else if ((m = /^\* (\S+) left/.exec(text))) {
    members.delete(m[1]);
  } else if ((m = /^\* (\S+) is now (\S+)$/.exec(text))) {
    members.delete(m[1]);
    members.add(m[2]);
  } else if ((m = /^\* \d+ here: (.*)$/.exec(text))) {
    members = new Set(m[1].split(", ").filter(Boolean));
    render();
    if (quiet > 0) { quiet--; return false; }
  } else if (/^\* \d+ (joined|left)/.test(text)) {
    who();
  }
  render();
  return true;
}

function connect() {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  ws = new WebSocket(proto + "//" + location.host + "/ws");
  ws.onopen = function () {
    status.textContent = "connected";
    status.className = "";
    delay = 500;
  };
  ws.onmessage = function (ev) {
    const text = String(ev.data);
    if (text.startsWith("* ")) {
      if (notice(text)) show(text, "notice");
    } else {
      show(text);
    }
  };
  ws.onclose = function () {
    status.textContent = "disconnected: reconnecting";
    status.className = "off";
    if (me) wanted = me;
    members.clear();
    render();
    setTimeout(connect, delay);
    delay = Math.min(delay * 2, 8000);
  };
}

document.getElementById("form").onsubmit = function (ev) {
  ev.preventDefault();
  const text = input.value;
  if (!text || !ws || ws.readyState !== 1) return;
  ws.send(text);
  if (text.startsWith("/nick ")) wanted = text.slice(6).trim();
  else if (!text.startsWith("/")) show((me || "me") + ": " + text, "mine");
  input.value = "";
};
connect();
</script></body></html>
]==]

-- -- Members -------------------------------------------------------------

-- text(line) -> line as valid UTF-8 (a text frame must be): a line that
-- is not has its bytes past ASCII replaced with "?".
local function text(line)
  if valid_utf8(line) then return line end
  return (gsub(line, "[\128-\255]", "?"))
end

-- transport(group) -> what scripts/chat.lua sends lines to browser members
-- through: group, and frame(line) -> the bytes of one text message.
function _M.transport(group)
  return { group = group,
    frame = function(line) return websocket.frame(text(line)) end }
end

local Reader = {}
Reader.__index = Reader

-- reader(ws) -> a Reader of the socket's text messages as lines: each one
-- comes with a "\n" (newlines inside it became spaces).
function _M.reader(ws)
  return setmetatable({ ws = ws }, Reader)
end

function Reader:read()
  while true do
    local msg, kind = self.ws:recv()
    if not msg then -- "eof" after the browser's close frame
      return nil, self.ws.peer_closed and "eof" or kind
    end
    if kind == "text" then return (gsub(msg, "\r?\n", " ")) .. "\n" end
  end
end

-- writer(group, conn) -> how a browser member's socket sends its own
-- frames (pongs, close): through the group once conn is in it, so that
-- they never land inside a frame the room sends; before, straight.
function _M.writer(group, conn)
  return function(bytes)
    local ok, err = group:send_to(conn, bytes)
    if ok == nil and err == "not found" then return conn:write(bytes) end
    return ok, err
  end
end

-- -- Serving --------------------------------------------------------------

-- router(session) -> the web handlers: GET / is the page, /ws runs
-- session(ws, conn) for each browser, to its end.
function _M.router(session)
  local r = http.router()
  r:get("/", function(_, res)
    res:header("Content-Type", "text/html; charset=utf-8")
    res:header("Cache-Control", "no-cache")
    res:finish(_M.PAGE)
  end)
  r:get("/ws", function(req, res)
    local ws = websocket.upgrade(req, res, { max_message = MAX_MESSAGE })
    if ws then session(ws, req.conn) end
  end)
  return r
end

-- listen(addr, session, tr [, tls]) serves the page and /ws on addr, from
-- the first worker only (its members join the room of every worker). A
-- reloaded script calls it again: listening again on the same address
-- from the new main chunk takes over the same socket (a listener the new
-- version does not open again is closed), and the log line comes once.
-- session(ws, conn) serves one browser, whose frames go through tr.group.
-- With tls = {cert =, key =} it is HTTPS (the page then opens wss://).
-- Returns the bound address, or nil and the error.
function _M.listen(addr, session, tr, tls)
  local st = coronet.state("chat_web")
  st.session, st.tr = session, tr
  if host.info().worker ~= 1 then return nil, "not the first worker" end
  local first = st.listener == nil
  local handler = http.server(_M.router(function(ws, conn)
    ws:set_writer(_M.writer(st.tr.group, conn))
    return st.session(ws, conn)
  end))
  if tls then
    addr = "tls://" .. gsub(addr, "^tls://", "")
    tls = { cert = tls.cert, key = tls.key, alpn = { "http/1.1" } }
  end
  local l, err = net.listen(addr, handler, tls)
  if not l then
    log.error("chat: web %s", err)
    return nil, err
  end
  st.listener = l
  if first then
    log.info("chat: web page on %s://%s/", tls and "https" or "http",
      (gsub(l:addr(), "^tls://", "")))
  end
  return l:addr()
end

return _M
