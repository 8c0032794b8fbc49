-- ping: measures an echo server's latency from the client side, and
-- prints percentiles and errors.
--
--   coronet --run scripts/ping.lua ADDR [options]
--
--   ADDR             HOST:PORT, [IPV6]:PORT or unix:PATH of an echo server
--                    (coronet scripts/echo.lua --listen 127.0.0.1:7000)
--   -n, --count N    pings in all (default 100)
--   -c, --conns N    connections working at once (default 1)
--   -s, --size N     bytes per ping (default 64)
--   -t, --timeout S  seconds each dial, write and read may take (default 5)
--   -k, --keep       keep each connection open for all its pings, and time
--                    only the round trips; by default every ping dials a
--                    new connection, and is timed from the dial to the echo
--   -q, --quiet      print only the summary
--   -h, --help
--
-- Every reply is checked byte for byte. The exit status is 0 when every
-- ping succeeded, 1 when some failed, 2 on bad arguments.
local coronet = require "coronet"
local net = require "coronet.net"

local format, rep, sub, sort, concat = string.format, string.rep,
  string.sub, table.sort, table.concat
local floor, ceil, tonumber, stdout, stderr = math.floor, math.ceil,
  tonumber, io.stdout, io.stderr
local now = coronet.now

local USAGE = [[
usage: coronet --run scripts/ping.lua ADDR [-n COUNT] [-c CONNS] [-s SIZE]
                                          [-t TIMEOUT] [-k] [-q]
  ADDR     HOST:PORT, [IPV6]:PORT or unix:PATH of an echo server
  -n N     pings in all (default 100)
  -c N     connections working at once (default 1)
  -s N     bytes per ping (default 64)
  -t S     seconds each dial, write and read may take (default 5)
  -k       keep connections open; time round trips only
  -q       print only the summary
]]

local function usage(msg)
  if msg then stderr:write("ping: ", msg, "\n") end
  stderr:write(USAGE)
  os.exit(2)
end

-- parse(args) -> options
local function parse(args)
  local o = { count = 100, conns = 1, size = 64, timeout = 5 }
  local names = { ["-n"] = "count", ["--count"] = "count",
    ["-c"] = "conns", ["--conns"] = "conns", ["-s"] = "size",
    ["--size"] = "size", ["-t"] = "timeout", ["--timeout"] = "timeout" }
  local i = 1
  while i <= #args do
    local a = args[i]
    local key = names[a]
    if a == "-h" or a == "--help" then
      stdout:write(USAGE)
      os.exit(0)
    elseif a == "-k" or a == "--keep" then
      o.keep = true
    elseif a == "-q" or a == "--quiet" then
      o.quiet = true
    elseif key then
      local v = tonumber(args[i + 1])
      if not v or v <= 0 or (key ~= "timeout" and v % 1 ~= 0) then
        usage(a .. " needs a positive " .. (key == "timeout" and "number"
          or "integer") .. ", got " .. tostring(args[i + 1]))
      end
      o[key] = v
      i = i + 1
    elseif sub(a, 1, 1) == "-" and #a > 1 then
      usage("unknown option " .. a)
    elseif o.addr then
      usage("one address only (got " .. o.addr .. " and " .. a .. ")")
    else
      o.addr = a
    end
    i = i + 1
  end
  if not o.addr then usage("no address given") end
  if o.conns > o.count then o.conns = o.count end
  return o
end

-- ping_once sends one payload on c and checks the echo. -> true | nil, err
local function ping_once(c, payload)
  local n, err = c:write(payload)
  if not n then return nil, "write: " .. err end
  local got, rerr = c:read_full(#payload)
  if not got then return nil, "read: " .. rerr end
  if got ~= payload then return nil, "reply differs from what was sent" end
  return true
end

local function percentile(sorted, p)
  if #sorted == 0 then return 0 end
  return sorted[math.max(1, ceil(#sorted * p))]
end

local function main(args)
  local o = parse(args)
  local payload = sub(rep("coronet ping 0123456789 ", ceil(o.size / 24)), 1,
    o.size)
  local times, errors, errs_seen = {}, 0, {}
  local next_ping = 0
  local wg = coronet.waitgroup()

  local function record(t0, ok, err, seq)
    if ok then
      times[#times + 1] = now() - t0
      if not o.quiet then
        stdout:write(format("%d bytes from %s: seq=%d time=%.3f ms\n",
          o.size, o.addr, seq, (now() - t0) * 1e3))
      end
    else
      errors = errors + 1
      errs_seen[err] = (errs_seen[err] or 0) + 1
      if not o.quiet then
        stdout:write(format("seq=%d error: %s\n", seq, err))
      end
    end
  end

  local function take()
    if next_ping >= o.count then return nil end
    next_ping = next_ping + 1
    return next_ping
  end

  local function dial()
    local c, err = net.dial(o.addr, { timeout = o.timeout })
    if c then c:set_timeout(o.timeout) end
    return c, err
  end

  local function worker()
    local c
    while true do
      local seq = take()
      if not seq then break end
      local t0 = now()
      local ok, err
      if o.keep then
        if not c then
          c, err = dial()
          t0 = now()
        end
        if c then
          ok, err = ping_once(c, payload)
          if not ok then
            c:close()
            c = nil
          end
        end
      else
        local pc
        pc, err = dial()
        if pc then
          ok, err = ping_once(pc, payload)
          pc:close()
        end
      end
      record(t0, ok, err, seq)
    end
    if c then c:close() end
    wg:done()
  end

  local start = now()
  for _ = 1, o.conns do
    wg:add(1)
    coronet.spawn(worker)
  end
  wg:wait()
  local elapsed = now() - start

  sort(times)
  local ms = function(s) return format("%.3f", s * 1e3) end
  stdout:write(format("--- %s ping: %s ---\n", o.addr, o.keep
    and "round trips on open connections" or "dial, round trip, close"))
  stdout:write(format("%d pings, %d ok, %d errors, %d at once, %.3f s, "
    .. "%.0f pings/s\n", o.count, #times, errors, o.conns, elapsed,
    o.count / elapsed))
  if #times > 0 then
    local sum = 0
    for i = 1, #times do sum = sum + times[i] end
    stdout:write(format("latency ms: min %s p50 %s p90 %s p99 %s max %s "
      .. "avg %s\n", ms(times[1]), ms(percentile(times, 0.5)),
      ms(percentile(times, 0.9)), ms(percentile(times, 0.99)),
      ms(times[#times]), ms(sum / #times)))
  end
  if errors > 0 then
    local lines = {}
    for err, n in pairs(errs_seen) do
      lines[#lines + 1] = format("  %d x %s", n, err)
    end
    sort(lines)
    stdout:write("errors:\n", concat(lines, "\n"), "\n")
  end
  stdout:flush()
  os.exit(errors == 0 and 0 or 1)
end

main({ ... })
