-- coronet.http: HTTP/1.1 over coronet's connections. http.server(handler)
-- is a connection handler that calls handler(req, res) for each request
-- (keep-alive, pipelining, chunked bodies, 100-continue, HEAD); the
-- router routes by method and path and serves files; http.request is the
-- client, with a keep-alive pool per worker. Heads and bodies are parsed
-- in C straight from the connection's read chain (host/cn_http.c),
-- strictly: see the README's "HTTP" section for the rules and limits.
local C = require "coronet.c.http"
local tnew = require "table.new"
local coronet = require "coronet"
local log = require "coronet.log"
local io_ = require "coronet.io"
local fs = require "coronet.fs"
local net = require "coronet.net"
local setmetatable, getmetatable, type, error, tostring, tonumber, pairs,
  ipairs = setmetatable, getmetatable, type, error, tostring, tonumber,
  pairs, ipairs
local find, sub, lower, upper, format, gsub, gmatch, match, char, byte =
  string.find, string.sub, string.lower, string.upper, string.format,
  string.gsub, string.gmatch, string.match, string.char, string.byte
local concat = table.concat
local os_date, floor = os.date, math.floor
local xpcall, traceback = xpcall, debug.traceback
local wait, now = coronet.wait, coronet.now
local body_left = C.body_left

local _M = { _VERSION = "0.1.0" }

local REASON = {
  [100] = "Continue", [101] = "Switching Protocols", [200] = "OK",
  [201] = "Created", [202] = "Accepted", [204] = "No Content",
  [206] = "Partial Content", [301] = "Moved Permanently", [302] = "Found",
  [303] = "See Other", [304] = "Not Modified", [307] = "Temporary Redirect",
  [308] = "Permanent Redirect", [400] = "Bad Request",
  [401] = "Unauthorized", [403] = "Forbidden", [404] = "Not Found",
  [405] = "Method Not Allowed", [408] = "Request Timeout",
  [409] = "Conflict", [411] = "Length Required",
  [413] = "Content Too Large", [414] = "URI Too Long",
  [415] = "Unsupported Media Type", [416] = "Range Not Satisfiable",
  [417] = "Expectation Failed", [426] = "Upgrade Required",
  [429] = "Too Many Requests", [431] = "Request Header Fields Too Large",
  [500] = "Internal Server Error", [501] = "Not Implemented",
  [502] = "Bad Gateway", [503] = "Service Unavailable",
  [504] = "Gateway Timeout", [505] = "HTTP Version Not Supported",
}
_M.reasons = REASON

-- status_line(code) -> "HTTP/1.1 200 OK\r\n", made once per code.
local STATUS_LINE = {}
local function status_line(code, reason)
  if reason then return format("HTTP/1.1 %d %s\r\n", code, reason) end
  local s = STATUS_LINE[code]
  if not s then
    s = format("HTTP/1.1 %d %s\r\n", code, REASON[code] or "Unknown")
    STATUS_LINE[code] = s
  end
  return s
end

-- http_date(t) formats a time (seconds since the epoch) as HTTP wants.
local function http_date(t)
  return os_date("!%a, %d %b %Y %H:%M:%S GMT", t)
end
_M.date = http_date

local MONTH = { Jan = 1, Feb = 2, Mar = 3, Apr = 4, May = 5, Jun = 6,
  Jul = 7, Aug = 8, Sep = 9, Oct = 10, Nov = 11, Dec = 12 }

