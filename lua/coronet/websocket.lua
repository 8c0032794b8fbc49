-- coronet.websocket: RFC 6455 over coronet's connections. upgrade() turns
-- an HTTP request of coronet.http into a WebSocket, dial() opens one to a
-- server. Frames are taken from the read chain and checked in C
-- (host/cn_ws.c: masking, lengths, control frames, UTF-8 across
-- fragments, close codes); here live reassembly, pings, the close
-- handshake and the idle deadline. A ws is also a Reader and Writer of
-- whole messages, so io.copy works on it.
local C = require "coronet.c.ws"
local http = require "coronet.http"
local coronet = require "coronet"
local setmetatable, type, error, tostring, pairs, ipairs = setmetatable,
  type, error, tostring, pairs, ipairs
local find, sub, lower, format, char = string.find, string.sub,
  string.lower, string.format, string.char
local concat, floor = table.concat, math.floor
local now, argcheck = coronet.now, coronet.argcheck
local frame, head, utf8 = C.frame, C.head, C.utf8

local _M = { _VERSION = "0.1.0" }

-- valid_utf8(s) -> whether s is valid UTF-8 (what a text message must be)
_M.valid_utf8 = utf8

local TEXT, BINARY, CLOSE, PING, PONG = 1, 2, 8, 9, 10
local KIND = { [TEXT] = "text", [BINARY] = "binary" }

-- Options; false marks one without a default (any type).
local DEFAULTS = {
  max_message = 1048576, -- bytes of a message, fragments reassembled (1009)
  timeout = 60,          -- seconds of silence before the socket is closed;
                         -- a ping goes out at half of it (0: never)
  close_wait = 2,        -- seconds to wait for the peer's close frame
  protocols = false,     -- subprotocols, a list of strings
  headers = false,       -- dial: more handshake fields, {name = value}
  origin = false,        -- dial: the Origin field
  handshake_timeout = 10, -- dial: seconds for the connect and handshake
  tls = false,           -- dial wss://: {ca =, verify =, sni =} as net.dial
}
_M.defaults = DEFAULTS

local read_frame = http.blocking(C.read_frame, "ws:recv")

local WS = {}
WS.__index = WS

local function new_ws(conn, client, o)
  return setmetatable({ conn = conn, client = client, o = o,
    R = C.reader(client, o.max_message) }, WS)
end

-- ws:set_writer(fn) -> ws: every frame the socket sends (messages, pongs,
-- close) goes through fn(bytes) -> ok, err instead of conn:write, e.g.
-- group:send_to when the connection is in a coronet.group, so that a
-- frame never lands inside another writer's.
function WS:set_writer(fn)
  self.writer = fn
  return self
end

-- out sends one whole frame.
local function out(self, bytes)
  local w = self.writer
  if w then return w(bytes) end
  return self.conn:write(bytes)
end

-- control sends a control frame (masked from a client).
local function control(self, op, payload)
  return out(self, frame(op, payload, true, self.client))
end

local function close_payload(code, reason)
  if not code then return "" end
  return char(floor(code / 256), code % 256) .. (reason or "")
end

-- finish ends the socket once: the close frame goes out (unless one did),
-- the connection closes.
local function finish(self, code, reason)
  if not self.close_sent then
    self.close_sent = true
    control(self, CLOSE, close_payload(code, reason))
  end
  self.done = true
  self.conn:close()
end

-- ws:recv([timeout]) -> data, "text"|"binary" | nil, err | nil, "closed",
-- code, reason
-- The next whole message. Pings are answered, pongs dropped; a close
-- frame is answered and ends the socket. Broken rules end it too, with
-- their close code: "protocol error" (1002), "message too big" (1009),
-- "invalid utf-8" (1007). Silence for opts.timeout closes it ("timeout");
-- timeout (seconds) here bounds this call only ("timeout", the socket
-- stays). After the peer's close frame, ws.peer_closed is true.
function WS:recv(timeout)
  if self.done then
    return nil, "closed", self.close_code, self.close_reason
  end
  local parts, n = nil, 0
  local idle = self.o.timeout
  local deadline = timeout and now() + timeout
  while true do
    local wait_s = idle and idle > 0 and idle / 2 or nil
    if deadline then
      local left = deadline - now()
      if left <= 0 then return nil, "timeout" end
      if not wait_s or left < wait_s then wait_s = left end
    end
    local op, data, fin, code = read_frame(self.conn, self.R, wait_s)
    if op == nil then
      local err = data
      if err == "timeout" and self.close_sent then -- ws:close's wait ended
        finish(self)
        return nil, "closed", self.close_code, self.close_reason
      elseif err == "timeout" and not (deadline and now() >= deadline) then
        if not self.pinged then
          self.pinged = true
          control(self, PING, "")
        else
          finish(self, 1001, "idle")
          return nil, "timeout"
        end
      elseif err == "timeout" then
        return nil, "timeout"
      elseif fin then -- a broken rule: fin is the close code to send
        finish(self, fin, err)
        return nil, err
      else
        self.done = true
        self.conn:close()
        return nil, err
      end
    else
      self.pinged = false
      if op == PING then
        if not self.close_sent then control(self, PONG, data) end
      elseif op == CLOSE then
        self.peer_closed = true
        self.close_code, self.close_reason = code, data
        finish(self, code, "")
        return nil, "closed", code, data
      elseif op ~= PONG then
        if fin and n == 0 then return data, KIND[op] end
        parts = parts or {}
        n = n + 1
        parts[n] = data
        if fin then return concat(parts, "", 1, n), KIND[op] end
      end
    end
  end
