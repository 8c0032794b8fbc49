-- coronet.process: child processes whose standard streams are connections
-- (Readers and Writers like any other).
local C = require "coronet.c.proc"
local coronet = require "coronet"
local setmetatable = setmetatable
local wait, argcheck = coronet.wait, coronet.argcheck

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
  argcheck(opts, "table", 1, "spawn")
  local h, pid, stdin, stdout, stderr = C.spawn(opts)
  if not h then return nil, pid end
  return setmetatable({ _h = h, pid = pid, stdin = stdin, stdout = stdout,
    stderr = stderr }, Proc)
end

-- proc:wait([timeout]) -> exit_code, signal | nil, "timeout"
function Proc:wait(timeout)
  argcheck(timeout, "number?", 1, "wait")
  local h = self._h
  local code, sig = h:wait(timeout)
  while code == false do
    wait("proc:wait")
    code, sig = h:wait(timeout)
  end
  return code, sig
end

-- proc:kill([signal]) -> true | nil, err ("TERM" by default; a number,
-- or "KILL", "INT", "HUP", "USR1", "USR2", "STOP", "CONT", "QUIT")
function Proc:kill(sig)
  local ok, err = self._h:kill(sig) -- not a tail call: a bad signal raises
  return ok, err                    -- at the caller's line (lcn_argerror)
end

return _M
