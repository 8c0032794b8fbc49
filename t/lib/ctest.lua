-- t/lib/ctest.lua: runs one of the C unit tests (t/c/test_NAME.c, built by
-- make test into CORONET_BUILD); the C program prints the TAP itself and
-- the wrapper exits with its status.
--   require("lib.ctest").run("buf")   -- build/test_buf
local _M = {}

function _M.run(name, ...)
  local build = os.getenv("CORONET_BUILD")
  if not build then
    local root = debug.getinfo(2, "S").source:match("^@(.*)/t/[^/]*$") or "."
    build = root .. "/build"
  end
  local prog = build .. "/test_" .. name
  local f = io.open(prog, "r")
  if not f then
    print("1..0 # SKIP " .. prog .. " is not built (run make test)")
    os.exit(0)
  end
  f:close()
  io.stdout:flush()
  local status = os.execute(table.concat({ prog, ... }, " "))
  -- LuaJIT returns the raw wait status (or true/false with 5.2 compat)
  os.exit((status == 0 or status == true) and 0 or 1)
end

return _M