end

-- ws:send(data [, "binary"]) -> #data | nil, err: one message, text
-- (which must be UTF-8) unless "binary".
function WS:send(data, kind)
  argcheck(data, "string", 1, "send")
  if self.close_sent or self.done then return nil, "closed" end
  local op = TEXT
  if kind == "binary" then
    op = BINARY
  elseif kind ~= nil and kind ~= "text" then
    error("bad argument #2 to 'send' (\"text\" or \"binary\" expected, got "
      .. tostring(kind) .. ")", 2)
  elseif not utf8(data) then
    error("bad argument #1 to 'send' (text is not UTF-8; send it as "
      .. "\"binary\")", 2)
  end
  local ok, err
  if self.client then
    ok, err = out(self, frame(op, data, true, true))
  elseif self.writer or #data < 4096 then
    ok, err = out(self, frame(op, data, true, false))
  else
    ok, err = self.conn:write({ head(op, #data), data }) -- no copy
  end
  if not ok then return nil, err end
  return #data
end

-- ws:ping([data]) -> true | nil, err (data at most 125 bytes)
function WS:ping(data)
  data = data or ""
  if type(data) ~= "string" or #data > 125 then
    error("bad argument #1 to 'ping' (string of at most 125 bytes expected)",
      2)
  end
  if self.close_sent or self.done then return nil, "closed" end
  local ok, err = control(self, PING, data)
  if not ok then return nil, err end
  return true
end

-- ws:close([code [, reason]]) -> true
-- Sends a close frame (code 1000 by default) and waits a moment
-- (opts.close_wait) for the peer's, then closes the connection. When
-- another task is in ws:recv, that task sees the answer and ends the
-- socket instead.
function WS:close(code, reason)
  if self.done then return true end
  code = code or 1000
  if type(code) ~= "number" or code < 1000 or code > 4999 then
    error("bad argument #1 to 'close' (close code expected, got "
      .. tostring(code) .. ")", 2)
  end
  reason = reason or ""
  if #reason > 123 then reason = sub(reason, 1, 123) end
  if not self.close_sent then
    self.close_sent = true
    control(self, CLOSE, close_payload(code, reason))
  end
  self.conn:set_read_deadline(now() + self.o.close_wait)
  local op, err = read_frame(self.conn, self.R)
  while op ~= nil and op ~= CLOSE do
    op, err = read_frame(self.conn, self.R)
  end
  if err == "busy reading" then return true end
  self.done = true
  self.conn:close()
  return true
end

-- Reader and Writer of whole messages: ws:read(n) gives the next message
-- (split when longer than n); "eof" once the peer closed normally (1000,
-- 1001 or no code). ws:write(s) sends s as one message, of the kind last
-- read (else ws.kind, "binary" by default). ws:write_to(w) copies message
-- by message, so io.copy(ws, ws) echoes them unchanged.
function WS:read(n)
  local rest = self.rest
  if not rest then
    local msg, kind, code
    repeat
      msg, kind, code = self:recv()
    until not msg or #msg > 0
    if not msg then
      if kind == "closed" and (code == nil or code == 1000 or code == 1001) then
        return nil, "eof"
      end
      return nil, kind
    end
    self.last_kind = kind
    rest = msg
  end
  n = n or #rest
  if #rest > n then
    self.rest = sub(rest, n + 1)
    return sub(rest, 1, n)
  end
  self.rest = nil
  return rest
end

function WS:write(s)
  return self:send(s, self.last_kind or self.kind or "binary")
end

function WS:write_to(w)
  local total = 0
  while true do
    local msg, err = self:read(nil)
    if not msg then
      if err == "eof" then return total end
      return total, err
    end
    local ok, werr = w:write(msg)
    if not ok then return total, werr end
    total = total + #msg
  end
end

-- frame(data [, "binary"]) -> one unmasked frame (a server's) as a string:
-- the same bytes can go to many sockets at once (a coronet.group).
function _M.frame(data, kind)
  return frame(kind == "binary" and BINARY or TEXT, data, true, false)
end

-- -- Handshakes ---------------------------------------------------------------

local function has_token(value, token)
  for item in (lower(value or "")):gmatch("[^,%s]+") do
    if item == token then return true end
  end
  return false
end

local function valid_key(key)
  return key and #key == 24 and find(key, "^[%w+/]+==$") ~= nil
end

-- pick_protocol returns the first of the client's subprotocols that the
-- server offers.
local function pick_protocol(offered, wanted)
  if not offered or not wanted then return nil end
  for p in wanted:gmatch("[^,%s]+") do
    for _, o in ipairs(offered) do
      if o == p then return p end
    end
  end
  return nil
end

local function refuse(res, code, why, extra)
  res:status(code)
  if extra then res:header("Sec-WebSocket-Version", "13") end
  res:header("Content-Type", "text/plain")
  res:finish(why .. "\n")
  return nil, why
end

-- upgrade(req, res [, opts]) -> ws | nil, err
-- Answers a WebSocket handshake (GET, Upgrade: websocket, a
-- Sec-WebSocket-Key, version 13) with 101, after which the request's
-- connection speaks frames; a bad handshake gets 400 (426 for another
-- version). opts: max_message, timeout, close_wait (see DEFAULTS),
-- protocols = {...} (the first the client also lists is chosen; ws.protocol).
function _M.upgrade(req, res, opts)
  local o = http.options(DEFAULTS, opts, "upgrade")
  local h = req.headers
  if req.method ~= "GET" or req.version ~= "1.1" then
    return refuse(res, 400, "websocket: GET over HTTP/1.1 expected")
  end
  if not has_token(h.upgrade, "websocket") or not has_token(h.connection,
      "upgrade") then
    return refuse(res, 400, "websocket: Upgrade: websocket expected")
  end
  if h["sec-websocket-version"] ~= "13" then
    return refuse(res, 426, "websocket: version 13 expected", true)
  end
  local key = h["sec-websocket-key"]
  if not valid_key(key) then
    return refuse(res, 400, "websocket: bad Sec-WebSocket-Key")
  end
  if http.body_left(req) ~= 0 then
    return refuse(res, 400, "websocket: a handshake has no body")
  end
  local proto = pick_protocol(o.protocols, h["sec-websocket-protocol"])
  local conn = req.conn
  local ok, err = conn:write("HTTP/1.1 101 Switching Protocols\r\n"
    .. "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "
    .. C.accept(key) .. "\r\n"
    .. (proto and "Sec-WebSocket-Protocol: " .. proto .. "\r\n" or "")
    .. "\r\n")
  res.sent, res.finished, res.upgraded = true, true, true
  if not ok then return nil, err end
  local ws = new_ws(conn, false, o)
  ws.protocol = proto
  return ws
end

-- dial(url [, opts]) -> ws, response | nil, err
-- Opens a WebSocket to ws://HOST[:PORT]/PATH (wss:// once coronet speaks
-- TLS). opts: the upgrade options, plus headers = {...} for the
-- handshake, protocols = {...} (Sec-WebSocket-Protocol), origin, and
-- handshake_timeout (seconds, default 10).
function _M.dial(url, opts)
  argcheck(url, "string", 1, "dial")
  local o = http.options(DEFAULTS, opts, "dial")
  local scheme, host, port, target = http.parse_url(url)
  if not scheme then return nil, host end
  if scheme ~= "ws" and scheme ~= "wss" then
    return nil, "websocket: ws:// or wss:// expected"
  end
  local timeout = o.handshake_timeout
  local conn, err = http.dial(scheme, host, port, timeout, o.tls or nil)
  if not conn then return nil, err end
  local key = C.key()
  local host_field = find(host, ":", 1, true) and "[" .. host .. "]" or host
  if port ~= (scheme == "wss" and 443 or 80) then
    host_field = host_field .. ":" .. port
  end
  local req = { "GET ", target, " HTTP/1.1\r\nHost: ", host_field,
    "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ",
    key, "\r\nSec-WebSocket-Version: 13\r\n" }
  if o.protocols then
    req[#req + 1] = "Sec-WebSocket-Protocol: " .. concat(o.protocols, ", ")
      .. "\r\n"
  end
  if o.origin then req[#req + 1] = "Origin: " .. o.origin .. "\r\n" end
  for k, v in pairs(o.headers or {}) do
    req[#req + 1] = k .. ": " .. v .. "\r\n"
  end
  req[#req + 1] = "\r\n"
  conn:set_deadline(now() + timeout)
  local r = {}
  local ok
  ok, err = conn:write(req)
  if ok then ok, err = http.read_head(conn, http.client_parser(), r) end
  conn:set_deadline(nil)
  if ok ~= true then
    conn:close()
    return nil, "websocket: " .. (type(ok) == "number" and "bad response"
      or tostring(err))
  end
  local h = r.headers
  if r.status ~= 101 or not has_token(h.upgrade, "websocket")
      or not has_token(h.connection, "upgrade")
      or h["sec-websocket-accept"] ~= C.accept(key) then
    conn:close()
    return nil, format("websocket: handshake refused (%d %s)", r.status,
      r.reason)
  end
  local ws = new_ws(conn, true, o)
  ws.protocol = h["sec-websocket-protocol"]
  return ws, r
end

return _M
