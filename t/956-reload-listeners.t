-- t/956-reload-listeners.t: listeners a script opens in its main chunk
-- outlive reloads when the new version listens again (found by make
-- test-edge's reload mode): the chat's web page.
local t = require "lib.tap"
local server = require "lib.server"
local net = require "coronet.net"
local httpc = require "lib.httpc"
local util = require "lib.util"

-- issue #12: after a SIGHUP, scripts/chat.lua --web refused connections
-- to its page (chat_web.lua did not listen again, so the reload closed it)
t.test("chat --web serves its page after reloads", function()
  local s = server.start { script = "scripts/chat.lua", edge = false,
    args = { "--web", "127.0.0.1:0" } }
  local web = s:wait_log("chat: web page on http://%S+/")
    :match("http://(%S+)/")
  local function page() -- on a new connection each time
    local c = net.dial(web, { timeout = 10 })
    if not c then return false end
    c:set_timeout(10)
    c:write(httpc.req("GET", "/", { Connection = "close" }))
    local r = httpc.read(c)
    c:close()
    return r and r.status == 200 and r.body:find("<html", 1, true) and true
  end
  t.ok(page(), "the page before a reload")
  for i = 1, 2 do
    s:signal("HUP")
    t.ok(util.wait_until(function()
      local n = 0
      for _, l in ipairs(s.lines) do
        if l:find("reloaded ", 1, true) then n = n + 1 end
      end
      return n >= i
    end, 10), "reload " .. i)
    t.ok(page(), "the page after reload " .. i)
  end
  local n = 0
  for _, l in ipairs(s.lines) do
    if l:find("web page on", 1, true) then n = n + 1 end
  end
  t.is(n, 1, "the web page's line is logged once")
  t.is(s:stop(), 0, "exit 0")
end)

t.done()
