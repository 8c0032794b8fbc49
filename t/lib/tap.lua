-- t/lib/tap.lua: TAP output for tests run by `coronet --run`.
--   local t = require "lib.tap"
--   t.test("echo returns each line unchanged", function() ... end)
--   t.done()
-- Each t.test runs in its own task with a deadline; an error or a timeout
-- fails that test and the file goes on with the next.
local coronet = require "coronet"
local sched = require "coronet.c.sched"
local format, tostring, type = string.format, tostring, type
local stdout = io.stdout

local _M = {}
local count, failed, planned = 0, 0, nil
local current -- name of the running t.test

local function out(s)
  stdout:write(s, "\n")
  stdout:flush()
end

local function diag(msg)
  for line in (tostring(msg) .. "\n"):gmatch("(.-)\n") do
    out("# " .. line)
  end
end
_M.diag = diag

function _M.plan(n)
  planned = n
  out("1.." .. n)
end

function _M.ok(cond, name)
  count = count + 1
  name = name or current or ""
  if cond then
    out(format("ok %d - %s", count, name))
  else
    failed = failed + 1
    out(format("not ok %d - %s", count, name))
    local info = debug.getinfo(3, "Sl")
    if info then diag(format("  at %s:%d", info.short_src, info.currentline)) end
  end
  return cond
end

local function show(v)
  if type(v) == "string" then
    if #v > 200 then
      return format("%q... (%d bytes)", v:sub(1, 200), #v)
    end
    return format("%q", v)
  end
  return tostring(v)
end
_M.show = show

function _M.is(got, want, name)
  local ok = _M.ok(got == want, name)
  if not ok then
    diag("       got: " .. show(got))
    diag("  expected: " .. show(want))
  end
  return ok
end

function _M.isnt(got, unwanted, name)
  local ok = _M.ok(got ~= unwanted, name)
  if not ok then diag("  got the unwanted value " .. show(got)) end
  return ok
end

function _M.like(got, pattern, name)
  local ok = _M.ok(type(got) == "string" and got:find(pattern) ~= nil, name)
  if not ok then
    diag("       got: " .. show(got))
    diag("  expected a match for: " .. show(pattern))
  end
  return ok
end

-- cmp_ok(a, op, b, name) with op one of < <= > >= == ~=
function _M.cmp_ok(a, op, b, name)
  local r
  if op == "<" then r = a < b elseif op == "<=" then r = a <= b
  elseif op == ">" then r = a > b elseif op == ">=" then r = a >= b
  elseif op == "==" then r = a == b else r = a ~= b end
  local ok = _M.ok(r, name)
  if not ok then diag(format("  %s %s %s is false", show(a), op, show(b))) end
  return ok
end

function _M.pass(name) return _M.ok(true, name) end

-- todo(cond, name, why) checks a known bug: the result is reported as a
-- TODO test, which does not fail the file (prove notes a TODO that passes).
function _M.todo(cond, name, why)
  count = count + 1
  out(format("%s %d - %s # TODO %s", cond and "ok" or "not ok", count, name,
    why))
  return cond
end
function _M.fail(name, why)
  _M.ok(false, name)
  if why then diag(why) end
  return false
end

-- test(name, fn [, timeout]) runs fn in a task of its own and waits for
-- it, at most timeout seconds (default 60). Checks inside fn that raise
-- count as a failure named after the test. _M.before_test, when set (the
-- edge modes of lib.server), runs first in the same task.
function _M.test(name, fn, timeout)
  timeout = timeout or 60
  local done, err = false, nil
  local before = count
  local me = coroutine.running()
  coronet.spawn(function()
    current = name
    local ok, e = xpcall(_M.before_test or function() end, debug.traceback)
    if ok then ok, e = xpcall(fn, debug.traceback) end
    if not ok then err = e end
    done = true
    sched.wake(me)
  end)
  sched.park(timeout)
  coronet.wait("t.test")
  current = nil
  if not done then
    _M.fail(name, format("  timed out after %gs", timeout))
  elseif err then
    _M.fail(name, "  error: " .. tostring(err))
  elseif count == before then
    _M.fail(name, "  the test checked nothing")
  end
end

-- done() prints the plan if none was given and exits non-zero on failure.
function _M.done()
  if not planned then out("1.." .. count) end
  if planned and planned ~= count then
    diag(format("planned %d tests but ran %d", planned, count))
    failed = failed + 1
  end
  os.exit(failed == 0 and 0 or 1)
end

return _M
