-- t/lib/httpc.lua: a small raw HTTP/1.1 client for the 7xx tests, written
-- apart from coronet.http so that the two check each other.
--   local httpc = require "lib.httpc"
--   c:write(httpc.req("GET", "/", { Host = "x" }))
--   local r = httpc.read(c)     -- {status=, headers=, body=, version=}
--   httpc.closed(c)             -- true when the server closed c
local util = require "lib.util"
local concat, format, lower, match = table.concat, string.format,
  string.lower, string.match

local _M = {}

-- req(method, target [, headers [, body]]) -> the request's bytes. Host
-- is added unless headers has one (false leaves it out); a string body
-- gets its Content-Length.
function _M.req(method, target, headers, body)
  local out = { method .. " " .. target .. " HTTP/1.1\r\n" }
  headers = headers or {}
  if headers.Host == nil then out[#out + 1] = "Host: test\r\n" end
  for k, v in pairs(headers) do
    if v ~= false then out[#out + 1] = k .. ": " .. v .. "\r\n" end
  end
  if body and headers["Transfer-Encoding"] == nil then
    out[#out + 1] = "Content-Length: " .. #body .. "\r\n"
  end
  out[#out + 1] = "\r\n"
  out[#out + 1] = body or ""
  return concat(out)
end

-- chunked(pieces) -> a chunked body of the strings in pieces.
function _M.chunked(pieces)
  local out = {}
  for _, p in ipairs(pieces) do
    out[#out + 1] = format("%x\r\n%s\r\n", #p, p)
  end
  out[#out + 1] = "0\r\n\r\n"
  return concat(out)
end

local function read_chunked(c)
  local parts = {}
  while true do
    local line, err = c:read_line()
    if not line then return nil, err end
    local n = tonumber(match(line, "^(%x+)"), 16)
    if not n then return nil, "bad chunk line " .. line end
    if n == 0 then
      repeat
        line, err = c:read_line()
        if not line then return nil, err end
      until line == ""
      return concat(parts)
    end
    parts[#parts + 1] = c:read_full(n)
    c:read_line()
  end
end

-- read(c [, head_request]) -> the next response {status=, reason=,
-- version=, headers= (lower-case), body=, raw_head=} | nil, err
function _M.read(c, head_request)
  local line, err = c:read_line()
  if not line then return nil, err end
  local version, status, reason = match(line, "^HTTP/(%d%.%d) (%d%d%d) ?(.*)$")
  if not version then return nil, "bad status line " .. line end
  local r = { status = tonumber(status), reason = reason, version = version,
    headers = {}, raw_head = { line } }
  while true do
    line, err = c:read_line()
    if not line then return nil, err end
    if line == "" then break end
    r.raw_head[#r.raw_head + 1] = line
    local k, v = match(line, "^([^:]+):%s*(.-)%s*$")
    k = lower(k)
    r.headers[k] = r.headers[k] and r.headers[k] .. ", " .. v or v
  end
  local h = r.headers
  if head_request or r.status < 200 or r.status == 204 or r.status == 304 then
    r.body = ""
  elseif h["transfer-encoding"] == "chunked" then
    r.body, err = read_chunked(c)
  elseif h["content-length"] then
    r.body, err = c:read_full(tonumber(h["content-length"]))
  else
    r.body = util.read_all(c) -- until the server closes
  end
  if not r.body then return nil, err end
  return r
end

-- closed(c [, timeout]) -> true when the server closed c (EOF or reset),
-- with nothing more to read.
function _M.closed(c, timeout)
  c:set_timeout(timeout or 5)
  local s, err = c:read(1)
  return s == nil and (err == "eof" or err == "connection reset by peer")
end

return _M
