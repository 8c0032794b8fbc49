-- t/lib/chat.lua: chat members for tests of scripts/chat.lua.
--   local chat = require "lib.chat"
--   local a = chat.join(s)          -- connects, reads the welcome: a.name
--   a:say("hello")                  -- sends "hello\n"
--   a:expect("* bob joined", what)  -- the next line is exactly that
--   a:quiet(what)                   -- nothing else was sent to a
--   local s = chat.start(path, 2)   -- a chat server with 2 workers
--   chat.spread(s)                  -- members served by each worker
-- Every read has the connection's timeout (5 s unless told).
local t = require "lib.tap"
local scratch = require "lib.scratch"
local setmetatable, format = setmetatable, string.format

local _M = {}

-- start(script, workers [, opts [, edge]]) starts a chat server
-- (scratch.start) with that many workers; with more than one it logs at
-- debug level, so that spread() can tell which worker served whom. edge
-- is server.start's o.edge (false, "relay" or "reload").
function _M.start(script, workers, opts, edge)
  local o = {}
  for _, v in ipairs(opts or {}) do o[#o + 1] = v end
  if workers > 1 then
    for _, v in ipairs { "--workers", tostring(workers), "--log-level",
      "debug" } do o[#o + 1] = v end
  end
  return scratch.start { script = script, opts = o, edge = edge }
end

local JOINED = "^coronet: debug: chat: %S+ joined from %S+ on worker (%d+)$"

-- spread(s) -> how many members each worker served ({["1"] = n, ...})
function _M.spread(s)
  local on = {}
  for _, line in ipairs(s.lines) do
    local w = line:match(JOINED)
    if w then on[w] = (on[w] or 0) + 1 end
  end
  return on
end

-- check_spread(s, workers) checks, with t, that every worker served
-- members (when there are several). The kernel hands connections to the
-- workers' sockets by a hash of their addresses, so a test's few members
-- can all land on one worker by chance (1 in 64 for seven over two): then
-- more join (and leave), up to 40, until each worker has served one.
function _M.check_spread(s, workers)
  if workers < 2 then return end
  local on, counts, ok, extra = _M.spread(s), {}, true, {}
  local function short()
    for w = 1, workers do
      if not on[tostring(w)] then return true end
    end
  end
  while short() and #extra < 40 do
    local up, m = pcall(_M.join, s, 5) -- not once the server is gone
    if not up or not m then break end
    extra[#extra + 1] = m
    local w = tostring(_M.worker_of(s, m))
    on[w] = (on[w] or 0) + 1
  end
  for _, m in ipairs(extra) do m:close() end
  for w = 1, workers do
    counts[w] = on[tostring(w)] or 0
    if counts[w] == 0 then ok = false end
  end
  t.ok(ok, format("members were served by each of the %d workers (%s%s)",
    workers, table.concat(counts, ", "),
    #extra > 0 and format("; %d joined to see it", #extra) or ""))
end

-- worker_of(s, m) -> the worker that serves member m (from the server's
-- debug log; start(path, n) with n > 1 turns it on)
function _M.worker_of(s, m)
  local line = s:wait_log("^coronet: debug: chat: " .. scratch.quote(m.name)
    .. " joined from ", 10)
  return line and tonumber(line:match("on worker (%d+)$"))
end

-- on_each(s, workers, k) joins members until k of them are served by
-- each worker; returns a list per worker, and every member joined
function _M.on_each(s, workers, k)
  local by, all = {}, {}
  for w = 1, workers do by[w] = {} end
  for _ = 1, 200 * k * workers do
    local done = true
    for w = 1, workers do done = done and #by[w] >= k end
    if done then break end
    local m = _M.must_join(s)
    all[#all + 1] = m
    m.worker = _M.worker_of(s, m)
    local list = by[m.worker]
    list[#list + 1] = m
  end
  return by, all
end

-- odd_lines(s [, patterns]) -> what s logged besides its start, the debug
-- lines about connections, joins and the C heap's trims (members leaving
-- free their buffers), and lines matching patterns
function _M.odd_lines(s, patterns)
  local odd = {}
  for _, line in ipairs(s.lines) do
    local known = line:find("^coronet: listening on ") or line:find(JOINED)
      or line:find("^coronet: debug: conn %d+[ :]")
      or line:find("^coronet: debug: heap: ")
    for _, p in ipairs(patterns or {}) do known = known or line:find(p) end
    if not known then odd[#odd + 1] = line end
  end
  return odd
end
local Member = {}
Member.__index = Member

_M.WELCOME = "^%* welcome, (%S+)! commands: /nick NAME, /who, /quit$"

-- join(s [, timeout]) connects to server s and reads the welcome notice;
-- returns the member, or nil and what came instead.
function _M.join(s, timeout)
  local c = s:connect(timeout or 5)
  local line, err = c:read_line()
  local name = line and line:match(_M.WELCOME)
  if not name then
    c:close()
    return nil, "no welcome: " .. tostring(line or err)
  end
  return setmetatable({ conn = c, name = name, welcome = line }, Member)
end

-- must_join(s) is join that raises (failing the test) when it fails.
function _M.must_join(s, timeout)
  local m, err = _M.join(s, timeout)
  if not m then error(err, 2) end
  return m
end

-- say(text) sends text and a "\n" (text may carry its own "\r").
function Member:say(text)
  return self.conn:write(text .. "\n")
end

-- line() -> the next line, or nil and the error.
function Member:line()
  return self.conn:read_line(1024 * 1024)
end

-- expect(want [, what]) checks that the next line is want.
function Member:expect(want, what)
  local got, err = self:line()
  return t.is(got or ("<" .. tostring(err) .. ">"), want,
    what or format("%s gets %q", self.name, want))
end

-- expect_like(pattern [, what]) checks the next line against a pattern;
-- returns its captures.
function Member:expect_like(pattern, what)
  local got, err = self:line()
  t.like(got or ("<" .. tostring(err) .. ">"), pattern,
    what or format("%s gets a line like %q", self.name, pattern))
  if got then return got:match(pattern) end
end

-- who() sends /who and returns the reply, and the lines that came before
-- it (a list).
function Member:who()
  self:say("/who")
  local before = {}
  for _ = 1, 10000 do
    local line, err = self:line()
    if not line then return nil, before, err end
    if line:find("^%* %d+ here: ") then return line, before end
    before[#before + 1] = line
  end
  return nil, before, "too many lines"
end

-- quiet([what]) checks that nothing but the reply to a /who arrives: no
-- line was sent to this member since the last one read.
function Member:quiet(what)
  local reply, before, err = self:who()
  local ok = t.ok(reply ~= nil and #before == 0,
    what or (self.name .. " got nothing else"))
  if not ok then
    t.diag(format("  before the /who reply: %s%s",
      table.concat(before, " | "), err and ("; " .. err) or ""))
  end
  return ok
end

-- eof() -> true when the server closed the connection (reads EOF next).
function Member:eof()
  local line, err = self:line()
  if line then return false, line end
  return err == "eof" or err == "reset" or
    err == "connection reset by peer", err
end

function Member:close()
  self.conn:close()
end

return _M
