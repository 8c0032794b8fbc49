-- t/lib/cdp.lua: a headless Chromium driven over the DevTools protocol
-- (through coronet.websocket), for tests that read pages' DOM.
--   local cdp = require "lib.cdp"
--   local b = cdp.launch()              -- nil, why when it cannot start
--   local p = b:open("http://...")      -- a tab
--   p:eval("document.title")            -- the value, JSON-able
--   b:close()
local coronet = require "coronet"
local websocket = require "coronet.websocket"
local ext = require "lib.ext"
local scratch = require "lib.scratch"
local cjson = require "cjson"
local setmetatable = setmetatable

local _M = { BIN = "/usr/bin/chromium" }
local Browser, Page = {}, {}
Browser.__index, Page.__index = Browser, Page

_M.FLAGS = { "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
  "--no-first-run", "--disable-background-networking",
  "--disable-component-update", "--disable-sync",
  "--remote-debugging-port=0" }

-- launch() -> browser | nil, err: a fresh Chromium with its own profile.
function _M.launch()
  local dir = scratch.dir("chromium")
  local argv = { _M.BIN }
  for _, f in ipairs(_M.FLAGS) do argv[#argv + 1] = f end
  argv[#argv + 1] = "--user-data-dir=" .. dir.root
  argv[#argv + 1] = "about:blank"
  local p = ext.start(argv)
  coronet.spawn(function() while p.stdout:read(65536) do end end)
  p.stderr:set_timeout(30)
  local url
  while true do
    local line = p.stderr:read_line()
    if not line then break end
    url = line:match("DevTools listening on (ws://%S+)")
    if url then break end
  end
  if not url then
    p:kill("KILL")
    p:wait(5)
    dir:remove()
    return nil, "chromium printed no DevTools address"
  end
  p.stderr:set_timeout(nil)
  coronet.spawn(function() while p.stderr:read(65536) do end end)
  local ws, err = websocket.dial(url, { max_message = 64 * 1024 * 1024,
    timeout = 0 })
  if not ws then return nil, err end
  local b = setmetatable({ proc = p, dir = dir, ws = ws, id = 0,
    waiting = {} }, Browser)
  coronet.spawn(function() b:pump() end)
  return b
end

-- pump hands each answer to the task waiting for its id.
function Browser:pump()
  while true do
    local msg = self.ws:recv()
    if not msg then break end
    local m = cjson.decode(msg)
    local ch = m.id and self.waiting[m.id]
    if ch then ch:send(m, 0) end
  end
  for _, ch in pairs(self.waiting) do ch:close() end
end

-- call(method [, params [, session [, timeout]]]) -> result | nil, err
function Browser:call(method, params, session, timeout)
  self.id = self.id + 1
  local id = self.id
  local ch = coronet.chan(1)
  self.waiting[id] = ch
  self.ws:send(cjson.encode { id = id, method = method,
    params = params or setmetatable({}, { __jsontype = "object" }),
    sessionId = session })
  local m = ch:recv(timeout or 20)
  self.waiting[id] = nil
  if not m then return nil, "no answer to " .. method end
  if m.error then return nil, m.error.message end
  return m.result
end

-- open(url) -> a page (a tab) showing url.
function Browser:open(url)
  local r, err = self:call("Target.createTarget", { url = url })
  if not r then return nil, err end
  local a
  a, err = self:call("Target.attachToTarget", { targetId = r.targetId,
    flatten = true })
  if not a then return nil, err end
  return setmetatable({ b = self, session = a.sessionId,
    target = r.targetId }, Page)
end

-- eval(js) -> the value of the expression js | nil, err
function Page:eval(js)
  local r, err = self.b:call("Runtime.evaluate", { expression = js,
    returnByValue = true }, self.session)
  if not r then return nil, err end
  if r.exceptionDetails then
    return nil, r.exceptionDetails.text .. " " .. js
  end
  return r.result.value
end

-- wait(js [, timeout]) -> the first true value js gives, polling.
function Page:wait(js, timeout)
  local deadline = coronet.now() + (timeout or 15)
  repeat
    local v = self:eval(js)
    if v and v ~= cjson.null then return v end
    coronet.sleep(0.05)
  until coronet.now() > deadline
  return nil
end

function Browser:close()
  self:call("Browser.close", nil, nil, 5)
  self.ws:close()
  if not self.proc:wait(10) then
    self.proc:kill("KILL")
    self.proc:wait(5)
  end
  self.dir:remove()
end

return _M
