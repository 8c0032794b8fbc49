-- hello_http: the smallest HTTP server.
--   coronet scripts/hello_http.lua --listen 127.0.0.1:8080
--   curl http://127.0.0.1:8080/
local http = require "coronet.http"

return http.server(function(req, res)
  res:header("Content-Type", "text/plain")
  res:finish("hello, world\n")
end)
