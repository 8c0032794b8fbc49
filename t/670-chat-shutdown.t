-- t/670-chat-shutdown.t: scripts/chat.lua at SIGTERM (issue #13): every
-- member, on every worker, gets "* server shutting down" and its
-- connection closes, so the server exits well within the grace period.
local t = require "lib.tap"
local chat = require "lib.chat"
local coronet = require "coronet"
local scratch = require "lib.scratch"
local server = require "lib.server"
local format = string.format

t.test("SIGTERM with 50 members on 2 workers: each is told and closed; "
  .. "the server exits long before the 10 s grace", function()
  local s = chat.start(server.path("scripts/chat.lua"), 2,
    { "--grace", "10" })
  local ms = {}
  for i = 1, 50 do ms[i] = chat.must_join(s, 10) end
  local t0 = coronet.now()
  s:signal("TERM")
  local told, closed = 0, 0
  for _, m in ipairs(ms) do
    local line
    repeat line = m:line() until not line or line:find("^%* server")
    if line == "* server shutting down" then told = told + 1 end
    if m:eof() then closed = closed + 1 end
  end
  local code = s:stop()
  local secs = coronet.now() - t0
  t.is(told, 50, "every member got the notice")
  t.is(closed, 50, "then its connection closed")
  t.is(code, 0, "the server exits 0")
  t.cmp_ok(secs, "<", 3, format("within %.2f s of SIGTERM", secs))
  chat.check_spread(s, 2)
  local odd = chat.odd_lines(s, { "shutting down", "waiting up to" })
  t.is(#odd, 0, "nothing unexpected in the log")
  if #odd > 0 then t.diag(table.concat(odd, "\n")) end
  for _, m in ipairs(ms) do m:close() end
end, 60)

scratch.cleanup()
t.done()
