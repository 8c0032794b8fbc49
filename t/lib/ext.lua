-- t/lib/ext.lua: outside programs for tests (curl, python, node, wrk...).
--   local ext = require "lib.ext"
--   if not ext.need(t, "curl") then return end   -- skips unless CI is set
--   local code, out, err = ext.run({ "curl", "-s", url }, stdin, 10)
local coronet = require "coronet"
local process = require "coronet.process"
local concat = table.concat

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

local function drain(conn, into, key, left)
  coronet.spawn(function()
    local parts = {}
    while true do
      local s = conn:read(65536)
      if not s then break end
      parts[#parts + 1] = s
    end
    into[key] = concat(parts)
    left[1] = left[1] - 1
  end)
end

-- run(argv [, stdin [, timeout [, env]]]) runs a program to its end and
-- returns its exit code (nil if killed at the timeout, default 30 s),
-- stdout and stderr.
function _M.run(argv, stdin, timeout, env)
  local spec = { stdin = stdin and "pipe" or "null", stdout = "pipe",
    stderr = "pipe", env = env }
  for i, v in ipairs(argv) do spec[i] = v end
  local p = assert(process.spawn(spec))
  local outs, left = {}, { 2 }
  drain(p.stdout, outs, "out", left)
  drain(p.stderr, outs, "err", left)
  if stdin then
    coronet.spawn(function()
      p.stdin:write(stdin)
      p.stdin:close()
    end)
  end
  local code = p:wait(timeout or 30)
  if not code then
    p:kill("KILL")
    p:wait(5)
  end
  local deadline = coronet.now() + 5
  while left[1] > 0 and coronet.now() < deadline do coronet.sleep(0.005) end
  return code, outs.out or "", outs.err or ""
end

-- start(argv [, env]) starts a long-running program (a peer server);
-- stop it with p:kill() and p:wait().
function _M.start(argv, env)
  local spec = { stdin = "null", stdout = "pipe", stderr = "pipe", env = env }
  for i, v in ipairs(argv) do spec[i] = v end
  return assert(process.spawn(spec))
end

return _M
