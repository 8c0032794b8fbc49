-- t/lib/ws_app.lua: the WebSocket service the 7xx tests talk to.
--   /echo          echoes each message, its kind kept (io.copy(ws, ws))
--   /recv          echoes with recv/send, and answers "stats" with the
--                  count of messages seen
--   /small         max_message = 1000
--   /idle          timeout = 1: silence closes it
--   /bye           sends "bye", then closes with 4001 "done"
--   /proto         subprotocols chat and superchat
local http = require "coronet.http"
local websocket = require "coronet.websocket"
local io = require "coronet.io"
local log = require "coronet.log"

local r = http.router()

r:get("/", function(_, res) res:finish("ws app\n") end)

r:get("/echo", function(req, res)
  local ws = websocket.upgrade(req, res)
  if ws then io.copy(ws, ws) end
end)

r:get("/recv", function(req, res)
  local ws = websocket.upgrade(req, res)
  if not ws then return end
  local n = 0
  while true do
    local msg, kind, code = ws:recv()
    if not msg then
      log.warn("recv ended: %s %s", tostring(kind), tostring(code))
      return
    end
    n = n + 1
    if msg == "stats" then msg = "seen " .. n end
    ws:send(msg, kind)
  end
end)

r:get("/small", function(req, res)
  local ws = websocket.upgrade(req, res, { max_message = 1000 })
  if ws then io.copy(ws, ws) end
end)

r:get("/idle", function(req, res)
  local ws = websocket.upgrade(req, res, { timeout = 1 })
  if not ws then return end
  local msg, err = ws:recv()
  log.warn("idle recv: %s %s", tostring(msg), tostring(err))
end)

r:get("/bye", function(req, res)
  local ws = websocket.upgrade(req, res)
  if not ws then return end
  ws:send("bye")
  ws:close(4001, "done")
end)

r:get("/proto", function(req, res)
  local ws = websocket.upgrade(req, res,
    { protocols = { "chat", "superchat" } })
  if not ws then return end
  ws:send(tostring(ws.protocol))
  ws:close()
end)

return http.server(r)
