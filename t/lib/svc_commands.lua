-- t/lib/svc_commands.lua: the command loop of the t/lib/svc_*.lua test
-- servers, which require it as "svc_commands" (they run from t/lib). A
-- command line is words: the first names a function of the commands
-- table, called with the connection and the other words.
--   return svc_commands.one(commands, W) -- greets with W, runs one line
local unpack = unpack

local _M = {}

-- run(conn, commands, line) runs the command line names and returns what
-- it returned; an unknown one gets "?".
function _M.run(conn, commands, line)
  local words = {}
  for w in line:gmatch("%S+") do words[#words + 1] = w end
  local f = commands[words[1]]
  if not f then
    conn:write("?\n")
    return nil
  end
  return f(conn, unpack(words, 2))
end

-- one(commands, greeting) -> a handler that writes the greeting line,
-- then runs the one command line the client sends.
function _M.one(commands, greeting)
  return function(conn)
    conn:write(greeting .. "\n")
    local line = conn:read_line()
    if line then _M.run(conn, commands, line) end
  end
end

return _M
