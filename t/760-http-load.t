-- t/760-http-load.t: short smoke runs of wrk and ab against
-- scripts/hello_http.lua (issue #10): keep-alive and pipelined load is
-- answered with no error and no non-2xx status. Numbers are for
-- bench/http-bench.sh; here only correctness counts.
local t = require "lib.tap"
local server = require "lib.server"
local ext = require "lib.ext"

ext.need(t, "wrk")
ext.need(t, "ab")

local s = server.start { script = "scripts/hello_http.lua" }
local url = "http://" .. s.addr .. "/"

local function wrk(args)
  local argv = { "wrk", "-t1", "-c20", "-d1s", "--timeout", "5s" }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  local code, out = ext.run(argv, nil, 30)
  return code, out, tonumber(out:match("(%d+) requests in")) or 0
end

t.test("wrk, keep-alive: every request answered with 200", function()
  local code, out, n = wrk { url }
  t.is(code, 0, "wrk succeeds")
  t.ok(n > 100, n .. " requests")
  t.ok(not out:find("Non%-2xx") and not out:find("Socket errors"),
    "no error, no other status")
end)

t.test("wrk, 16 deep pipelining: every request answered with 200",
  function()
    local code, out, n = wrk { "-s", server.path("bench/wrk-pipeline.lua"),
      url, "--", "16" }
    t.is(code, 0, "wrk succeeds")
    t.ok(n > 100, n .. " requests")
    t.ok(not out:find("Non%-2xx") and not out:find("Socket errors"),
      "no error, no other status")
  end)

t.test("ab, keep-alive: 2000 requests, none failed", function()
  local code, out = ext.run({ "ab", "-q", "-k", "-n", "2000", "-c", "10",
    url }, nil, 60)
  t.is(code, 0, "ab succeeds")
  t.like(out, "Complete requests:%s+2000", "2000 complete")
  t.like(out, "Failed requests:%s+0\n", "none failed")
  t.like(out, "Keep%-Alive requests:%s+2000", "all on kept-alive connections")
end)

t.is(s:stop(), 0, "the server exits cleanly")
t.done()
