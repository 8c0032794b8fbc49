-- coronet.tls: TLS configurations, and the TLS methods every connection
-- has: conn:starttls(opts) and conn:tls(). net.dial("tls://...") and
-- net.listen("tls://...") are built of the same pieces. See
-- host/lcn_tls.c and host/cn_tls.c.
local C = require "coronet.c.tls"
local conn = require "coronet.conn"
local coronet = require "coronet"
local type, error, ipairs, tostring = type, error, ipairs, tostring
local setmetatable = setmetatable
local concat = table.concat
local wait, now = coronet.wait, coronet.now

local _M = { _VERSION = "0.1.0" }

local function bad(n, fn, msg)
  error("bad argument #" .. n .. " to '" .. fn .. "' (" .. msg .. ")", 3)
end

local function check_string(v, n, fn, what)
  if type(v) ~= "string" then
    bad(n, fn, what .. ": string expected, got " .. type(v))
  end
  return v
end

-- alpn_list turns {"h2", "http/1.1"} (or "h2,http/1.1") into
-- "h2,http/1.1"; names are 1 to 255 bytes.
local function alpn_list(alpn, n, fn)
  if alpn == nil then return nil end
  if type(alpn) == "string" then return alpn_list({ alpn }, n, fn) end
  if type(alpn) ~= "table" then
    bad(n, fn, "alpn: table or string expected, got " .. type(alpn))
  end
  for i, p in ipairs(alpn) do
    check_string(p, n, fn, "alpn[" .. i .. "]")
    for name in (p .. ","):gmatch("([^,]*),") do
      if #name < 1 or #name > 255 then
        bad(n, fn, "alpn: protocol names are 1 to 255 bytes")
      end
    end
  end
  return concat(alpn, ",")
end

local function build(o)
  local f, err = C.conf(o)
  while f == false do
    wait("tls")
    f, err = C.conf_wait(err)
  end
  return f, err
end

-- server(opts [, n, fn]) -> conf | nil, err
-- A server's configuration: opts.cert and opts.key (files, or PEM text),
-- or opts.certs = {{cert =, key =}, ...} for several certificates chosen
-- by SNI (the first one when the client asks for no name of theirs);
-- opts.alpn, the protocols it speaks in preference order ({"http/1.1"});
-- opts.handshake_timeout (seconds, default 10); opts.ticket_rotation
-- (seconds a session ticket key encrypts, default 3600). The files are
-- read on the thread pool; SIGHUP reads them again.
function _M.server(opts, n, fn)
  n, fn = n or 1, fn or "server"
  if type(opts) ~= "table" then
    bad(n, fn, "table with cert and key expected, got " .. type(opts))
  end
  local certs, keys = {}, {}
  for i, p in ipairs(opts.certs or { opts }) do
    if type(p) ~= "table" then
      bad(n, fn, "certs[" .. i .. "]: table expected")
    end
    certs[i] = check_string(p.cert, n, fn, "cert")
    keys[i] = check_string(p.key, n, fn, "key")
  end
  return build { server = true, cert = certs, key = keys,
    alpn = alpn_list(opts.alpn, n, fn),
    handshake_timeout = opts.handshake_timeout,
    ticket_rotation = opts.ticket_rotation }
end
local server = _M.server

-- client([ca]) -> conf | nil, err: the CA store a client checks servers
-- against: ca a file or PEM text, nil the system's. Built once per
-- process and kept.
function _M.client(ca)
  return build { ca = ca }
end

local start, handshake, info = C.start, C.handshake, C.info

-- finish waits for c's handshake, at most until deadline (now() units).
local function finish(c, deadline)
  local timeout = deadline and deadline - now()
  if timeout and timeout <= 0 then return nil, "tls: handshake timeout" end
  local ok, err = handshake(c, timeout)
  while ok == false do
    wait("conn:tls")
    ok, err = handshake(c, timeout)
  end
  return ok, err
end

local function run_start(c, f, name, alpn, verify)
  local ok, err = start(c, f, name, alpn, verify)
  while ok == false do
    wait("conn:starttls")
    ok, err = start(c, f, name, alpn, verify)
  end
  return ok, err
end

-- client_opts(opts, name, n, fn) -> what a client asks for: the server
-- named opts.sni or name, opts.ca, opts.alpn, opts.verify (false: accept
-- any certificate), as net.dial takes them. Raises on misuse, naming
-- argument n of fn.
function _M.client_opts(opts, name, n, fn)
  local sni = opts.sni
  if sni ~= nil then name = check_string(sni, n, fn, "sni") end
  local verify = opts.verify ~= false
  if verify and not name then
    bad(n, fn, "a name to check the certificate against (sni) or verify "
      .. "= false")
  end
  if opts.ca ~= nil then check_string(opts.ca, n, fn, "ca") end
  return { name = name, ca = opts.ca, verify = verify,
    alpn = alpn_list(opts.alpn, n, fn) }
end

-- client_start(c, co [, deadline]) -> true | nil, err
-- Makes c a TLS client as co (from client_opts) says and waits for the
-- handshake, at most until deadline (now() units).
function _M.client_start(c, co, deadline)
  local f, err = _M.client(co.ca)
  if not f then return nil, err end
  local ok
  ok, err = run_start(c, f, co.name, co.alpn, co.verify)
  if not ok then return nil, err end
  return finish(c, deadline)
end

local servers = setmetatable({}, { __mode = "v" }) -- options -> conf

local function server_key(opts)
  local parts = { tostring(opts.alpn), tostring(opts.handshake_timeout),
    tostring(opts.ticket_rotation) }
  for _, p in ipairs(opts.certs or { opts }) do
    if type(p) == "table" then
      parts[#parts + 1] = tostring(p.cert) .. "\0" .. tostring(p.key)
    end
  end
  return concat(parts, "\0")
end

local methods = conn.methods

-- conn:starttls([opts]) -> true | nil, err
-- Upgrades a plain connection to TLS in place, once what was written
-- before has left as plaintext (SMTP, IMAP, Redis style STARTTLS). With
-- opts.cert and opts.key (or opts.certs) it is the server side (options
-- as tls.server; the configuration is kept for the next call with the
-- same options), else the client side (opts.sni, the name to check,
-- required unless verify = false; ca, alpn, verify as net.dial). Returns
-- once the handshake finished, within opts.timeout seconds if given.
function methods.starttls(self, opts)
  opts = opts or {}
  if type(opts) ~= "table" then
    bad(1, "starttls", "table expected, got " .. type(opts))
  end
  local deadline = opts.timeout and now() + opts.timeout
  if opts.cert == nil and opts.certs == nil then
    return _M.client_start(self, _M.client_opts(opts, nil, 1, "starttls"),
      deadline)
  end
  local key = server_key(opts)
  local f, err = servers[key], nil
  if not f then
    f, err = server(opts, 1, "starttls")
    if not f then return nil, err end
    servers[key] = f
  end
  local ok
  ok, err = run_start(self, f)
  if not ok then return nil, err end
  return finish(self, deadline)
end

-- conn:tls() -> {version =, cipher =, alpn =, sni =, peer =, resumed =,
-- verified =} | nil, err
-- What the handshake negotiated (waiting for it to finish): "TLSv1.3",
-- "TLS_AES_256_GCM_SHA384", the application protocol if any, the server
-- name the client asked for, the subject of the peer's certificate
-- ("CN=example.com"; a client sees the server's), whether the session
-- was resumed, and whether a client checked the certificate. On a plain
-- connection: nil, "not a tls connection".
function methods.tls(self)
  local ok, err = finish(self)
  if not ok then return nil, err end
  return info(self)
end

return _M
