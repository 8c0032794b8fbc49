-- t/lib/chat_web_app.lua: scripts/chat.lua's session with the web page of
-- scripts/chat_web.lua on --web ADDR (until chat.lua takes --web itself).
local root = debug.getinfo(1, "S").source:match("^@(.*)/t/lib/") or "."
package.path = root .. "/scripts/?.lua;" .. package.path
local web = require "chat_web"
local session = dofile(root .. "/scripts/chat.lua")
local addr = web.web_arg { ... }
if addr then web.listen(addr, session) end
return session
