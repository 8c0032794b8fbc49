-- t/020-cli.t: the command line: --help, --version, the startup line, and
-- every startup error (bad option, bad address, port in use, missing
-- script, syntax error, no handler) as a non-zero exit with one clear
-- line; `--run` exit codes.
local t = require "lib.tap"
local server = require "lib.server"
local util = require "lib.util"
local net = require "coronet.net"

local echo = server.path("scripts/echo.lua")

-- lines(s) splits stderr into its non-empty lines.
local function lines(s)
  local out = {}
  for l in (s or ""):gmatch("[^\n]+") do out[#out + 1] = l end
  return out
end

-- fails_with(args, pattern, what) checks a run that must fail at startup:
-- non-zero exit, exactly one line on stderr, matching pattern.
local function fails_with(args, pattern, what)
  local code, err, out = server.run(args, 20)
  local ls = lines(err)
  t.isnt(code, 0, what .. ": non-zero exit")
  t.is(#ls, 1, what .. ": exactly one line on stderr")
  if #ls ~= 1 then t.diag(err) end
  t.like(ls[1], pattern, what .. ": the line names the culprit")
  t.is(out, "", what .. ": nothing on stdout")
  return code, ls[1]
end

t.test("--help prints the usage to stdout and exits 0", function()
  local code, err, out = server.run { "--help" }
  t.is(code, 0, "exit 0")
  t.like(out, "^usage: coronet %[options%] SCRIPT", "usage first")
  t.like(out, "%-%-listen", "mentions --listen")
  t.is(err, "", "nothing on stderr")
end)

t.test("--version names coronet, LuaJIT and libuv", function()
  local code, _, out = server.run { "-V" }
  t.is(code, 0, "exit 0")
  t.like(out, "^coronet %d+%.%d+%.%d+ %(LuaJIT [^,]+, libuv %d", "versions")
end)

t.test("a server on port 0 prints the real port in its startup line",
  function()
    local s = server.start { script = echo }
    t.like(s.addr, "^127%.0%.0%.1:%d+$", "the address has a port")
    t.isnt(s.addr, "127.0.0.1:0", "and it is not 0")
    t.like(s:log(), "coronet: listening on 127%.0%.0%.1:%d+", "startup line")
    local c = s:connect()
    t.ok(c:write("ping"), "the port accepts")
    t.is(c:read_full(4), "ping", "and serves")
    c:close()
    t.is(s:stop(), 0, "SIGTERM: exit 0")
  end)

t.test("a server listens on every --listen address: unix, IPv6, IPv4",
  function()
    local path = "/tmp/coronet-test-" .. util.pid() .. "-cli.sock"
    os.remove(path)
    local v6 = net.listen("[::1]:0", function() end)
    if v6 then v6:close() end
    local opts = { "-l", "127.0.0.1:0" }
    if v6 then opts = { "-l", "[::1]:0", "-l", "127.0.0.1:0" } end
    local s = server.start { script = echo, listen = "unix:" .. path,
      opts = opts }
    t.is(s.addr, "unix:" .. path, "the first startup line is the unix path")
    local addrs = { s.addr }
    if v6 then
      local l6 = s:wait_log("listening on %[::1%]:%d+ %(1 worker%)$")
      t.ok(l6, "a startup line for [::1]")
      addrs[#addrs + 1] = l6 and l6:match("listening on (%S+)")
    end
    local l4 = s:wait_log("listening on 127%.0%.0%.1:%d+ %(1 worker%)$")
    t.ok(l4, "a startup line for 127.0.0.1")
    addrs[#addrs + 1] = l4 and l4:match("listening on (%S+)")
    for _, a in ipairs(addrs) do
      local c = assert(net.dial(a, { timeout = 10 }))
      c:set_timeout(10)
      c:write("via " .. a .. "\n")
      t.is(c:read_line(), "via " .. a, "echo on " .. a)
      c:close()
    end
    t.is(s:stop(), 0, "exit 0")
    -- a stale socket file does not stop the next server
    local s2 = server.start { script = echo, listen = "unix:" .. path }
    local c = assert(net.dial("unix:" .. path, { timeout = 10 }))
    c:set_timeout(10)
    c:write("again\n")
    t.is(c:read_line(), "again", "a second server takes the path over")
    c:close()
    t.is(s2:stop(), 0, "exit 0")
    local r = os.execute("test -e " .. path) -- io.open fails on sockets
    t.ok(not (r == 0 or r == true), "the socket file is removed at exit")
    os.remove(path)
  end)

t.test("--workers 2 serves on one address", function()
  local s = server.start { script = echo, opts = { "--workers", "2" } }
  local good = 0
  for i = 1, 20 do
    local c = s:connect()
    c:write(i .. "\n")
    if c:read_line() == tostring(i) then good = good + 1 end
    c:close()
  end
  t.is(good, 20, "20 connections served")
  t.like(s.lines[#s.lines], "listening on 127%.0%.0%.1:%d+ %(2 workers%)$",
    "the startup line says how many workers run") -- issue #13
  t.is(s:stop(), 0, "exit 0")
end)

t.test("an unknown option is a usage error", function()
  local code = fails_with({ "--bogus", echo },
    "^coronet: unknown option '%-%-bogus' %(see coronet %-%-help%)$",
    "--bogus")
  t.is(code, 2, "usage errors exit 2")
end)

t.test("an option without its value is a usage error", function()
  fails_with({ echo, "--listen" }, "^coronet: %-%-listen needs an address",
    "--listen without a value")
end)

t.test("a bad worker count is a usage error", function()
  fails_with({ "-w", "0", echo }, "^coronet: bad worker count '0'", "-w 0")
  fails_with({ "--workers=lots", echo }, "^coronet: bad worker count 'lots'",
    "--workers=lots")
end)

t.test("no script at all is a usage error", function()
  fails_with({}, "^coronet: no script given", "no script")
end)

t.test("--listen together with --run is refused", function()
  fails_with({ "-l", "127.0.0.1:0", "--run", echo },
    "^coronet: %-%-listen does not go with %-%-run", "--listen with --run")
end)

t.test("a bad listen address names the address", function()
  for _, a in ipairs { "nonsense", "127.0.0.1:99999", "127.0.0.1:", "[::1",
    "1:2:3", "unix:" } do
    fails_with({ echo, "--listen", a },
      "^coronet: bad listen address '" .. a:gsub("%p", "%%%0") .. "'",
      "address " .. a)
  end
end)

-- issue #13: "-l ../my/kv.lua" took the script for the address and then
-- said "no script given"; a port over 65535 said nothing of the port
t.test("a script given to -l, or a port out of range, is named as such",
  function()
    local code = fails_with({ "-l", "../my/kv.lua" },
      "^coronet: bad listen address '%.%./my/kv%.lua': a script%? %-l takes "
      .. "HOST:PORT", "a script after -l")
    t.is(code, 2, "a usage error: status 2")
    fails_with({ echo, "-l", "127.0.0.1:70000" },
      "^coronet: bad listen address '127%.0%.0%.1:70000': port 70000 out of "
      .. "range %(0%.%.65535%)", "port 70000")
  end)

t.test("a port in use names the address and the reason", function()
  local l = assert(net.listen("127.0.0.1:0", function(c) c:close() end))
  local addr = l:addr()
  fails_with({ echo, "--listen", addr },
    "^coronet: listen " .. addr:gsub("%p", "%%%0") .. ": address already in use$",
    "port in use")
  l:close()
end)

t.test("a missing script names the file", function()
  fails_with({ "/nonexistent/coronet-test.lua", "-l", "127.0.0.1:0" },
    "^coronet: cannot open script /nonexistent/coronet%-test%.lua: no such file",
    "missing script")
end)

t.test("a directory as the script is refused", function()
  fails_with({ "/tmp", "-l", "127.0.0.1:0" },
    "^coronet: cannot open script /tmp: not a regular file", "a directory")
end)

t.test("a script with a syntax error names file:line", function()
  local path = util.tmpfile("local x = 1\nlocal y =\nreturn function() end end\n")
  fails_with({ path, "-l", "127.0.0.1:0" },
    "^coronet: " .. path:gsub("%p", "%%%0") .. ":3: ", "syntax error")
end)

t.test("a script that returns no handler says so", function()
  local p1 = util.tmpfile("return 42\n")
  fails_with({ p1, "-l", "127.0.0.1:0" },
    "^coronet: " .. p1:gsub("%p", "%%%0")
    .. ": the script must return a handler function %(got number%)$",
    "returns a number")
  local p2 = util.tmpfile("local x = 1\n")
  fails_with({ p2, "-l", "127.0.0.1:0" },
    "got nothing%)$", "returns nothing")
end)

t.test("a script that raises in its main chunk names file:line", function()
  local path = util.tmpfile("local x\nx.y = 1\nreturn function() end\n")
  local code, err = server.run({ path, "-l", "127.0.0.1:0" }, 20)
  t.isnt(code, 0, "non-zero exit")
  t.like(err, "^coronet: " .. path:gsub("%p", "%%%0") .. ":2: attempt to index",
    "the first line names file:line")
  t.ok(not err:find("listening on"), "it never listened")
end)

t.test("a script's main chunk may block before it returns its handler",
  function()
    local path = util.tmpfile([[
local coronet = require "coronet"
coronet.sleep(0.05)
local greeting = "hi\n"
return function(conn) conn:write(greeting) end
]])
    local s = server.start { script = path }
    local c = s:connect()
    t.is(c:read_line(), "hi", "the handler runs after the main chunk slept")
    c:close()
    t.is(s:stop(), 0, "exit 0")
  end)

t.test("--run: a script that ends normally exits 0", function()
  local path = util.tmpfile("print('hello', ...)\n")
  local code, err, out = server.run { "--run", path, "a", "b c" }
  t.is(code, 0, "exit 0")
  t.is(out, "hello\ta\tb c\n", "the script got its arguments in ...")
  t.is(err, "", "nothing on stderr")
end)

t.test("--run: arg holds the script and its arguments", function()
  local path = util.tmpfile("print(arg[0], arg[1], arg[2], #arg)\n")
  local code, _, out = server.run { "--run", path, "--x", "-l" }
  t.is(code, 0, "exit 0")
  t.is(out, path .. "\t--x\t-l\t2\n", "options after the script are its own")
end)

t.test("--run: os.exit(3) exits with status 3", function()
  local path = util.tmpfile([[
local coronet = require "coronet"
coronet.spawn(function() coronet.sleep(10) end) -- must not hold the exit
coronet.sleep(0.01)
os.exit(3)
print("not reached")
]])
  local code, err, out = server.run { "--run", path }
  t.is(code, 3, "exit 3")
  t.is(out, "", "the code after os.exit did not run")
  t.is(err, "", "nothing on stderr")
end)

t.test("--run: the program ends with its main chunk, tasks or not", function()
  local path = util.tmpfile([[
local coronet = require "coronet"
coronet.spawn(function() coronet.sleep(30) end)
coronet.sleep(0.01)
print("main done")
]])
  local t0 = require("coronet").now()
  local code, err, out = server.run({ "--run", path }, 20)
  t.is(code, 0, "exit 0")
  t.is(out, "main done\n", "the main chunk ran to its end")
  t.cmp_ok(require("coronet").now() - t0, "<", 10, "without waiting for the task")
end)

t.test("--run: os.exit(true) is 0 and os.exit(false) is 1", function()
  local p1 = util.tmpfile("os.exit(true)\n")
  local p2 = util.tmpfile("os.exit(false)\n")
  t.is((server.run { "--run", p1 }), 0, "os.exit(true)")
  t.is((server.run { "--run", p2 }), 1, "os.exit(false)")
end)

t.test("--run: os.exit from a spawned task ends the program", function()
  local path = util.tmpfile([[
local coronet = require "coronet"
coronet.spawn(function() coronet.sleep(0.01); os.exit(7) end)
coronet.sleep(30)
]])
  local code = server.run({ "--run", path }, 20)
  t.is(code, 7, "exit 7 from the task")
end)

t.test("--run: an error exits 1 and names file:line", function()
  local path = util.tmpfile("local a = 1\nerror('boom here')\n")
  local code, err = server.run { "--run", path }
  t.is(code, 1, "exit 1")
  t.like(err, "^coronet: " .. path:gsub("%p", "%%%0") .. ":2: boom here",
    "the message names file:line")
  t.like(err, "stack traceback", "with a traceback")
end)

-- issue #13: error({code = 42}) logged "stack traceback:" and no message
t.test("--run: an error that is a table shows its fields", function()
  local path = util.tmpfile("error({ code = 42 })\n")
  local code, err = server.run { "--run", path }
  t.is(code, 1, "exit 1")
  t.like(err, "^coronet: {code = 42}\nstack traceback:", "the value, then "
    .. "the traceback")
end)

t.test("--run: a syntax error exits 1 and names file:line", function()
  local path = util.tmpfile("x = = 1\n")
  local code, err = server.run { "--run", path }
  t.is(code, 1, "exit 1")
  t.like(err, "^coronet: " .. path:gsub("%p", "%%%0") .. ":1: ", "file:line")
end)

t.test("--run: an error in a spawned task is logged and the program goes on",
  function()
    local path = util.tmpfile([[
local coronet = require "coronet"
coronet.spawn(function()
  local t = nil
  return t.field
end)
coronet.sleep(0.05)
print("still here")
]])
    local code, err, out = server.run { "--run", path }
    t.is(code, 0, "exit 0")
    t.is(out, "still here\n", "the main chunk went on")
    local n = 0
    for _ in err:gmatch("attempt to index") do n = n + 1 end
    t.is(n, 1, "the error is logged once")
    t.like(err, path:gsub("%p", "%%%0") .. ":4:", "naming file:line")
    t.like(err, "stack traceback", "with a traceback")
  end)

t.test("the binary finds its modules from any working directory", function()
  local process = require "coronet.process"
  local path = util.tmpfile('print(require("coronet.io")._VERSION)\n')
  local bin = server.bin
  if bin:sub(1, 1) ~= "/" then bin = os.getenv("PWD") .. "/" .. bin end
  local p = assert(process.spawn { bin, "--run", path, cwd = "/",
    stdout = "pipe", stderr = "pipe" })
  p.stdout:set_timeout(10)
  local out = p.stdout:read_line()
  t.like(out, "^%d+%.%d+%.%d+$", "run from /, coronet.io loads")
  t.is((p:wait(10)), 0, "exit 0")
end)

t.test("an installed copy finds its modules under PREFIX/share/lua/5.1",
  function()
    local prefix = "/tmp/coronet-test-" .. util.pid() .. "-prefix"
    local rc = os.execute(string.format(
      "rm -rf %s && mkdir -p %s/bin %s/share/lua/5.1/coronet && "
      .. "cp %s %s/bin/coronet && cp %s/*.lua %s/share/lua/5.1/coronet/",
      prefix, prefix, prefix, server.bin, prefix,
      server.path("lua/coronet"), prefix))
    t.ok(rc == 0 or rc == true, "copied to " .. prefix)
    local path = util.tmpfile('print(require("coronet")._VERSION)\n')
    local saved = server.bin
    server.bin = prefix .. "/bin/coronet"
    local code, err, out = server.run { "--run", path }
    server.bin = saved
    t.is(code, 0, "exit 0")
    t.like(out, "^%d+%.%d+%.%d+\n$", "the installed copy loads coronet")
    if code ~= 0 then t.diag(err) end
    os.execute("rm -rf " .. prefix)
  end)

t.test("the same startup error twice gives the same line (no state)",
  function()
    local _, a = fails_with({ "--nope", echo }, "unknown option", "first")
    local _, b = fails_with({ "--nope", echo }, "unknown option", "second")
    t.is(a, b, "identical")
  end)

util.cleanup()
t.done()
