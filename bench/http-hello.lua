-- bench/http-hello.lua: the keep-alive hello world of bench/http-bench.sh,
-- the same answer as the peers' (200, text/plain, "hello\n").
local http = require "coronet.http"

return http.server(function(_, res)
  res:header("Content-Type", "text/plain")
  res:finish("hello\n")
end)
