-- t/lib/svc_fail.lua: a line service whose handler fails on request, for
-- t/240-handler-errors.t. Each line gets "echo: LINE" back, except:
--   boom       raises a string error
--   nil        indexes a nil value (a runtime error)
--   table      raises a table
--   recurse    recurses without end (stack overflow)
--   badtostring raises a table whose __tostring raises
--   oddtostring raises a table whose __tostring returns a table
--   closeboom  closes the connection, then raises
--   spawnboom  a task spawned by the handler raises; the handler goes on
--   stats      replies with coronet.stats()
local coronet = require "coronet"

local function fail_nil()
  local t = nil
  return t.field -- MARK:nil
end

return function(conn)
  conn:set_timeout(30)
  for line in conn:lines() do
    if line == "boom" then
      error("boom requested") -- MARK:boom
    elseif line == "nil" then
      fail_nil()
    elseif line == "table" then
      error({ code = 1 })
    elseif line == "recurse" then
      local function deeper(n) return 1 + deeper(n + 1) end
      deeper(1) -- MARK:recurse
    elseif line == "badtostring" then
      error(setmetatable({}, { __tostring = function()
        error("tostring fails too")
      end }))
    elseif line == "oddtostring" then
      error(setmetatable({}, { __tostring = function() return {} end }))
    elseif line == "closeboom" then
      conn:close()
      coronet.sleep(0.02)
      error("after close") -- MARK:closeboom
    elseif line == "spawnboom" then
      coronet.spawn(function()
        error("in a spawned task") -- MARK:spawnboom
      end)
      conn:write("spawned\n")
    elseif line == "stats" then
      local s = coronet.stats()
      conn:write(string.format("connections=%d tasks=%d blocks=%d\n",
        s.connections, s.tasks, s.blocks))
    else
      conn:write("echo: " .. line .. "\n")
    end
  end
end
