-- fileserver: serves the files under a directory over HTTP/1.0 (GET and
-- HEAD). A file goes to the client in one io.copy, through the host: read
-- on libuv's thread pool, written to the socket from C, never a Lua
-- string per chunk.
--   coronet scripts/fileserver.lua --listen 127.0.0.1:8080 -- ./public
--   curl http://127.0.0.1:8080/index.html
-- The root defaults to the current directory. Paths with ".." or
-- directories are refused; one request per connection.
local io_ = require "coronet.io"
local fs = require "coronet.fs"
local find, format, gsub, char, tonumber = string.find, string.format,
  string.gsub, string.char, tonumber

local root = (...) or "."
local MAX_LINE = 8192
local MAX_HEADERS = 100

local function reply(conn, status, body, extra)
  conn:write(format("HTTP/1.0 %s\r\nContent-Length: %d\r\n%s"
    .. "Connection: close\r\n\r\n%s", status, #body, extra or "", body))
end

local function unescape(s)
  return (gsub(s, "%%(%x%x)", function(h) return char(tonumber(h, 16)) end))
end

return function(conn)
  conn:set_timeout(30)
  local line = conn:read_line(MAX_LINE)
  if not line then return end
  for _ = 1, MAX_HEADERS do -- the headers are not used
    local h = conn:read_line(MAX_LINE)
    if not h then return end
    if h == "" then break end
  end
  local method, target = line:match("^(%u+) (/[^ ?#]*)[^ ]* HTTP/1%.%d$")
  if method ~= "GET" and method ~= "HEAD" then
    return reply(conn, "400 Bad Request", "bad request\n")
  end
  local path = unescape(target)
  if find(path, "/%.%.", 1) or find(path, "%z") then
    return reply(conn, "403 Forbidden", "forbidden\n")
  end
  local f = fs.open(root .. path, "r")
  local st = f and f:stat()
  if not st or st.type ~= "file" then
    if f then f:close() end
    return reply(conn, "404 Not Found", "not found\n")
  end
  conn:write(format("HTTP/1.0 200 OK\r\nContent-Length: %d\r\n"
    .. "Content-Type: application/octet-stream\r\nConnection: close\r\n\r\n",
    st.size))
  if method == "GET" then io_.copy(conn, f) end
  f:close()
end
