-- t/lib/workers.lua: reaching a chosen worker of a server started with
-- --workers N, whose handler first writes one line naming its worker
-- (t/lib/svc_bus.lua, t/lib/svc_shared.lua).
--   local workers = require "lib.workers"
--   local c = workers.on(s, 2)     -- a connection served by worker 2
local _M = {}

-- on(s, w [, timeout]) connects to server s until worker w serves the
-- connection (the kernel spreads connections over the workers); returns
-- it with the greeting read. Raises after 200 tries.
function _M.on(s, w, timeout)
  for _ = 1, 200 do
    local c = s:connect(timeout or 20)
    local id = tonumber(c:read_line())
    if id == w then return c end
    c:close()
  end
  error("no connection reached worker " .. w, 2)
end

return _M