-- parse_date(s) -> seconds since the epoch of an IMF-fixdate, or nil.
function _M.parse_date(s)
  local d, mon, y, h, mi, sec = match(s or "",
    "^%a%a%a, (%d%d) (%a%a%a) (%d%d%d%d) (%d%d):(%d%d):(%d%d) GMT$")
  local m = MONTH[mon]
  if not m then return nil end
  y, m, d = tonumber(y), m, tonumber(d)
  -- days since the epoch, civil calendar (Howard Hinnant's days_from_civil)
  if m <= 2 then y = y - 1 end
  local era = floor(y / 400)
  local yoe = y - era * 400
  local doy = floor((153 * (m + (m > 2 and -3 or 9)) + 2) / 5) + d - 1
  local doe = yoe * 365 + floor(yoe / 4) - floor(yoe / 100) + doy
  local days = era * 146097 + doe - 719468
  return days * 86400 + tonumber(h) * 3600 + tonumber(mi) * 60 + tonumber(sec)
end

-- The Date field, made once a second. The time comes through the FFI:
-- os.time, a classic C function, would end the request's JIT trace.
local ffi = require "ffi"
pcall(ffi.cdef, [[
double lcn_http_ffi_time(void);
int lcn_http_ffi_wait_head(void *box, void *parser);
]]) -- (again on a reload)
local ffi_time = ffi.C.lcn_http_ffi_time
local ffi_wait_head = ffi.C.lcn_http_ffi_wait_head
local CONN_MT = require "coronet.conn".metatable
local date_sec, date_field = -1, nil
local function date_header()
  local t = ffi_time()
  if t ~= date_sec then
    date_sec, date_field = t, "Date: " .. http_date(t) .. "\r\n"
  end
  return date_field
end

-- blocking(raw, what) -> a function calling raw(...) that, while raw
-- returns false (it parked the task), waits and calls again. For
-- coronet's own modules (http, websocket).
local function blocking(raw, what)
  return function(a, b, c, d)
    local x, y, z, w = raw(a, b, c, d)
    while x == false do
      wait(what)
      x, y, z, w = raw(a, b, c, d)
    end
    return x, y, z, w
  end
end
_M.blocking = blocking

-- The parser's calls, blocking: read_head(conn, P, t [, head_request])
-- (for responses: requests() reads request heads itself),
-- read_body(conn, P, n), discard(conn, P, limit).
local read_head = blocking(C.read_head, "http:read_head")
local read_body = blocking(C.read_body, "http:read_body")
local discard = blocking(C.discard, "http:read_body")

-- is_token says whether s is a token (a field name, a method).
local function is_token(s)
  return type(s) == "string" and find(s, "^[%w!#$%%&'*+%-.^_`|~]+$") ~= nil
end

-- url_decode(s [, plus]) decodes %XX escapes (and "+" as a space with
-- plus), as in query strings.
local function hex_char(h) return char(tonumber(h, 16)) end
local function url_decode(s, plus)
  if plus then s = gsub(s, "+", " ") end
  return (gsub(s, "%%(%x%x)", hex_char))
end
_M.url_decode = url_decode

-- url_encode(s) escapes every byte but unreserved ones as %XX.
local function url_encode(s)
  return (gsub(s, "[^%w%-._~]", function(c)
    return format("%%%02X", byte(c))
  end))
end
_M.url_encode = url_encode

-- -- Requests ---------------------------------------------------------------

local Req = {}
local Body
local headers_of = C.headers

-- req.headers and req.body are made when first read: read_head returns
-- the field lines as one string, req._fields, and a handler that reads
-- neither makes neither table.
function Req.__index(req, k)
  local v = Req[k]
  if v ~= nil then return v end
  if k == "headers" then
    v = headers_of(req._fields)
  elseif k == "body" then
    v = setmetatable({ req = req }, Body)
  else
    return nil
  end
  req[k] = v
  return v
end

-- req:header(name) -> the field's value (repeated ones joined with ", ")
function Req:header(name)
  return self.headers[lower(name)]
end

local MAX_ARGS = 100

-- req:args() -> the query's arguments decoded: {name = value}; a name
-- given more than once has a list of its values, a name without "=" has
-- true. At most 100 arguments.
function Req:args()
  local args, n = {}, 0
  for pair in gmatch(self.query or "", "[^&]+") do
    n = n + 1
    if n > MAX_ARGS then break end
    local k, eq, v = match(pair, "^([^=]*)(=?)(.*)$")
    k = url_decode(k, true)
    v = eq == "" and true or url_decode(v, true)
    local old = args[k]
    if old == nil then
      args[k] = v
    elseif type(old) == "table" then
      old[#old + 1] = v
    else
      args[k] = { old, v }
    end
  end
  return args
end

-- A request's body: a Reader (req.body:read(n)), and req:body([max]) reads
-- all of it into one string.
Body = {}
Body.__index = Body

-- send_continue answers "Expect: 100-continue" before the first body read.
local function send_continue(req)
  req.expect = false
  local res = req.res
  if not res.sent then
    req.conn:write("HTTP/1.1 100 Continue\r\n\r\n")
  end
end

-- body:read([n]) -> 1..n bytes of the body (de-chunked) | nil, "eof" |
-- nil, err: "body too large", "bad chunk", "timeout", "unexpected eof".
function Body:read(n)
  local req = self.req
  if req.expect then send_continue(req) end
  local s, err = read_body(req.conn, req.P, n or 16384)
  if not s and err ~= "eof" then req.body_error = err end
  return s, err
end

-- req:body([max]) -> the whole body as a string | nil, err. max (default
-- the server's max_body) bounds it: past it, nil, "body too large".
Body.__call = function(self, req, max)
  local parts, n, total = {}, 0, 0
  while true do
    local s, err = self:read(16384)
    if not s then
      if err ~= "eof" then return nil, err end
      return concat(parts, "", 1, n)
    end
    total = total + #s
    if max and total > max then
      req.body_error = "body too large"
      return nil, "body too large"
    end
    n = n + 1
    parts[n] = s
  end
end

-- -- Responses ----------------------------------------------------------------

local stopping = false -- shutdown began: responses say Connection: close

local Res = {}
Res.__index = Res

local NO_BODY = { [204] = true, [304] = true }

-- res:status(code [, reason]) -> res: the status to send (default 200).
function Res:status(code, reason)
  if type(code) ~= "number" or code < 100 or code > 999 or code % 1 ~= 0 then
    error("bad argument #1 to 'status' (status code expected, got "
      .. tostring(code) .. ")", 2)
  end
  if self.sent then error("res:status: the head was sent already", 2) end
  self.code, self.reason = code, reason
  return self
end

-- new_head() -> a response head's table: res:header adds fields from its
-- third slot on, head_parts puts the status line and Date in the first
-- two.
local function new_head()
  local h = tnew(8, 0)
  h[1], h[2] = false, false
  return h
end

-- res:header(name, value) -> res: adds a field to the head. Content-Length
-- makes writes plain (else they are chunked); Connection: close ends the
-- connection after this response; Transfer-Encoding is the server's.
local LNAME, nlname = {}, 0 -- field name -> its lower case, once checked
-- LINE[name][value] -> "name: value\r\n" for fields without a meaning to
-- the server, once checked: the lines a server sends again and again
local LINE, nline = {}, 0
local SPECIAL = { ["content-length"] = true, ["transfer-encoding"] = true,
  connection = true, date = true }

function Res:header(name, value)
  local byname = LINE[name]
  local line = byname and byname[value]
  if line then
    if self.sent then error("res:header: the head was sent already", 2) end
  else
    local lname = LNAME[name]
    if not lname then
      if not is_token(name) then
        error("bad argument #1 to 'header' (field name expected, got "
          .. tostring(name) .. ")", 2)
      end
      lname = lower(name)
      if nlname < 256 then -- the names a server uses; not every name seen
        LNAME[name], nlname = lname, nlname + 1
      end
    end
    local tv = type(value)
    if tv == "number" then
      value = format("%d", value)
    elseif tv ~= "string" or find(value, "[%z\r\n]") then
      error("bad argument #2 to 'header' (field value expected, got "
        .. (tv == "string" and "a control character" or tv) .. ")", 2)
    end
    if self.sent then error("res:header: the head was sent already", 2) end
    local special = SPECIAL[lname]
    if special then
      if lname == "content-length" then
        local n = tonumber(value)
        if not n or n < 0 or n % 1 ~= 0 then
          error("bad argument #2 to 'header' (Content-Length must be a count)",
            2)
        end
        self.length = n
        return self -- the server writes it
      elseif lname == "transfer-encoding" then
        error("bad argument #1 to 'header' (Transfer-Encoding is the server's)",
          2)
      elseif lname == "connection" and find(lower(value), "close", 1, true) then
        self.keep = false
        return self
      elseif lname == "date" then
        self.dated = true
      end
    end
    line = name .. ": " .. value .. "\r\n"
    if not special and tv == "string" and #value <= 256
        and nline < 1024 then
      if not byname then
        byname = {}
        LINE[name] = byname
      end
      byname[value], nline = line, nline + 1
    end
  end
  local h = self.hdr
  if not h then
    h = new_head()
    self.hdr = h
  end
  h[#h + 1] = line
  return self
end

-- length_field(n) -> "Content-Length: n\r\n", kept for small n
local LENGTH_FIELD = {}
local function length_field(n)
  local f = LENGTH_FIELD[n]
  if f then return f end
  f = "Content-Length: " .. n .. "\r\n"
  if n <= 1024 then LENGTH_FIELD[n] = f end
  return f
end

-- head_parts(res, length) puts the status line and fields in a table, the
-- one res:header put fields in from its third slot on (or a new one):
-- with length (a number) as Content-Length unless the handler set one;
-- length false means the body follows chunked (HTTP/1.1) or until close.
local function head_parts(self, length)
  local code = self.code
  if stopping then self.keep = false end
  local parts = self.hdr
  local n = 2
  if parts then
    n = #parts
  else
    parts = tnew(8, 0) -- room for the usual head, so it need not grow
  end
  parts[1] = status_line(code, self.reason)
  parts[2] = self.dated and "" or date_header()
  local framing
  if code < 200 or code == 204 then
    framing = nil
  elseif self.length then
    framing = length_field(self.length)
  elseif length then
    framing = code ~= 304 and length_field(length) or nil
  elseif self.req.version == "1.1" then
    self.chunked = not NO_BODY[code]
    framing = self.chunked and "Transfer-Encoding: chunked\r\n" or nil
  else
    self.keep = false -- an HTTP/1.0 body without a length ends at close
  end
  if framing then
    n = n + 1
    parts[n] = framing
  end
  n = n + 1
  if not self.keep then
    parts[n] = "Connection: close\r\n\r\n"
  elseif self.req.version == "1.0" then
    parts[n] = "Connection: keep-alive\r\n\r\n"
  else
    parts[n] = "\r\n"
  end
  self.sent = true
  self.bodiless = self.head_only or NO_BODY[code] or code < 200
  return parts, n
end

local function check_data(data, fname)
  local t = type(data)
  if t == "string" then return data end
  if t == "number" then return tostring(data) end
  error("bad argument #1 to '" .. fname .. "' (string expected, got " .. t
    .. ")", 3)
end

-- res:write(data) -> #data | nil, err: sends data as (part of) the body,
-- after the head on the first call: chunked unless Content-Length was set
-- (HTTP/1.0: until close). Nothing is sent for HEAD, 204 and 304.
function Res:write(data)
  data = check_data(data, "write")
  if self.finished then error("res:write: the response was finished", 2) end
  local parts, n
  if not self.sent then
    parts, n = head_parts(self, false)
  else
    parts, n = {}, 0
  end
  local len = #data
  if len > 0 and not self.bodiless then
    if self.length then
      local sent = (self.written or 0) + len
      if sent > self.length then
        error("res:write: more than the Content-Length of "
          .. self.length .. " bytes", 2)
      end
      self.written = sent
      parts[n + 1] = data
    elseif self.chunked then
      parts[n + 1] = format("%x\r\n", len)
      parts[n + 2] = data
      parts[n + 3] = "\r\n"
    else
      parts[n + 1] = data
    end
  end
  if parts[1] == nil then return len end
  local ok, err = self.conn:write(parts)
  if not ok then return nil, err end
  return len
end

-- res:finish([data]) -> true | nil, err: ends the response, sending data
-- last. Without earlier writes the body is data with its Content-Length.
-- Idempotent.
function Res:finish(data)
  if self.finished then return true end
  data = data == nil and "" or check_data(data, "finish")
  local parts, n, ok, err
  if not self.sent then
    self.finished = true
    parts, n = head_parts(self, #data)
    if not self.bodiless then
      if self.length and #data ~= self.length then
        self.keep = false -- the body does not match its length: end here
        if #data > self.length then data = sub(data, 1, self.length) end
      end
      parts[n + 1] = data
    end
    ok, err = self.conn:write(parts)
  else
    if #data > 0 then
      ok, err = self:write(data)
      if not ok then return nil, err end
    end
    self.finished = true
    if self.chunked and not self.bodiless then
      ok, err = self.conn:write("0\r\n\r\n")
    else
      ok = true
      if self.length and (self.written or 0) < self.length then
        self.keep = false -- short: the client would wait for the rest
      end
    end
  end
  if not ok then return nil, err end
  return true
end

-- res:copy(reader [, n]) -> bytes, err: sends the head (set Content-Length
-- first) and then the body from a Reader, n bytes or to its end; a file
-- goes from the thread pool to the socket without Lua strings.
function Res:copy(r, n)
  if not self.sent then
    local ok, err = self.conn:write((head_parts(self, false)))
    if not ok then return 0, err end
  end
  if self.bodiless then
    self.finished = true
    return 0
  end
  local moved, err
  if n then
    moved, err = io_.copy_n(self.conn, r, n)
  else
    moved, err = io_.copy(self.conn, r)
  end
  self.written = (self.written or 0) + moved
  if err or (self.length and self.written < self.length) then
    self.keep = false -- the body came out short: end the connection
  end
  return moved, err
end

-- -- The server ---------------------------------------------------------------

local DEFAULTS = {
  max_target = 8192,        -- request-target bytes (414)
  max_head = 16384,         -- head bytes, at most 16 KiB (431)
  max_fields = 100,         -- header fields (431)
  max_body = 1048576,       -- body bytes a handler may read (413)
  discard = 65536,          -- unread body bytes dropped to keep the conn
  idle = 60,                -- seconds a kept-alive connection may wait
  header_timeout = 20,      -- seconds from a head's first byte to its end
  body_timeout = 60,        -- seconds from the first body read to its end
  write_timeout = 60,       -- seconds a write may wait for the client
  linger = 2,               -- seconds to drain input after a refusal
}
_M.defaults = DEFAULTS

-- options(defaults, opts, fname) -> defaults overridden by opts, which
-- must name only options in defaults, each of the same type (numbers
-- >= 0). For coronet's own modules (http, websocket).
local function options(defaults, opts, fname)
  if opts ~= nil and type(opts) ~= "table" then
    error("bad argument #2 to '" .. fname .. "' (table expected, got "
      .. type(opts) .. ")", 3)
  end
  local o = {}
  for k, v in pairs(defaults) do o[k] = v end
  for k, v in pairs(opts or {}) do
    local want = defaults[k] == false and type(v) or type(defaults[k])
    if defaults[k] == nil or type(v) ~= want
        or (want == "number" and v < 0) then
      error("bad argument #2 to '" .. fname .. "' (" .. tostring(k) .. ": "
        .. (defaults[k] == nil and "unknown option" or want .. " expected")
        .. ")", 3)
    end
    o[k] = v
  end
  return o
end
_M.options = options

-- linger ends a connection the server refuses: the response leaves, the
-- write side closes, and what the client still sends is read and dropped
-- for a moment, so that closing does not reset the response away.
local function linger(conn, o)
  if not conn:close_write() then return end
  conn:set_read_deadline(now() + o.linger)
  while conn:read(65536) do end
end

-- refuse answers a request the server will not serve, and closes.
local function refuse(conn, code, o)
  local reason = REASON[code] or "Error"
  conn:write({ status_line(code), date_header(),
    "Content-Type: text/plain\r\nContent-Length: ", tostring(#reason + 1),
    "\r\nConnection: close\r\n\r\n", reason, "\n" })
  linger(conn, o)
end

-- BODY_STATUS: what a failed body read becomes when the handler answered
-- nothing.
local BODY_STATUS = { ["body too large"] = 413, ["bad chunk"] = 400,
  ["trailers too large"] = 431, timeout = 408 }

-- failed logs a handler error with the request line, and answers 500 when
-- nothing was sent.
local function failed(req, res, e)
  log.error("http: %s %s: %s", req.method, req.target, e)
  res.keep = false
  if res.sent then
    res.finished = true -- unfinished on purpose: the client sees it cut
  else
    res.code, res.reason, res.hdr, res.length, res.dated = 500, nil, nil,
      nil, nil
    res:finish("Internal Server Error\n")
  end
end

-- finish_request completes what the handler left: the response, and the
-- body it did not read (dropped up to o.discard bytes, else the
-- connection ends). Returns whether the connection carries on.
local function finish_request(req, res, P, o, has_body)
  if not res.finished then
    if not res.sent and req.body_error then
      res.code = BODY_STATUS[req.body_error] or 400
      res.keep = false
    end
    if not res:finish() then return false end
  end
  if not res.keep or req.body_error then return false end
  if not has_body or body_left(P) == 0 then return true end
  if req.expect then return false end -- the client waits for a 100 or a close
  return discard(req.conn, P, o.discard) == true
end

-- Shutdown: connections waiting for their next request are closed when
-- it begins, and responses then say "Connection: close". waiting: each
-- served connection -> its state (st.idle while it waits for a head);
-- weak both ways: a state holds its request, which holds the connection.
local waiting = setmetatable({}, { __mode = "kv" })
local watching = false

local function watch_stop()
  if watching or not coronet.stopping then return end
  watching = true
  coronet.spawn(function()
    coronet.stopping():recv()
    stopping = true
    for conn, st in pairs(waiting) do
      if st.idle then conn:close() end
    end
  end)
end

-- carry_on says whether the connection serves another request after the
-- handler of req returned (or failed): the response was finished, the
-- body it left unread dropped; an upgraded connection is the handler's.
local function carry_on(conn, req, res, P, o, has_body)
  if res.upgraded then return false end
  if finish_request(req, res, P, o, has_body) then return true end
  -- unread input would reset the response away: let it arrive first
  if body_left(P) ~= 0 or conn:buffered() > 0 then linger(conn, o) end
  return false
end

-- request serves one request, whose head read_head returned: it calls
-- the handler, then says whether the connection carries on, and if so,
-- whether it parked for the next head (1; -1: the time ran out): with
-- nothing buffered, read_head's first call would only park, a classic C
-- call where this compiled FFI call does it. A function of its own, so
-- that a JIT trace begins here, right after the wait for the head,
-- rather than in the interpreter.
local function request(conn, handler, o, P, st, keep, expect, has_body,
    method, target, path, query, version, fields)
  -- the head's table (see res:header) is the connection's, emptied: the
  -- last response's head was written (copied) before its request ended
  local hdr = st.hdr
  for i = #hdr, 3, -1 do hdr[i] = nil end
  -- all the fields, so that setting them does not resize the tables (a
  -- constructor is faster than table.new and stores)
  local req = setmetatable({ conn = conn, P = P, _fields = fields,
    method = method, target = target, path = path, query = query,
    version = version, res = false, expect = expect }, Req)
  local res = setmetatable({ conn = conn, req = req, code = 200,
    keep = keep and not stopping, head_only = method == "HEAD",
    hdr = hdr, length = false, dated = false, sent = false,
    finished = false, bodiless = false }, Res)
  req.res = res
  st.req, st.has_body = req, has_body
  handler(req, res)
  st.req = false
  if not carry_on(conn, req, res, P, o, has_body) then return false end
  if stopping or getmetatable(conn) ~= CONN_MT then return true, 0 end
  return true, ffi_wait_head(conn, P)
end

-- requests serves conn's requests until it ends, or until a handler
-- raises: the error then goes to serve's xpcall, st.req naming the
-- request. One protected call spans many requests, so that the handler's
-- JIT trace returns into a Lua frame (it may) rather than into xpcall's
-- (it may not: "NYI: return to lower frame"), and the request path stays
-- compiled.
local function requests(conn, handler, o, P, st)
  local raw_head = C.read_head
  local parked = 0
  while not stopping do
    st.idle = true
    if parked == -1 then return end -- as read_head's nil, "timeout"
    local ok, keep, expect, has_body, method, target, path, query, version,
      fields = false
    if parked == 0 then
      ok, keep, expect, has_body, method, target, path, query, version,
        fields = raw_head(conn, P)
    end
    while ok == false do
      wait("http:read_head")
      ok, keep, expect, has_body, method, target, path, query, version,
        fields = raw_head(conn, P)
    end
    st.idle = false
    if ok ~= true then
      if type(ok) == "number" then return refuse(conn, ok, o) end
      if keep == "timeout" and expect then return refuse(conn, 408, o) end
      return
    end
    local more
    more, parked = request(conn, handler, o, P, st, keep, expect, has_body,
      method, target, path, query, version, fields)
    if not more then return end
  end
end

local function serve(conn, handler, o)
  local P = C.parser(o)
  conn:set_timeout(nil, o.write_timeout)
  local st = { req = false, has_body = false, idle = false,
    hdr = new_head() }
  waiting[conn] = st
  while true do
    local ok, e = xpcall(requests, traceback, conn, handler, o, P, st)
    if ok then return end
    local req = st.req
    if not req then error(e, 0) end -- not a handler's: it ends the task
    st.req = false
    failed(req, req.res, e)
    if not carry_on(conn, req, req.res, P, o, st.has_body) then return end
  end
end

-- server(handler [, opts]) -> a connection handler serving HTTP/1.1 that
-- calls handler(req, res) for each request. handler is a function or a
-- callable table (a router). opts: see DEFAULTS above. At shutdown
-- (SIGINT, SIGTERM) kept-alive connections waiting for a request close,
-- and requests in progress finish with "Connection: close".
function _M.server(handler, opts)
  local th = type(handler)
  local mt = getmetatable(handler)
  if th ~= "function" and not (mt and mt.__call) then
    error("bad argument #1 to 'server' (function expected, got " .. th
      .. ")", 2)
  end
  local o = options(DEFAULTS, opts, "server")
  if o.max_head > 16384 then
    error("bad argument #2 to 'server' (max_head is at most 16384)", 2)
  end
  watch_stop()
  return function(conn)
    return serve(conn, handler, o)
  end
end

-- -- The router ---------------------------------------------------------------

local Router = {}
Router.__index = Router

-- router() -> a router: a handler for http.server that picks a route by
-- method and path.
function _M.router()
  return setmetatable({ routes = {} }, Router)
end

-- compile turns "/users/:id/*" into a Lua pattern and the capture names.
local function compile(pattern)
  if type(pattern) ~= "string" or sub(pattern, 1, 1) ~= "/" then
    error("bad argument #2 to 'route' (pattern starting with / expected, "
      .. "got " .. tostring(pattern) .. ")", 3)
  end
  local names = {}
  local star = sub(pattern, -1) == "*"
  local pat = gsub(star and sub(pattern, 1, -2) or pattern,
    "[%^%$%(%)%%%.%[%]%*%+%-%?]", "%%%0")
  pat = gsub(pat, ":([%w_]+)", function(name)
    names[#names + 1] = name
    return "([^/]+)"
  end)
  if star then
    names[#names + 1] = "*"
    pat = pat .. "(.*)"
  end
  return "^" .. pat .. "$", names
end

-- r:route(method, pattern, fn) -> r: fn(req, res) serves method (or "*":
-- any) on paths that match pattern: ":name" matches one segment into
-- req.params.name, a trailing "*" the rest of the path into
-- req.params["*"]. Routes are tried in the order they were added.
function Router:route(method, pattern, fn)
  if not is_token(method) and method ~= "*" then
    error("bad argument #1 to 'route' (method expected, got "
      .. tostring(method) .. ")", 2)
  end
  if type(fn) ~= "function" then
    error("bad argument #3 to 'route' (function expected, got " .. type(fn)
      .. ")", 2)
  end
  local pat, names = compile(pattern)
  local routes = self.routes
  routes[#routes + 1] = { method = upper(method), pat = pat, names = names,
    fn = fn }
  return self
end

for _, m in ipairs { "get", "post", "put", "delete", "patch" } do
  local M = upper(m)
  Router[m] = function(self, pattern, fn) return self:route(M, pattern, fn) end
end

local function plain(res, code, extra)
  res:status(code)
  if extra then
    for k, v in pairs(extra) do res:header(k, v) end
  end
  res:header("Content-Type", "text/plain")
  return res:finish(REASON[code] .. "\n")
end
_M.plain = plain

-- The router is a handler: router(req, res).
Router.__call = function(self, req, res)
  local path, method, allowed = req.path, req.method, nil
  local routes = self.routes
  for i = 1, #routes do
    local r = routes[i]
    local caps = { match(path, r.pat) }
    if caps[1] ~= nil then
      local m = r.method
      if m == method or m == "*" or (method == "HEAD" and m == "GET") then
        local params = {}
        for j, name in ipairs(r.names) do params[name] = caps[j] end
        req.params = params
        return r.fn(req, res)
      end
      allowed = allowed or {}
      allowed[m] = true
      if m == "GET" then allowed.HEAD = true end
    end
  end
  if not allowed then return plain(res, 404) end
  local list = {}
  for m in pairs(allowed) do list[#list + 1] = m end
  table.sort(list)
  return plain(res, 405, { Allow = concat(list, ", ") })
end

-- -- Static files -------------------------------------------------------------

local MIME = {
  html = "text/html; charset=utf-8", htm = "text/html; charset=utf-8",
  css = "text/css; charset=utf-8", js = "text/javascript; charset=utf-8",
  mjs = "text/javascript; charset=utf-8", json = "application/json",
  txt = "text/plain; charset=utf-8", md = "text/markdown; charset=utf-8",
  xml = "application/xml", svg = "image/svg+xml", png = "image/png",
  jpg = "image/jpeg", jpeg = "image/jpeg", gif = "image/gif",
  webp = "image/webp", ico = "image/x-icon", wasm = "application/wasm",
  pdf = "application/pdf", zip = "application/zip",
  gz = "application/gzip", mp4 = "video/mp4", webm = "video/webm",
  mp3 = "audio/mpeg", ogg = "audio/ogg", woff = "font/woff",
  woff2 = "font/woff2", lua = "text/plain; charset=utf-8",
}
_M.mime = MIME

local function content_type(path)
  local ext = match(path, "%.([%w]+)$")
  return ext and MIME[lower(ext)] or "application/octet-stream"
end

-- byte_range reads "bytes=a-b" (one range) against size: the first byte
-- and the count; false when unsatisfiable; nil to ignore the header.
local function byte_range(spec, size)
  local a, b = match(spec, "^bytes=%s*(%d*)%-(%d*)%s*$")
  if not a or (a == "" and b == "") then return nil end
  if a == "" then -- the last b bytes
    local n = tonumber(b)
    if n == 0 then return false end
    if n > size then n = size end
    return size - n, n
  end
  local first = tonumber(a)
  local last = b == "" and size - 1 or tonumber(b)
  if first >= size or last < first then return false end
  if last >= size then last = size - 1 end
  return first, last - first + 1
end

-- safe_rel says whether a decoded path below the static prefix stays
-- below it: no "." or ".." segment, no backslash.
local function safe_rel(rel)
  if find(rel, "\\", 1, true) then return false end
  for seg in gmatch(rel, "[^/]+") do
    if seg == ".." or seg == "." then return false end
  end
  return true
end

local function open_error(res, err)
  if find(err, "too many open files", 1, true) then
    return plain(res, 503, { ["Retry-After"] = "1" })
  end
  if find(err, "no such file", 1, true) or find(err, "not a directory", 1, true)
    or find(err, "permission denied", 1, true)
    or find(err, "inappropriate file type", 1, true)
    or find(err, "too many symbolic links", 1, true)
    or find(err, "name too long", 1, true) then
    return plain(res, 404)
  end
  log.warn("http: static: %s", err)
  return plain(res, 500)
end

-- serve_file answers req with the file rel under root.
local function serve_file(req, res, root, rel, index)
  if not safe_rel(rel) then return plain(res, 404) end
  if rel == "" or sub(rel, -1) == "/" then rel = rel .. index end
  local f, err = fs.open_under(root .. "/" .. rel, root)
  if not f then return open_error(res, err) end
  local st = f:stat()
  local size, mtime = st and st.size, st and floor(st.mtime or 0)
  if not st then
    f:close()
    return plain(res, 500)
  end
  local lm = http_date(mtime)
  res:header("Last-Modified", lm)
  res:header("Accept-Ranges", "bytes")
  local ims = _M.parse_date(req.headers["if-modified-since"])
  if ims and mtime <= ims then
    f:close()
    res:status(304)
    return res:finish()
  end
  res:header("Content-Type", content_type(rel))
  local first, n = 0, size
  local range = req.headers.range
  local if_range = req.headers["if-range"]
  if range and (not if_range or if_range == lm) then
    local a, k = byte_range(range, size)
    if a == false then
      f:close()
      res:status(416):header("Content-Range", "bytes */" .. size)
      return res:finish()
    end
    if a then
      first, n = a, k
      res:status(206):header("Content-Range",
        format("bytes %d-%d/%d", a, a + k - 1, size))
    end
  end
  res:header("Content-Length", n)
  if first > 0 then f:seek("set", first) end
  local _, cerr
  if n == size then
    _, cerr = res:copy(f)
  else
    _, cerr = res:copy(f, n)
  end
  f:close()
  res.finished = true
  if cerr then res.keep = false end
end

-- r:static(prefix, dir [, opts]) -> r: GET and HEAD under prefix serve
-- the regular files under dir (opts.index, default "index.html", for a
-- directory's path): Content-Type by extension, Last-Modified and
-- If-Modified-Since, one Range. Nothing outside dir is served: not through
-- "..", encoded dots or symlinks; a FIFO or device is a 404 and never
-- blocks; running out of file descriptors is a 503.
function Router:static(prefix, dir, opts)
  if type(dir) ~= "string" then
    error("bad argument #2 to 'static' (string expected, got " .. type(dir)
      .. ")", 2)
  end
  if type(prefix) ~= "string" or sub(prefix, 1, 1) ~= "/" then
    error("bad argument #1 to 'static' (path prefix expected, got "
      .. tostring(prefix) .. ")", 2)
  end
  local index = opts and opts.index or "index.html"
  if sub(prefix, -1) ~= "/" then prefix = prefix .. "/" end
  return self:route("GET", prefix .. "*", function(req, res)
    return serve_file(req, res, dir, req.params["*"], index)
  end)
end

-- -- The client -------------------------------------------------------------

-- The client's keep-alive pool: idle connections kept per host, and how
-- long one may wait (seconds) before it is closed instead of reused.
local POOL = { per_host = 16, idle = 30 }
_M.pool = POOL

-- The keep-alive pool of this worker: "scheme://host:port" -> list of
-- {conn=, P=, since=}.
local pool = {}

local function pool_take(key)
  local list = pool[key]
  while list and #list > 0 do
    local e = list[#list]
    list[#list] = nil
    if now() - e.since < POOL.idle and e.conn:buffered() == 0 then
      return e
    end
    e.conn:close()
  end
  return nil
end

local function pool_put(key, e)
  local list = pool[key]
  if not list then
    list = {}
    pool[key] = list
  end
  if #list >= POOL.per_host then
    e.conn:close()
    return
  end
  e.since = now()
  list[#list + 1] = e
end

-- close_idle() closes every idle pooled connection of this worker.
function _M.close_idle()
  for k, list in pairs(pool) do
    for i = 1, #list do list[i].conn:close() end
    pool[k] = nil
  end
end

-- pool_size([key]) -> the count of idle pooled connections (for tests).
function _M.pool_size(key)
  local n = 0
  for k, list in pairs(pool) do
    if not key or k == key then n = n + #list end
  end
  return n
end

local DEFAULT_PORT = { http = 80, ws = 80, https = 443, wss = 443 }

-- parse_url(url) -> scheme, host, port, target | nil, err
local function parse_url(url)
  local scheme, rest = match(url, "^(%a[%w+.-]*)://(.*)$")
  if not scheme then return nil, "bad url " .. url end
  scheme = lower(scheme)
  local authority, target = match(rest, "^([^/?#]*)(.*)$")
  target = gsub(target, "#.*$", "")
  if target == "" then target = "/" end
  if sub(target, 1, 1) == "?" then target = "/" .. target end
  local host, port = match(authority, "^%[([^%]]+)%]:?(%d*)$")
  if not host then host, port = match(authority, "^([^:]+):?(%d*)$") end
  if not host or host == "" then return nil, "bad url " .. url end
  return scheme, host, tonumber(port) or DEFAULT_PORT[scheme] or 80, target
end
_M.parse_url = parse_url

-- dial opens a connection for scheme: plain TCP for http and ws, TLS
-- (tls://) for https and wss, offering ALPN http/1.1 and checking the
-- server's certificate for host; tls = {ca =, verify =, sni =} as
-- net.dial takes them (nil: the system's CA store).
local function dial(scheme, host, port, timeout, tls)
  local addr = (find(host, ":", 1, true) and "[" .. host .. "]" or host)
    .. ":" .. port
  local opts = { timeout = timeout, sni = host }
  if scheme == "https" or scheme == "wss" then
    addr = "tls://" .. addr
    opts.alpn = "http/1.1"
    if tls then
      opts.ca, opts.verify, opts.sni = tls.ca, tls.verify, tls.sni or host
    end
  elseif scheme ~= "http" and scheme ~= "ws" then
    return nil, "unsupported scheme " .. scheme
  end
  return net.dial(addr, opts)
end
_M.dial = dial

local CLIENT_PARSER = { response = true, max_head = 16384, max_fields = 200,
  max_body = 2 ^ 52 }

local Resp = {}
Resp.__index = Resp

-- res:read_all() -> the whole body | nil, err
function Resp:read_all()
  return io_.read_all(self.body)
end

-- The response body Reader: when it ends the connection goes back to the
-- pool.
local RBody = {}
RBody.__index = RBody

function RBody:read(n)
  local e = self.e
  if not e then return nil, self.err or "eof" end
  local s, err = read_body(e.conn, e.P, n or 16384)
  if s then return s end
  self.e = nil
  if err == "eof" and self.keep then
    pool_put(self.key, e)
  else
    e.conn:close()
  end
  self.err = err
  return nil, err
end

-- close() drops the rest of the body (and the connection).
function RBody:close()
  if self.e then
    self.e.conn:close()
    self.e = nil
  end
  return true
end

local function header_lines(headers, skip)
  local out = {}
  for k, v in pairs(headers or {}) do
    if not skip[lower(k)] then
      if not is_token(k) or find(tostring(v), "[%z\r\n]") then
        error("bad header " .. tostring(k), 4)
      end
      out[#out + 1] = k .. ": " .. tostring(v) .. "\r\n"
    end
  end
  return out
end

local IDEMPOTENT = { GET = true, HEAD = true, PUT = true, DELETE = true,
  OPTIONS = true }

-- Fields the client writes itself (a Host given in headers replaces its
-- own).
local MANAGED = { host = true, ["content-length"] = true,
  ["transfer-encoding"] = true }

-- send_request writes the request head and body (a string, or a Reader
-- sent chunked) on e.conn.
local function send_request(e, method, host_field, target, o)
  local body = o.body
  for k, v in pairs(o.headers or {}) do
    if lower(k) == "host" then host_field = v end -- the caller's choice
  end
  local head = { method, " ", target, " HTTP/1.1\r\nHost: ", host_field,
    "\r\n" }
  for _, l in ipairs(header_lines(o.headers, MANAGED)) do
    head[#head + 1] = l
  end
  local tb = type(body)
  if tb == "string" then
    head[#head + 1] = "Content-Length: " .. #body .. "\r\n\r\n"
    head[#head + 1] = body
    return e.conn:write(head)
  elseif body == nil then
    if method == "POST" or method == "PUT" or method == "PATCH" then
      head[#head + 1] = "Content-Length: 0\r\n"
    end
    head[#head + 1] = "\r\n"
    return e.conn:write(head)
  end
  head[#head + 1] = "Transfer-Encoding: chunked\r\n\r\n"
  local ok, err = e.conn:write(head)
  while ok do
    local s, rerr = body:read(16384)
    if s and #s > 0 then
      ok, err = e.conn:write({ format("%x\r\n", #s), s, "\r\n" })
    elseif rerr then
      if rerr ~= "eof" then return nil, rerr end
      return e.conn:write("0\r\n\r\n")
    end
  end
  return ok, err
end

-- exchange sends one request and reads the response head (skipping 1xx
-- but 101). Returns the response table, keep_alive | nil, err, fresh
-- (whether the connection was new, for retries).
local function exchange(e, method, host_field, target, o, deadline)
  e.conn:set_deadline(deadline)
  local ok, err = send_request(e, method, host_field, target, o)
  if not ok then return nil, err end
  while true do
    local r = {}
    local got, keep, x = read_head(e.conn, e.P, r, method == "HEAD")
    if got ~= true then
      if type(got) == "number" then return nil, "bad response" end
      return nil, keep, x
    end
    if r.status >= 200 or r.status == 101 then return r, keep end
  end
end

-- request{method=, url=, headers=, body=, timeout=, redirects=, tls=} ->
-- res | nil, err
-- res has status, reason, version, headers (lower-case names), body (a
-- Reader; read it to its end, or close it, to free the connection) and
-- res:read_all(). body is a string or a Reader (sent chunked); timeout
-- (default 30 s) bounds the whole exchange up to the response head, and
-- then each body read. redirects (default 0) is how many 3xx Location
-- answers to follow for GET and HEAD. An https:// url checks the server's
-- certificate against the system's CA store and the host name; tls =
-- {ca = FILE or PEM text, verify = false, sni = NAME} changes that (as
-- for net.dial).
function _M.request(o)
  if type(o) ~= "table" then
    error("bad argument #1 to 'request' (table expected, got " .. type(o)
      .. ")", 2)
  end
  if type(o.url) ~= "string" then
    error("bad argument #1 to 'request' (url expected, got "
      .. type(o.url) .. ")", 2)
  end
  local method = upper(o.method or "GET")
  if not is_token(method) then
    error("bad argument #1 to 'request' (bad method " .. method .. ")", 2)
  end
  local url, redirects = o.url, o.redirects or 0
  local timeout = o.timeout or 30
  while true do
    local scheme, host, port, target = parse_url(url)
    if not scheme then return nil, host end
    local key = scheme .. "://" .. host .. ":" .. port
    local tls = o.tls
    if tls and scheme == "https" then -- a connection checked otherwise
      key = key .. " " .. tostring(tls.ca) .. "\0" -- is not reused
        .. tostring(tls.verify ~= false) .. "\0" .. tostring(tls.sni)
    end
    local host_field = find(host, ":", 1, true) and "[" .. host .. "]" or host
    if port ~= DEFAULT_PORT[scheme] then
      host_field = host_field .. ":" .. port
    end
    local deadline = now() + timeout
    local e = pool_take(key)
    local r, keep, partial
    if e then
      r, keep, partial = exchange(e, method, host_field, target, o, deadline)
      local retry = not r and not partial and keep ~= "timeout"
        and IDEMPOTENT[method] and (o.body == nil or type(o.body) == "string")
      if not r then e.conn:close() end
      if retry then e = nil end
      if not r and not retry then return nil, keep end
    end
    if not e then
      local conn, err = dial(scheme, host, port, timeout, o.tls)
      if not conn then return nil, err end
      e = { conn = conn, P = C.parser(CLIENT_PARSER) }
      r, keep = exchange(e, method, host_field, target, o, deadline)
      if not r then
        conn:close()
        return nil, keep
      end
    end
    e.conn:set_deadline(nil)
    e.conn:set_timeout(timeout)
    local location = r.headers.location
    if redirects > 0 and location and (r.status == 301 or r.status == 302
        or r.status == 303 or r.status == 307 or r.status == 308)
        and (method == "GET" or method == "HEAD") then
      redirects = redirects - 1
      discard(e.conn, e.P, 1048576)
      if keep then pool_put(key, e) else e.conn:close() end
      if not match(location, "^%a[%w+.-]*://") then
        if sub(location, 1, 1) ~= "/" then location = "/" .. location end
        location = scheme .. "://" .. host_field .. location
      end
      url = location
    else
      r.body = setmetatable({ e = e, keep = keep, key = key }, RBody)
      if r.status == 101 then r.conn = e.conn end
      if body_left(e.P) == 0 and r.status ~= 101 then r.body:read(1) end
      return setmetatable(r, Resp)
    end
  end
end

-- body_left(req) -> bytes of req's body not read yet (-1: unknown,
-- chunked; 0: none left).
function _M.body_left(req) return body_left(req.P) end

-- client_parser() -> a parser for responses, for coronet.websocket.
function _M.client_parser() return C.parser(CLIENT_PARSER) end
_M.read_head = read_head

return _M
