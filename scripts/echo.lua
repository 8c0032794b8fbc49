-- echo: every byte a client sends comes straight back. When the client
-- closes its sending side, the rest is echoed and the connection closes.
--   coronet scripts/echo.lua --listen 127.0.0.1:7000
local io_ = require "coronet.io"

return function(conn)
  return io_.copy(conn, conn) -- a Writer fed from a Reader, until EOF
end
