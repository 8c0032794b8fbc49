-- t/010-buf.t: the buffer chain's C unit tests (t/c/test_buf.c). The C
-- program prints the TAP itself; this wrapper runs it and passes its status.
local build = os.getenv("CORONET_BUILD")
if not build then
  local root = debug.getinfo(1, "S").source:match("^@(.*)/t/[^/]*$") or "."
  build = root .. "/build"
end
local prog = build .. "/test_buf"
local f = io.open(prog, "r")
if not f then
  print("1..0 # SKIP " .. prog .. " is not built (run make test)")
  os.exit(0)
end
f:close()
io.stdout:flush()
local status = os.execute(prog)
-- LuaJIT returns the raw wait status (or true/false with 5.2 compat)
os.exit((status == 0 or status == true) and 0 or 1)
