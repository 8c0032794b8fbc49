-- coronet.redis: a Redis client, blocking-style like all coronet I/O:
-- commands (r:call, and a method for every command), pipelines, pub/sub,
-- RESP2 and RESP3, and a keep-alive pool per worker. Commands are encoded
-- into the connection's write chain and replies parsed from its read
-- chain in C (host/cn_resp.c, host/lcn_redis.c).
--
-- Telling results apart (see README "Redis"):
--   value          a reply: string, number, boolean, table
--   nil            Redis's null (GET of a missing key)
--   nil, msg       an error reply, msg as the server wrote it: it starts
--                  with an upper-case code ("ERR ...", "WRONGTYPE ...")
--   nil, err       the connection failed: a lower-case coronet error
--                  ("timeout", "eof", "closed", "redis: protocol error:
--                  ..."); the connection is then closed
-- Inside tables (array elements, pipeline results) a null is redis.null
-- and an error reply is an error object: redis.is_error(v) -> its message.
local C = require "coronet.c.redis"
local coronet = require "coronet"
local net = require "coronet.net"
local type, error, select, tostring = type, error, select, tostring
local pairs, ipairs = pairs, ipairs
local setmetatable, getmetatable, pcall = setmetatable, getmetatable, pcall
local remove, concat = table.remove, table.concat
local wait, now, argcheck = coronet.wait, coronet.now, coronet.argcheck
local send, read, idle, new_parser = C.send, C.read, C.idle, C.new

local _M = { _VERSION = "0.1.0" }

-- null stands for Redis's null where Lua's nil cannot: inside tables.
local null = setmetatable(C.null, {
  __tostring = function() return "redis.null" end,
  __newindex = function() error("redis.null is read-only", 2) end,
})
_M.null = null

local error_mt = C.error_mt
error_mt.__tostring = function(e) return e.err end

-- is_error(v) -> the message of an error reply found inside a table (a
-- pipeline's results, an EXEC's), else false.
function _M.is_error(v)
  return type(v) == "table" and getmetatable(v) == error_mt and v.err
end

-- A table whose missing string keys become methods that run the command
-- of that name through self:call: r:get(k), p:hset(k, f, v), ...
local function with_commands(methods)
  return setmetatable(methods, { __index = function(t, name)
    if type(name) ~= "string" then return nil end
    local f = function(self, ...) return self:call(name, ...) end
    t[name] = f
    return f
  end })
end

local Redis = with_commands {}
local redis_mt = { __index = Redis, __tostring = function(r)
  return "coronet.redis " .. (r.conn and tostring(r.conn) or "(closed)")
end }

local function wrap(conn, p, key, timeout, resp)
  return setmetatable({ conn = conn, p = p, key = key, timeout = timeout,
    resp = resp, out = {}, pushq = {}, busy = false, nsub = 0,
    channels = {}, patterns = {} }, redis_mt)
end

-- -- Replies ---------------------------------------------------------------

-- read_n reads n replies into out (pushes into pushq, when given).
local function read_n(r, out, n, pushq)
  local p, conn = r.p, r.conn
  r.busy = true
  local i, err = read(p, conn, out, 1, n, pushq)
  while i == false do
    wait("redis")
    i, err = read(p, conn, out, err, n, pushq)
  end
  r.busy = false
  if i then return true end
  return nil, err
end

-- broken closes r after its connection failed with err; returns nil, err.
local function broken(r, err)
  r:close()
  return nil, err
end

-- one reads the next reply (or push, without pushq) as call returns it.
local function one(r, pushq)
  local out = r.out
  local ok, err = read_n(r, out, 1, pushq)
  if not ok then return broken(r, err) end
  local v = out[1]
  out[1] = nil
  if v == null then return nil end
  if type(v) == "table" and getmetatable(v) == error_mt then
    return nil, v.err
  end
  return v
end

-- usable returns r's connection if a command may be sent on it now, else
-- nil and why.
local function usable(r)
  local conn = r.conn
  if not conn then return nil, "closed" end
  if r.busy then return nil, "busy" end
  if r.nsub > 0 and r.resp ~= 3 then return nil, "subscribed" end
  return conn
end

-- r:call(cmd, ...) -> reply | nil | nil, err: runs one command. Arguments
-- are strings (binary safe) or numbers. Also as r:CMD(...) for any
-- command: r:get(k), r:set(k, v, "EX", 10), r:hgetall(k).
function Redis:call(cmd, ...)
  argcheck(cmd, "string", 1, "call")
  local conn, why = usable(self)
  if not conn then return nil, why end
  local ok, err = send(conn, cmd, ...)
  if not ok then return broken(self, err) end
  return one(self, self.pushq)
end

-- -- Pipelines -------------------------------------------------------------

local Pipe = with_commands {}
local pipe_mt = { __index = Pipe }

-- p:call(cmd, ...) (or p:CMD(...)) queues a command; returns its index in
-- the results.
function Pipe:call(cmd, ...)
  argcheck(cmd, "string", 1, "call")
  if self.err then return nil end
  local ok, err = send(self.conn, cmd, ...)
  if not ok then
    self.err = err
    return nil
  end
  self.n = self.n + 1
  return self.n
end

-- r:pipeline(fn) -> results | nil, err: fn(p) queues commands on p (as
-- on r: p:set(k, v), p:call("GET", k)); they leave together, and the
-- replies come back as one list in the same order: each a value,
-- redis.null, or an error object (redis.is_error). If fn raises, the
-- connection is closed (its queued commands' replies would be unread)
-- and the error goes on up.
function Redis:pipeline(fn)
  argcheck(fn, "function", 1, "pipeline")
  local conn, why = usable(self)
  if not conn then return nil, why end
  local p = setmetatable({ conn = conn, n = 0, err = false }, pipe_mt)
  self.busy = true
  local ok, e = pcall(fn, p)
  self.busy = false
  if not ok then
    if p.n > 0 then self:close() end
    error(e, 0)
  end
  if p.err then return broken(self, p.err) end
  local out = {}
  if p.n == 0 then return out end
  local done, err = read_n(self, out, p.n, self.pushq)
  if not done then return broken(self, err) end
  return out
end

-- -- Pub/sub ---------------------------------------------------------------

local message_kinds = { message = true, pmessage = true, smessage = true }
local confirm_kinds = { subscribe = true, unsubscribe = true,
  psubscribe = true, punsubscribe = true }

-- message returns the message a pushed array v carries, or nil for a
-- subscription's confirmation (which updates r's counts).
local function message(r, v)
  local kind = type(v) == "table" and v[1]
  if kind == "pmessage" then
    return { kind = kind, pattern = v[2], channel = v[3], payload = v[4] }
  elseif message_kinds[kind] then
    return { kind = kind, channel = v[2], payload = v[3] }
  elseif confirm_kinds[kind] then
    if type(v[3]) == "number" then r.nsub = v[3] end
    return nil
  elseif type(v) == "table" and kind then
    return { kind = kind, data = v } -- other pushes (RESP3 "invalidate")
  end
  return nil
end

-- with_deadline runs fn(r) with reads bounded by the absolute time
-- deadline alone (nil: none), not by r's per-command timeout.
local function with_deadline(r, deadline, fn, ...)
  local conn = r.conn
  conn:set_timeout(0, r.timeout or nil)
  if deadline then conn:set_read_deadline(deadline) end
  local a, b = fn(r, ...)
  if r.conn then
    conn:set_read_deadline(nil)
    conn:set_timeout(r.timeout or 0)
  end
  return a, b
end

-- raw reads the next reply or push as is, keeping the connection when
-- the read times out.
local function raw(r)
  local out = r.out
  local ok, err = read_n(r, out, 1, nil)
  if not ok then
    if err ~= "timeout" then broken(r, err) end
    return nil, err
  end
  local v = out[1]
  out[1] = nil
  return v
end

-- confirm reads replies until count confirmations of kind arrived,
-- queueing the messages that come first.
local function confirm(r, kind, count)
  while count > 0 do
    local v, err = raw(r)
    if v == nil then return nil, err end
    if type(v) == "table" and v[1] == kind then
      count = count - 1
      if type(v[3]) == "number" then r.nsub = v[3] end
    elseif message(r, v) then
      r.pushq[#r.pushq + 1] = v
    elseif getmetatable(v) == error_mt then
      return nil, v.err
    end
  end
  return true
end

local function count(set)
  local n = 0
  for _ in pairs(set) do n = n + 1 end
  return n
end

-- subscription runs SUBSCRIBE and the like: cmd with the names in ...,
-- then waits for their confirmations, within r's timeout.
local function subscription(r, cmd, kind, set, adding, ...)
  local n = select("#", ...)
  for i = 1, n do
    local name = select(i, ...)
    argcheck(name, "string", i, kind)
  end
  if adding and n == 0 then
    error(("bad argument #1 to '%s' (string expected, got no value)")
      :format(kind), 3)
  end
  local conn = r.conn
  if not conn then return nil, "closed" end
  if r.busy then return nil, "busy" end
  local ok, err = send(conn, cmd, ...)
  if not ok then return broken(r, err) end
  local expect = n > 0 and n or count(set)
  ok, err = with_deadline(r, r.timeout and now() + r.timeout, confirm, kind,
    expect > 0 and expect or 1)
  if not ok then
    if r.conn and err == "timeout" then r:close() end
    return nil, err
  end
  for i = 1, n do set[select(i, ...)] = adding or nil end
  if not adding and n == 0 then
    for k in pairs(set) do set[k] = nil end
  end
  return true
end

-- r:subscribe(channel, ...) -> true | nil, err: the connection gets the
-- messages published to those channels (r:next_message). On RESP2 it
-- then only takes (un)subscriptions, until it unsubscribed from all; on
-- RESP3 other commands go on working.
function Redis:subscribe(...)
  return subscription(self, "SUBSCRIBE", "subscribe", self.channels, true,
    ...)
end

-- r:psubscribe(pattern, ...): as subscribe, for glob-style patterns.
function Redis:psubscribe(...)
  return subscription(self, "PSUBSCRIBE", "psubscribe", self.patterns, true,
    ...)
end

-- r:unsubscribe([channel, ...]) -> true | nil, err; none: all channels.
function Redis:unsubscribe(...)
  return subscription(self, "UNSUBSCRIBE", "unsubscribe", self.channels,
    false, ...)
end

-- r:punsubscribe([pattern, ...]): as unsubscribe, for patterns.
function Redis:punsubscribe(...)
  return subscription(self, "PUNSUBSCRIBE", "punsubscribe", self.patterns,
    false, ...)
end

local function next_raw(r)
  while true do
    local v, err = raw(r)
    if v == nil then return nil, err end
    local m = message(r, v)
    if m then return m end
  end
end

-- r:next_message([timeout]) -> msg | nil, err: the next message for the
-- subscriptions, as {kind = "message", channel =, payload =} or {kind =
-- "pmessage", pattern =, channel =, payload =}, in the order Redis sent
-- them. After timeout seconds: nil, "timeout", and the connection stays
-- subscribed. nil, "not subscribed" when there is nothing to wait for.
function Redis:next_message(timeout)
  local q = self.pushq
  while #q > 0 do
    local m = message(self, remove(q, 1))
    if m then return m end
  end
  argcheck(timeout, "number?", 1, "next_message")
  if not self.conn then return nil, "closed" end
  if self.nsub == 0 then return nil, "not subscribed" end
  if self.busy then return nil, "busy" end
  return with_deadline(self, timeout and now() + timeout, next_raw)
end

-- -- The connection --------------------------------------------------------

-- r:close(): closes the connection; later calls get nil, "closed".
function Redis:close()
  local conn = self.conn
  if conn then
    self.conn = false
    conn:close()
  end
  return true
end

-- r:set_timeout(seconds): bounds each command's wait (nil or 0: none).
-- A command that times out closes the connection: its reply would
-- otherwise be taken for the next command's.
function Redis:set_timeout(t)
  argcheck(t, "number?", 1, "set_timeout")
  self.timeout = t and t > 0 and t or false
  if self.conn then self.conn:set_timeout(self.timeout or 0) end
  return self
end

-- pool[key] is a list of idle connections to one server, with one
-- identity (user, password, db, protocol); per worker.
local pool = {}

-- r:release([max_idle [, size]]) -> true | false: hands the connection to
-- this worker's pool for redis.connect to reuse, if it is healthy (open,
-- no reply pending or half read, not subscribed) and the pool for its
-- server keeps fewer than size (default 16); else closes it (false). A
-- pooled connection idle for more than max_idle seconds (default 60) is
-- closed instead of reused. r itself is closed either way.
function Redis:release(max_idle, size)
  local conn = self.conn
  if not conn then return false end
  self.conn = false
  local list = pool[self.key]
  if not list then
    list = {}
    pool[self.key] = list
  end
  if self.busy or self.nsub > 0 or #self.pushq > 0 or not idle(self.p, conn)
    or #list >= (size or 16) then
    conn:close()
    return false
  end
  list[#list + 1] = { conn = conn, p = self.p, resp = self.resp,
    t = now(), max_idle = max_idle or 60 }
  return true
end

-- close_idle() closes every connection waiting in this worker's pool.
function _M.close_idle()
  for key, list in pairs(pool) do
    for _, e in ipairs(list) do e.conn:close() end
    pool[key] = nil
  end
end

-- take returns a pooled connection for key, rewrapped with parser p
-- (idle: it holds no reply in progress), or nil.
local function take(key, o, p)
  local list = pool[key]
  while list and #list > 0 do
    local e = remove(list)
    if now() - e.t <= e.max_idle and idle(e.p, e.conn) then
      e.conn:set_timeout(o.timeout or 0)
      return wrap(e.conn, p, key, o.timeout or false, e.resp)
    end
    e.conn:close()
  end
  return nil
end

-- connect(addr [, opts]) -> r | nil, err
-- addr: "host:port", "unix:PATH" or "redis://[[user]:password@]host[:port]
-- [/db]". opts: timeout (seconds, for connecting and for each command),
-- password, user, db, resp (2, the default, or 3: HELLO 3), and the
-- reply limits max_bulk (bytes of a string, default 512 MiB), max_reply
-- (bytes of a reply, 1 GiB), max_count (elements of an aggregate, 2^24)
-- and max_depth (nesting, 32). A pooled connection to the same server
-- with the same identity is reused when there is one (r:release).
function _M.connect(addr, opts)
  argcheck(addr, "string", 1, "connect")
  argcheck(opts, "table?", 2, "connect")
  local o = opts or {}
  local dial, user, password, db = C.parse_url(addr)
  if not dial then return nil, "bad address '" .. addr .. "'" end
  user, password = o.user or user, o.password or password
  db = o.db or db or 0
  local resp = o.resp or 2
  if resp ~= 2 and resp ~= 3 then
    error("bad option 'resp' (2 or 3 expected)", 2)
  end
  local key = concat({ dial, user or "", password or "", db, resp }, "\0")
  local p = new_parser(o) -- checks the limits, before any dialing
  local r = take(key, o, p)
  if r then return r end
  local conn, err = net.dial(dial, { timeout = o.timeout })
  if not conn then return nil, err end
  if o.timeout then conn:set_timeout(o.timeout) end
  r = wrap(conn, p, key, o.timeout or false, resp)
  if password or resp == 3 or db ~= 0 then
    local res, perr = r:pipeline(function(p)
      if password then
        if user then p:auth(user, password) else p:auth(password) end
      end
      if resp == 3 then p:hello(3) end
      if db ~= 0 then p:select(db) end
    end)
    if not res then return nil, perr end
    for i = 1, #res do
      local msg = _M.is_error(res[i])
      if msg then
        r:close()
        return nil, msg
      end
    end
  end
  return r
end

return _M
