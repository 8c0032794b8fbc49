-- coronet.boot: run by the host in each new Lua state before the script:
-- gives connections their blocking methods and makes os.exit end the host
-- cleanly.
require "coronet.conn"
local sched = require "coronet.c.sched"
local yield = coroutine.yield

-- os.exit([code]) stops every worker at once with status code (true: 0,
-- false: 1, default 0); the calling task never resumes.
os.exit = function(code)
  sched.exit(code == nil and 0 or code)
  if coroutine.isyieldable() then
    sched.park()
    yield()
  end
end
