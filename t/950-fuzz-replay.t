-- t/950-fuzz-replay.t: every libFuzzer harness in t/fuzz/ replays its
-- committed seed corpus and its regression inputs (crashes fuzzing found
-- once) without libFuzzer, built by `make test` as build/fuzz_NAME; under
-- `make asan` with the sanitizers.
local t = require "lib.tap"
local server = require "lib.server"
local process = require "coronet.process"
local util = require "lib.util"
local fs = require "coronet.fs"

local root = server.root
local build = os.getenv("CORONET_BUILD") or (root .. "/build")

-- sh(cmd) runs a shell command; returns its exit code and its output.
local function sh(cmd)
  local p = assert(process.spawn { "sh", "-c", cmd, stdout = "pipe",
    stderr = "pipe" })
  local outs = {}
  local join = util.spawn_wg(function() return util.read_all(p.stderr) end)
  outs[1] = util.read_all(p.stdout)
  local code = p:wait(120)
  if not code then
    p:kill("KILL")
    p:wait()
  end
  return code, outs[1], join()
end

local _, names = sh("cd '" .. root .. "/t/fuzz' && for f in fuzz_*.c; do "
  .. "n=${f#fuzz_}; echo ${n%.c}; done")
local list = {}
for n in names:gmatch("%S+") do
  if n ~= "*" then list[#list + 1] = n end
end

for _, name in ipairs(list) do
  t.test("fuzz harness " .. name .. " replays its corpus and regressions",
    function()
    local bin = build .. "/fuzz_" .. name
    if not fs.stat(bin) then
      return t.fail(bin .. " is built", "  run make test")
    end
    local cmd = "exec '" .. bin .. "'"
    for _, d in ipairs { "corpus", "regress" } do
      local path = root .. "/t/fuzz/" .. d .. "/" .. name
      if fs.stat(path) then cmd = cmd .. " '" .. path .. "'" end
    end
    local code, out, err = sh(cmd)
    local n = util.count_lines(out:gsub("1%.%.%d+\n", ""))
    if not t.is(code, 0, name .. ": every input passes") then
      t.diag(out:sub(-2000))
      t.diag(err:sub(-3000))
    end
    t.cmp_ok(n, ">", 0, name .. ": the corpus is not empty")
  end, 300)
end
if #list == 0 then t.fail("t/fuzz has harnesses") end
t.done()
