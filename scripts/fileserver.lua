-- fileserver: serves the regular files under a directory over HTTP/1.1,
-- on http.router():static. A file goes to the client in one io.copy,
-- through the host: read on libuv's thread pool, written to the socket
-- from C, never a Lua string per chunk.
--   coronet scripts/fileserver.lua --listen 127.0.0.1:8080 -- ./public
--   curl http://127.0.0.1:8080/index.html
-- The root defaults to the current directory; more arguments set
-- http.server options: header_timeout=5 idle=30 ...
--
-- What a hostile client cannot do: escape the root (through "..",
-- encoded dots or a symlink that leads out), open a FIFO or a device (a
-- 404, and no thread-pool thread ever waits on one), hold a connection
-- by sending headers slowly (the header timeout counts the whole head),
-- or make a truncated answer out of too many headers (431, then the
-- connection drains before it closes). Out of file descriptors, a request
-- gets 503, not 404.
local http = require "coronet.http"

local args = { ... }
local root = "."
local opts = {}
for i, a in ipairs(args) do
  local k, v = a:match("^([%w_]+)=(.+)$")
  if k then
    opts[k] = tonumber(v)
  elseif i == 1 then
    root = a
  end
end

return http.server(http.router():static("/", root), opts)
