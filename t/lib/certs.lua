-- t/lib/certs.lua: TLS fixtures made at test time with the openssl
-- command: a CA and the certificates it signs, in a scratch directory;
-- openssl s_server as a peer; a check for outside programs.
--   local certs = require "lib.certs"
--   certs.need("openssl")          -- skips the file when it is missing
--   local d = certs.make()         -- d.ca, d.cert, d.key, d.ec_cert, ...
--   local s = certs.s_server{ "-cert", d.cert, "-key", d.key, "-rev" }
--   ... s.addr ... s:stop()
-- Every certificate is for localhost and 127.0.0.1 unless said otherwise:
--   ca (RSA 2048), cert/key (RSA 2048, signed by ca), ec_cert/ec_key
--   (ECDSA P-256, localhost and ec.test), alt_cert/alt_key (another
--   ECDSA one, CN localhost-2, for rotation), expired_cert/expired_key,
--   wrong_cert/wrong_key (other.example only), self_cert/self_key
--   (self-signed), named[name] = {cert =, key =} for a.test and b.test.
local coronet = require "coronet"
local process = require "coronet.process"
local scratch = require "lib.scratch"
local util = require "lib.util"
local concat = table.concat

local _M = {}

-- run(argv) runs a command to its end; raises with its stderr if it fails.
local function run(argv)
  local code, _, err = util.command(argv)
  if code ~= 0 then
    error(concat(argv, " ") .. " failed (" .. tostring(code) .. "):\n" .. err,
      2)
  end
end
_M.run = run

-- have(prog) says whether prog is on PATH.
function _M.have(prog)
  local p = assert(process.spawn { "sh", "-c", "command -v " .. prog,
    stdout = "null", stderr = "null" })
  return p:wait(10) == 0
end

-- need(...) skips the whole test file when a program is missing (fails
-- instead when CI is set).
function _M.need(...)
  for _, prog in ipairs { ... } do
    if not _M.have(prog) then
      if os.getenv("CI") then
        print("1..1\nnot ok 1 - " .. prog .. " is installed (CI needs it)")
        os.exit(1)
      end
      print("1..0 # SKIP " .. prog .. " is not installed")
      os.exit(0)
    end
  end
end

local SAN = "subjectAltName=DNS:localhost,IP:127.0.0.1"

local function append(t, more)
  for _, v in ipairs(more) do t[#t + 1] = v end
  return t
end

-- leaf makes name.pem and name.key signed by the CA (or self-signed).
local function leaf(d, name, o)
  local key, cert = d:path(name .. ".key"), d:path(name .. ".pem")
  local req = append({ "openssl", "req", "-new", "-nodes", "-keyout", key,
    "-subj", "/CN=" .. (o.cn or "localhost"), "-addext", o.san or SAN },
    o.rsa and { "-newkey", "rsa:2048" }
      or { "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256" })
  if o.self then
    run(append(req, { "-x509", "-days", "30", "-out", cert }))
    return cert, key
  end
  local csr = d:path(name .. ".csr")
  run(append(req, { "-out", csr }))
  run { "openssl", "x509", "-req", "-in", csr, "-CA", d:path("ca.pem"),
    "-CAkey", d:path("ca.key"), "-CAcreateserial", "-days", o.days or "30",
    "-copy_extensions", "copy", "-out", cert }
  return cert, key
end

-- make() makes the certificates (about a second) and returns their paths.
function _M.make()
  local d = scratch.dir("tls")
  local r = { dir = d.root, path = function(name) return d:path(name) end }
  run { "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
    "-keyout", d:path("ca.key"), "-out", d:path("ca.pem"), "-days", "30",
    "-subj", "/CN=coronet test CA" }
  r.ca, r.ca_key = d:path("ca.pem"), d:path("ca.key")
  r.cert, r.key = leaf(d, "server", { rsa = true })
  r.ec_cert, r.ec_key = leaf(d, "ec", {
    san = "subjectAltName=DNS:localhost,DNS:ec.test,IP:127.0.0.1" })
  r.alt_cert, r.alt_key = leaf(d, "alt", { cn = "localhost-2" })
  r.expired_cert, r.expired_key = leaf(d, "expired", { days = "-1" })
  r.wrong_cert, r.wrong_key = leaf(d, "wrong", { cn = "other.example",
    san = "subjectAltName=DNS:other.example" })
  r.self_cert, r.self_key = leaf(d, "self", { self = true })
  r.named = {}
  for _, name in ipairs { "a.test", "b.test" } do
    local c, k = leaf(d, name,
      { cn = name, san = "subjectAltName=DNS:" .. name })
    r.named[name] = { cert = c, key = k }
  end
  return r
end

-- read(path) returns a file's contents.
function _M.read(path)
  local f = assert(io.open(path, "rb"))
  local s = f:read("*a")
  f:close()
  return s
end

local Peer = {}
Peer.__index = Peer

-- s_server(args) starts `openssl s_server -accept 127.0.0.1:0 ARGS` and
-- returns it once its ACCEPT line gives the port: s.addr, s.proc, s.out
-- (what it printed), s:stop().
function _M.s_server(args)
  local argv = { "openssl", "s_server", "-accept", "127.0.0.1:0" }
  for _, a in ipairs(args) do argv[#argv + 1] = a end
  argv.stdin, argv.stdout, argv.stderr = "pipe", "pipe", "pipe"
  local p = assert(process.spawn(argv))
  local s = setmetatable({ proc = p, out = {} }, Peer)
  p.stdout:set_timeout(10)
  while true do
    local line, err = p.stdout:read_line()
    if not line then
      p:kill("KILL")
      p:wait()
      error("s_server did not start (" .. err .. "): "
        .. (p.stderr:read(4096) or ""), 2)
    end
    s.addr = line:match("^ACCEPT (%S+)")
    if s.addr then break end
  end
  p.stdout:set_timeout(nil)
  coronet.spawn(function()
    for line in p.stdout:lines() do s.out[#s.out + 1] = line end
  end)
  coronet.spawn(function()
    for line in p.stderr:lines() do s.out[#s.out + 1] = line end
  end)
  return s
end

function Peer:stop()
  self.proc:kill("KILL")
  return self.proc:wait(10)
end

-- client(args [, input, timeout, hold]) runs an openssl or curl command
-- with input on its stdin, closed after hold seconds (default at once);
-- returns its exit code and stdout..stderr.
function _M.client(args, input, timeout, hold)
  local code, out, err = util.command(args, { input = input,
    timeout = timeout or 20, hold = hold })
  return code, out .. err
end

return _M
