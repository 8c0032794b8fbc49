-- coronet.net: outbound connections and listeners opened by scripts.
-- Names resolve on libuv's thread pool, never on the loop.
local C = require "coronet.c.net"
local coronet = require "coronet"
local tls = require "coronet.tls"
local lifecycle = require "coronet.lifecycle"
local type, error = type, error
local wait, now, argcheck = coronet.wait, coronet.now, coronet.argcheck

local _M = { _VERSION = "0.1.0" }

local dial

-- dial_tls dials plain, the TLS client handshake on top (tls://addr).
local function dial_tls(addr, plain, opts)
  opts = opts or {}
  local deadline = opts.timeout and now() + opts.timeout
  local host = plain:match("^%[(.*)%]:%d+$") or plain:match("^(.*):%d+$")
  if plain:find("^unix:") then host = nil end
  local co = tls.client_opts(opts, host, 2, "dial") -- raises before dialing
  local c, err = dial(plain, opts)
  if not c then
    local pre = "dial " .. plain
    if err:sub(1, #pre) == pre then
      err = "dial " .. addr .. err:sub(#pre + 1)
    end
    return nil, err
  end
  local ok
  ok, err = tls.client_start(c, co, deadline)
  if ok then return c end
  c:close()
  return nil, "dial " .. addr .. ": " .. err
end

-- dial(addr [, opts]) -> conn | nil, err
-- err names the address: "dial 127.0.0.1:1: connection refused".
-- addr is "host:port", "[ipv6]:port" or "unix:PATH"; opts.timeout bounds
-- the lookup and the connect (and a TLS handshake), in seconds. The
-- connection is the same kind of object as an accepted one.
-- "tls://" before addr makes it TLS, returned once the handshake is done:
-- the certificate is checked against the system's CA store (opts.ca, a
-- file or PEM text, replaces it) and the host name (opts.sni replaces
-- it; it is also the name sent), unless opts.verify is false;
-- opts.alpn = {"http/1.1"} offers application protocols. A failed check
-- says why: "dial tls://h:443: tls: certificate verify failed: hostname
-- mismatch".
function _M.dial(addr, opts)
  argcheck(addr, "string", 1, "dial")
  argcheck(opts, "table?", 2, "dial")
  local plain = addr:match("^tls://(.*)$")
  if plain then return dial_tls(addr, plain, opts) end
  local timeout = opts and opts.timeout
  local c, err = C.dial(addr, timeout)
  while c == false do
    wait("dial")
    c, err = C.dial_wait(err, timeout)
  end
  if c then return c end
  if not err:find(addr, 1, true) then err = "dial " .. addr .. ": " .. err end
  return nil, err
end
dial = _M.dial

-- lookup(host [, timeout]) -> {ip, ...} | nil, err
-- Resolves a host name (or a numeric address) on libuv's thread pool to
-- its numeric addresses ("127.0.0.1", "::1"), as getaddrinfo orders them.
-- err names the host: "lookup nowhere.invalid: unknown node or service".
function _M.lookup(host, timeout)
  argcheck(host, "string", 1, "lookup")
  local r, err = C.lookup(host, timeout)
  while r == false do
    wait("lookup")
    r, err = C.lookup_wait(err, timeout)
  end
  if not r then return nil, "lookup " .. host .. ": " .. err end
  return r
end
local lookup = _M.lookup

-- listen(addr, handler [, opts]) -> listener | nil, err
-- Serves addr with handler(conn), each connection its own task. addr is
-- "host:port" (port 0 for any free port), "[ipv6]:port" or "unix:PATH";
-- a host name is looked up on the thread pool (the task waits) and the
-- first address it gives is served. listener:addr() gives the bound
-- address; listener:close() stops accepting. err names addr:
-- "listen 127.0.0.1:80: permission denied".
-- A listener opened by the script's main chunk belongs to that version of
-- the script: a reload whose main chunk listens on the same address takes
-- the socket over (no connection is refused meanwhile), one that does not
-- closes it, and a listen that fails in a main chunk fails the reload.
local function listen(addr, handler, version, conf)
  local l, err, host = C.listen(addr, handler, version, conf)
  if l then return l end
  if not host then return nil, err end
  local ips, lerr = lookup(host)
  if not ips then return nil, "listen " .. addr .. ": " .. lerr end
  local ip = ips[1]
  local port = addr:match(":(%d+)$")
  local numeric = (ip:find(":", 1, true) and "[" .. ip .. "]" or ip) .. ":"
    .. port
  l, err = C.listen(numeric, handler, version, conf)
  if l then return l end
  return nil, (err:gsub("^listen [^ ]+:", "listen " .. addr .. " ("
    .. numeric .. "):", 1))
end

-- "tls://" before addr serves TLS with opts as coronet.tls.server takes
-- them: {cert =, key =} (files or PEM text), or certs = {{cert =, key =},
-- ...} chosen by SNI, alpn = {"http/1.1"}, handshake_timeout = 10. The
-- handler gets its connection at once; reads wait for the handshake.
-- listener:addr() then starts with "tls://" too.
function _M.listen(addr, handler, opts)
  argcheck(addr, "string", 1, "listen")
  argcheck(handler, "function", 2, "listen")
  local conf, err
  local plain = addr:match("^tls://(.*)$")
  if plain then
    conf, err = tls.server(opts, 3, "listen")
    if not conf then return nil, "listen " .. addr .. ": " .. err end
  end
  lifecycle.own(handler)
  local l
  l, err = listen(plain or addr, handler, lifecycle.main_version(), conf)
  if not l then
    if plain then err = err:gsub("^listen ", "listen tls://", 1) end
    lifecycle.listen_failed(err)
  end
  return l, err
end

return _M
