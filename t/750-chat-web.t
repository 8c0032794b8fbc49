-- t/750-chat-web.t: the chat in a browser (issue #10): scripts/chat.lua
-- with --web serves one self-contained page and /ws; headless Chromium
-- opens the page twice, and the two pages and a telnet member chat with
-- each other; the test reads the pages' DOM: lines, notices marked, the
-- member list; a restarted server is reconnected to, name kept.
local t = require "lib.tap"
local server = require "lib.server"
local chat = require "lib.chat"
local ext = require "lib.ext"
local coronet = require "coronet"
local http = require "coronet.http"
local websocket = require "coronet.websocket"
local format = string.format

ext.need(t, "/usr/bin/chromium")
local SCRIPT = "scripts/chat.lua"

local function start(web)
  local s = server.start { script = SCRIPT,
    args = { "--web", web or "127.0.0.1:0" } }
  local line = s:wait_log("chat: web page on http://%S+/")
  s.web = line and line:match("http://(%S+)/")
  return s
end

local s = start()
t.ok(s.web, "the log names the web address beside the chat's: "
  .. tostring(s.web))
t.like(s:log(), "listening on " .. (s.direct or s.addr):gsub("%p", "%%%0"),
  "and the chat's") -- its own address, not an edge relay's

t.test("GET / is one page that fetches nothing from elsewhere", function()
  local r = assert(http.request { url = "http://" .. s.web .. "/" })
  local page = r:read_all()
  t.is(r.status, 200, "200")
  t.like(r.headers["content-type"], "^text/html", "HTML")
  t.ok(not page:find("src=", 1, true) and not page:find("href=", 1, true)
    and not page:find("@import", 1, true), "no src, href or @import")
  t.like(page, "<script>", "its script inline")
  t.like(page, "<style>", "its style inline")
end)

t.test("/ws joins the same room as telnet members", function()
  local a = chat.must_join(s)
  local ws = assert(websocket.dial("ws://" .. s.web .. "/ws"))
  local welcome = ws:recv(5)
  local name = welcome and welcome:match(chat.WELCOME)
  t.ok(name, "a browser member gets the welcome: " .. tostring(welcome))
  a:expect("* " .. tostring(name) .. " joined", "telnet sees it join")
  ws:send("hello over websocket")
  a:expect(name .. ": hello over websocket", "one text message is one line")
  a:say("hello over telnet")
  t.is(ws:recv(5), a.name .. ": hello over telnet", "and back: one message")
  ws:close()
  a:expect("* " .. name .. " left", "its leaving is seen")
  a:close()
end)

t.test("a telnet line that is not UTF-8 still reaches browsers as text",
  function()
    local a = chat.must_join(s)
    local ws = assert(websocket.dial("ws://" .. s.web .. "/ws"))
    local name = (ws:recv(5) or ""):match(chat.WELCOME)
    -- the leave of the previous test's member may come first: through the
    -- edge relay its close reaches the server late
    local line = a:line()
    while line and line:match("^%* %S+ left$") do line = a:line() end
    t.is(line, "* " .. tostring(name) .. " joined", "telnet sees it join")
    a:say("caf\233 \195\169")
    local msg, kind = ws:recv(5)
    t.is(msg, a.name .. ": caf? ??", "bytes past ASCII became ?")
    t.is(kind, "text", "in a text message")
    ws:close()
    a:close()
  end)

t.test("with two workers, browser and telnet members share one room",
  function()
    local s2 = server.start { script = SCRIPT, opts = { "--workers", "2" },
      args = { "--web", "127.0.0.1:0" } }
    local web = (s2:wait_log("chat: web page on http://%S+/") or "")
      :match("http://(%S+)/")
    local ws = assert(websocket.dial("ws://" .. tostring(web) .. "/ws"))
    local name = (ws:recv(5) or ""):match(chat.WELCOME)
    local ms = {}
    for i = 1, 6 do -- the kernel spreads them over both workers
      ms[i] = chat.must_join(s2)
      t.is(ws:recv(5), "* " .. ms[i].name .. " joined", "join " .. i .. " seen")
    end
    ws:send("to everyone")
    for i = 1, 6 do
      for j = i + 1, 6 do ms[i]:expect("* " .. ms[j].name .. " joined") end
      ms[i]:expect(name .. ": to everyone",
        "telnet member " .. i .. " reads it")
    end
    for _, m in ipairs(ms) do m:close() end
    ws:close()
    t.is(s2:stop(), 0, "that server exits cleanly")
  end)

local b, why = require("lib.cdp").launch()
t.ok(b, "chromium starts " .. tostring(why))
if not b then
  s:stop()
  return t.done()
end

local url = "http://" .. s.web .. "/"
local p1, p2

-- me(p) -> the page's own name, once it has one.
local function me(p)
  return p:wait("(function(){var e=document.querySelector('#members li.me');"
    .. "return e && e.textContent})()")
end

-- say(p, text) types text into the page and submits it.
local function say(p, text)
  return p:eval(format("(function(){var i=document.getElementById('input');"
    .. "i.value=%q;document.getElementById('form').requestSubmit();"
    .. "return true})()", text))
end

-- has_line(p, text [, cls]) waits for a line of the page's log.
local function has_line(p, text, cls)
  return p:wait(format("[...document.querySelectorAll('#log div')].some("
    .. "function(d){return d.textContent===%q%s})", text,
    cls and format("&&d.className===%q", cls) or ""))
end

local function members(p)
  return p:eval("[...document.querySelectorAll('#members li')]"
    .. ".map(function(l){return l.textContent}).join(',')")
end

local n1, n2, tel

t.test("two pages and a telnet member chat with each other", function()
  p1 = assert(b:open(url))
  n1 = me(p1)
  t.ok(n1, "page 1 joined as " .. tostring(n1))
  p2 = assert(b:open(url))
  n2 = me(p2)
  t.ok(n2 and n2 ~= n1, "page 2 joined as " .. tostring(n2))
  t.ok(has_line(p1, "* " .. tostring(n2) .. " joined", "notice"),
    "page 1 shows page 2 joining, marked as a notice")
  tel = chat.must_join(s)
  t.ok(has_line(p1, "* " .. tel.name .. " joined", "notice"),
    "page 1: telnet joined")
  t.ok(has_line(p2, "* " .. tel.name .. " joined", "notice"),
    "page 2: telnet joined")
  say(p1, "hello from page one")
  tel:expect(n1 .. ": hello from page one", "telnet reads page 1")
  t.ok(has_line(p2, n1 .. ": hello from page one"), "page 2 reads page 1")
  t.ok(has_line(p1, n1 .. ": hello from page one", "mine"),
    "page 1 shows its own line")
  tel:say("hello from telnet")
  t.ok(has_line(p1, tel.name .. ": hello from telnet"), "page 1 reads telnet")
  t.ok(has_line(p2, tel.name .. ": hello from telnet"), "page 2 reads telnet")
  say(p2, "and from page two")
  tel:expect(n2 .. ": and from page two", "telnet reads page 2")
  t.ok(has_line(p1, n2 .. ": and from page two"), "page 1 reads page 2")
end)

t.test("the member list follows joins, renames and leaves", function()
  local want = { n1, n2, tel.name }
  table.sort(want)
  t.ok(p1:wait(format("document.querySelectorAll('#members li').length==3")),
    "three members listed")
  t.is(members(p1), table.concat(want, ","), "page 1 lists all three")
  say(p2, "/nick pagetwo")
  tel:expect("* " .. n2 .. " is now pagetwo", "telnet sees the rename")
  t.ok(p1:wait("[...document.querySelectorAll('#members li')].some("
    .. "function(l){return l.textContent==='pagetwo'})"),
    "page 1 lists pagetwo")
  n2 = "pagetwo"
  tel:say("/quit")
  t.ok(p1:wait("document.querySelectorAll('#members li').length==2"),
    "telnet's leaving takes it off the list")
  tel:close()
end)

t.test("after a restart the pages reconnect and keep their names",
  function()
    t.is(s:stop(), 0, "the server stops")
    t.ok(p1:wait("document.getElementById('status').className==='off'"),
      "page 1 shows it is disconnected")
    s = start(s.web)
    t.ok(s.web, "the server is back on the same web address")
    t.ok(p1:wait("document.getElementById('status').textContent==='connected'",
      20), "page 1 reconnects")
    t.ok(p2:wait("(function(){var e=document.querySelector('#members li.me');"
      .. "return e && e.textContent==='pagetwo'})()", 20),
      "page 2 is pagetwo again")
    local a = chat.must_join(s)
    a:say("after the restart")
    t.ok(has_line(p2, a.name .. ": after the restart"), "and chats")
    a:close()
  end)

b:close()
t.is(s:stop(), 0, "the server exits cleanly")
t.done()
