-- bench/tls_serve.lua: coronet's server for bench/tls-bench.sh, run on a
-- tls:// listen address. Its argument picks the handler: "echo" (io.copy
-- back, inside the host) or "http" (a minimal keep-alive HTTP/1.1
-- responder for GET /hello and GET /16k, as the nginx and Go peers serve).
local io_ = require "coronet.io"

local mode = ... or "echo"
if mode == "echo" then
  return function(c) return io_.copy(c, c) end -- as scripts/echo.lua
end

local responses = {}
for path, body in pairs { ["/hello"] = "hello\n",
  ["/16k"] = string.rep("x", 16384) } do
  responses[path] = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
    .. "Content-Length: " .. #body .. "\r\n\r\n" .. body
end
local not_found = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"

return function(c)
  while true do
    local line = c:read_line()
    if not line then return end
    local path = line:match("^GET (%S+)")
    repeat
      local h = c:read_line()
    until not h or h == ""
    if not c:write(responses[path] or not_found) then return end
  end
end
