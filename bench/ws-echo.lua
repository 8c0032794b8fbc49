-- bench/ws-echo.lua: the WebSocket echo of bench/http-bench.sh: every
-- message back as it came, no idle deadline.
local http = require "coronet.http"
local websocket = require "coronet.websocket"

return http.server(function(req, res)
  local ws = websocket.upgrade(req, res, { timeout = 0 })
  if not ws then return end
  while true do
    local msg, kind = ws:recv()
    if not msg then break end
    ws:send(msg, kind)
  end
end)
