-- coronet.log: levels, formatting, one line per call, through --log-level.
local t = require "lib.tap"
local server = require "lib.server"
local util = require "lib.util"

local script = util.tmpfile([[
local log = require "coronet.log"
log.error("e %d", 1)
log.warn("w %s", "two")
log.info("plain 100% text")
log.debug("d %q", "x")
log.info({}, 5) -- not a format string: joined with spaces
print(log.enabled("debug"), log.enabled("info"))
]])

local function lines(s)
  local out = {}
  for l in (s or ""):gmatch("[^\n]+") do out[#out + 1] = l end
  return out
end

t.test("at the default level, debug lines are left out", function()
  local code, err, out = server.run { "--run", script }
  t.is(code, 0, "exit 0")
  local l = lines(err)
  t.is(#l, 4, "four lines: " .. t.show(err))
  t.is(l[1], "coronet: e 1", "error formats its arguments")
  t.is(l[2], "coronet: warning: w two", "warn is tagged")
  t.is(l[3], "coronet: plain 100% text", "a lone string is not a format")
  t.like(l[4], "^coronet: table: 0x%x+ 5$", "other values are joined")
  t.is(out, "false\ttrue\n", "enabled() follows the level")
end)

t.test("--log-level debug shows debug lines, error hides the rest", function()
  local code, err = server.run { "--log-level", "debug", "--run", script }
  t.is(code, 0, "exit 0")
  t.like(err, "\ncoronet: debug: d \"x\"\n", "debug line written")
  code, err = server.run { "--log-level", "error", "--run", script }
  t.is(code, 0, "exit 0")
  t.is(#lines(err), 1, "only the error line: " .. t.show(err))
end)

-- issue #13: log.info("%q", s) wrote several lines
t.test("one call is one line, whatever its text holds", function()
  local path = util.tmpfile([[
local log = require "coronet.log"
log.info("got %q", "two\nlines\r\n")
log.warn("raw\nnewline")
]])
  local code, err = server.run { "--run", path }
  t.is(code, 0, "exit 0")
  local l = lines(err)
  t.is(#l, 2, "two calls, two lines: " .. t.show(err))
  t.is(l[1], 'coronet: got "two\\nlines\\13\\n"', "%q's newline as \\n")
  t.is(l[2], "coronet: warning: raw\\nnewline", "a raw newline as \\n")
  util.cleanup()
end)

t.done()
