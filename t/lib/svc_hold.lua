-- t/lib/svc_hold.lua: a server whose members hold Lua state while
-- connected, for memory-after-load tests and bench/mem-after-load.lua.
-- Each line adds 2000 strings (~100 KB) to the member's state and is
-- answered with the count; "?" answers the Lua heap in bytes; "cycle"
-- runs a whole GC cycle (as one ends while the load is on) and answers ok.
return function(conn)
  local keep = {}
  for line in conn:lines() do
    if line == "?" then
      conn:write(string.format("%d\n", collectgarbage("count") * 1024))
    elseif line == "cycle" then -- the next cycle waits for twice the heap
      collectgarbage()
      conn:write("ok\n")
    else
      for i = 1, 2000 do keep[#keep + 1] = line .. i .. string.rep("x", 40) end
      conn:write(#keep .. "\n")
    end
  end
end
