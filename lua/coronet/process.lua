-- coronet.process: child processes whose standard streams are connections
-- (Readers and Writers like any other).
local C = require "coronet.c.proc"
local coronet = require "coronet"
local setmetatable, type, error = setmetatable, type, error
local wait = coronet.wait

local _M = { _VERSION = "0.1.0" }
local Proc = {}
Proc.__index = Proc

-- spawn{file, arg1, ..., env = {K = V}, cwd = dir, detached = bool, stdin = mode,
--       stdout = mode, stderr = mode} -> proc | nil, err
-- mode is "null", "inherit" or "pipe"; piped streams appear as
-- proc.stdin, proc.stdout and proc.stderr. file is looked up in PATH.
-- A child still running when coronet exits gets SIGTERM, unless it was
-- started with detached = true.
function _M.spawn(opts)
  if type(opts) ~= "table" then
    error("bad argument #1 to 'spawn' (table expected, got " .. type(opts)
      .. ")", 2)
  end
  local h, pid, stdin, stdout, stderr = C.spawn(opts)
  if not h then return nil, pid end
  return setmetatable({ _h = h, pid = pid, stdin = stdin, stdout = stdout,
    stderr = stderr }, Proc)
end

-- proc:wait([timeout]) -> exit_code, signal | nil, "timeout"
function Proc:wait(timeout)
  local h = self._h
  local code, sig = h:wait(timeout)
  while code == false do
    wait("proc:wait")
    code, sig = h:wait(timeout)
  end
  return code, sig
end

-- proc:kill([signal]) -> true | nil, err ("TERM" by default)
function Proc:kill(sig)
  return self._h:kill(sig)
end

return _M
