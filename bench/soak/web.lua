-- bench/soak/web.lua: the soak's HTTP and WebSocket service.
--   GET /        "hello\n"
--   POST /echo   the body back
--   GET /big     64 KiB
--   GET /ws      a WebSocket that echoes each message
local http = require "coronet.http"
local websocket = require "coronet.websocket"
local io = require "coronet.io"

local BIG = string.rep("0123456789abcdef", 4096)
local r = http.router()

r:get("/", function(_, res) res:finish("hello\n") end)

r:post("/echo", function(req, res)
  local body, err = req:body()
  if not body then return res:status(400):finish(err .. "\n") end
  res:finish(body)
end)

r:get("/big", function(_, res) res:finish(BIG) end)

r:get("/ws", function(req, res)
  local ws = websocket.upgrade(req, res)
  if ws then io.copy(ws, ws) end
end)

return http.server(r)
