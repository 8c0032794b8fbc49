-- chat_web: the chat room in a browser. GET / is one small page (HTML,
-- CSS and JS inline, nothing fetched from elsewhere); /ws joins the same
-- room over WebSocket, one chat line per text message, both ways. The
-- page shows the members, marks notices, and reconnects (taking its name
-- back) when the server restarts.
--
-- scripts/chat.lua uses it when given --web ADDR:
--   coronet scripts/chat.lua -l 127.0.0.1:7000 -- --web 127.0.0.1:8080
-- A browser member is served by the same session code as a telnet one:
-- member(ws) wraps the socket in the methods that code uses on a
-- connection (read_line, write, close, remote_addr, id).
local http = require "coronet.http"
local websocket = require "coronet.websocket"
local coronet = require "coronet"
local net = require "coronet.net"
local log = require "coronet.log"
local host = require "coronet.c.host"
local setmetatable, type = setmetatable, type
local find, sub, gsub, gmatch = string.find, string.sub, string.gsub,
  string.gmatch

local _M = {}

local MAX_LINE = 4096

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

local Member = {}
Member.__index = Member

-- member(ws, conn) -> an object with the connection methods the chat's
-- session uses, over ws: each text message is a line, each line written
-- goes as one text message.
function _M.member(ws, conn)
  return setmetatable({ ws = ws, conn = conn }, Member)
end

-- read_line([max]) -> the next message as a line (newlines in it become
-- spaces) | nil, err ("line too long" past max; "eof" once closed)
function Member:read_line(max)
  while true do
    local msg, kind = self.ws:recv()
    if not msg then
      return nil, kind == "closed" and "eof" or kind
    end
    if kind == "text" then
      if #msg > (max or MAX_LINE) then return nil, "line too long" end
      return (gsub(msg, "\r?\n", " "))
    end
  end
end

-- write(data) -> #data | nil, err: data holds whole lines (a string or a
-- table of them), each sent as its own message without its "\n".
function Member:write(data)
  if type(data) == "table" then data = table.concat(data) end
  for line in gmatch(data, "([^\n]*)\n") do
    local ok, err = self.ws:send(line)
    if not ok then return nil, err end
  end
  return #data
end

function Member:close() return self.ws:close(1001, "going away") end
function Member:remote_addr() return self.conn:remote_addr() end
function Member:local_addr() return self.conn:local_addr() end
function Member:id() return self.conn:id() end

-- -- Serving --------------------------------------------------------------

-- router(session) -> the web handlers: GET / is the page, /ws runs
-- session(member) for each browser, to its end.
function _M.router(session)
  local r = http.router()
  r:get("/", function(_, res)
    res:header("Content-Type", "text/html; charset=utf-8")
    res:header("Cache-Control", "no-cache")
    res:finish(_M.PAGE)
  end)
  r:get("/ws", function(req, res)
    local ws = websocket.upgrade(req, res, { max_message = MAX_LINE + 64 })
    if ws then session(_M.member(ws, req.conn)) end
  end)
  return r
end

-- listen(addr, session) serves the page and /ws on addr, from the first
-- worker only (its members join the room of all workers), once: a
-- reloaded script calls it again and only its session changes. Returns
-- the bound address, or nil and the error.
function _M.listen(addr, session)
  local st = coronet.state("chat_web")
  st.session = session
  if host.info().worker ~= 1 then return nil, "not the first worker" end
  if st.listener then return st.listener:addr() end
  local handler = http.server(_M.router(function(m) return st.session(m) end))
  local l, err = net.listen(addr, handler)
  if not l then
    log.error("chat: web %s", err)
    return nil, err
  end
  st.listener = l
  log.info("chat: web page on http://%s/", l:addr())
  return l:addr()
end

-- web_arg(args) -> the ADDR of "--web ADDR" among a script's arguments.
function _M.web_arg(args)
  for i = 1, #args do
    if args[i] == "--web" then return args[i + 1] end
    local v = find(args[i], "^%-%-web=") and sub(args[i], 7)
    if v then return v end
  end
  return nil
end

return _M
