-- bench/wrk-pipeline.lua: wrk sends requests pipelined, depth deep
-- (default 16): wrk -s bench/wrk-pipeline.lua URL -- 16
local depth = 16

function init(args)
  depth = tonumber(args[1]) or depth
  local r = {}
  for i = 1, depth do r[i] = wrk.format(nil) end
  req = table.concat(r)
end

function request()
  return req
end
