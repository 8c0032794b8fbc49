-- t/lib/svc_admin.lua: a line echo for the admin tests (t/955-admin.t).
-- Its handler parks in read_line at the line marked PARKED; the main
-- chunk makes a group and a shared dictionary whose name needs escaping
-- in a Prometheus label.
local coronet = require "coronet"

local kept = coronet.state("svc_admin")
kept.dict = kept.dict or coronet.shared('odd "dict" \\ name\nline two',
  { bytes = 8192 })
kept.dict:set("k", "v")
kept.group = kept.group or coronet.group()

return function(conn)
  while true do
    local line = conn:read_line() -- PARKED
    if not line then break end
    conn:write(line .. "\n")
  end
end
