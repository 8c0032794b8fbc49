-- t/lib/ext.lua: outside programs for tests (curl, python, node, wrk...).
--   local ext = require "lib.ext"
--   if not ext.need(t, "curl") then return end   -- skips unless CI is set
--   local code, out, err = ext.run({ "curl", "-s", url }, stdin, 10)
--   local p = ext.start { "python3", "-m", "http.server" }  -- a peer
local process = require "coronet.process"
local util = require "lib.util"

local _M = {}

-- which(prog) -> the program's path when it is installed, else nil.
function _M.which(prog)
  if prog:sub(1, 1) == "/" then
    local f = io.open(prog, "r")
    if f then f:close() return prog end
    return nil
  end
  for dir in (os.getenv("PATH") or ""):gmatch("[^:]+") do
    local f = io.open(dir .. "/" .. prog, "r")
    if f then
      f:close()
      return dir .. "/" .. prog
    end
  end
  return nil
end

-- need(t, prog [, why]) -> true when prog is installed. Otherwise, with
-- CI set it fails a test saying so; without CI it plans a skip of the
-- whole file and exits.
function _M.need(t, prog, why)
  if _M.which(prog) then return true end
  if os.getenv("CI") then
    t.fail(prog .. " is installed", why or "CI needs it")
    return false
  end
  io.stdout:write("1..0 # SKIP " .. prog .. " is not installed\n")
  os.exit(0)
end

-- run(argv [, stdin [, timeout]]) runs a program to its end and returns
-- its exit code, stdout, stderr and the signal that ended it; the code is
-- nil when it was still running at the timeout (default 30 s) and was
-- killed. (util.command with positional arguments.)
function _M.run(argv, stdin, timeout)
  local a = {}
  for i, v in ipairs(argv) do a[i] = v end
  return util.command(a, { input = stdin, timeout = timeout })
end

-- start(argv [, env]) starts a long-running program (a peer server);
-- stop it with p:kill() and p:wait().
function _M.start(argv, env)
  local spec = { stdin = "null", stdout = "pipe", stderr = "pipe", env = env }
  for i, v in ipairs(argv) do spec[i] = v end
  return assert(process.spawn(spec))
end

return _M
