-- t/lib/http_app.lua: the HTTP service the 7xx tests talk to: a router
-- with a route per behaviour. Script arguments are option=value pairs
-- for http.server (header_timeout=0.5), and static=DIR.
local http = require "coronet.http"
local coronet = require "coronet"
local concat, sort, format = table.concat, table.sort, string.format

local opts, static = {}, nil
for _, a in ipairs { ... } do
  local k, v = a:match("^([%w_]+)=(.*)$")
  if k == "static" then static = v elseif k then opts[k] = tonumber(v) end
end

local r = http.router()

r:get("/", function(_, res) res:finish("hello\n") end)

-- /info answers with what the request said, one "key: value" a line.
r:route("*", "/info", function(req, res)
  local lines = { "method: " .. req.method, "target: " .. req.target,
    "path: " .. req.path, "query: " .. tostring(req.query),
    "version: " .. req.version }
  local names = {}
  for k in pairs(req.headers) do names[#names + 1] = k end
  sort(names)
  for _, k in ipairs(names) do
    lines[#lines + 1] = k .. ": " .. req.headers[k]
  end
  res:header("Content-Type", "text/plain")
  res:finish(concat(lines, "\n") .. "\n")
end)

r:route("*", "/echo", function(req, res)
  local body, err = req:body()
  if not body then return res:status(400):finish(err .. "\n") end
  res:finish(body)
end)

-- /count reads the body with req.body:read and answers its length.
r:post("/count", function(req, res)
  local n = 0
  while true do
    local s, err = req.body:read(1000)
    if not s then
      if err ~= "eof" then return res:status(400):finish(err .. "\n") end
      break
    end
    n = n + #s
  end
  res:finish(n .. "\n")
end)

r:post("/ignore", function(_, res) res:finish("ignored\n") end)

r:get("/stream", function(_, res)
  for i = 1, 3 do res:write("part " .. i .. "\n") end
end)

r:get("/length", function(_, res)
  res:header("Content-Length", 6)
  res:write("abc")
  res:write("def")
end)

r:get("/nocontent", function(_, res) res:status(204):finish() end)
r:get("/error", function() error("handler failed on purpose") end)
r:get("/error-late", function(_, res)
  res:write("started\n")
  error("handler failed after writing")
end)
r:get("/sleep/:ms", function(req, res)
  coronet.sleep(tonumber(req.params.ms) / 1000)
  res:finish("slept " .. req.params.ms .. "\n")
end)
r:get("/args", function(req, res)
  local args, out = req:args(), {}
  local names = {}
  for k in pairs(args) do names[#names + 1] = k end
  sort(names)
  for _, k in ipairs(names) do
    local v = args[k]
    if type(v) == "table" then v = "[" .. concat(v, ",") .. "]" end
    out[#out + 1] = k .. "=" .. tostring(v)
  end
  res:finish(concat(out, "&") .. "\n")
end)
r:get("/users/:id", function(req, res)
  res:finish("user " .. req.params.id .. "\n")
end)
r:get("/users/:id/posts/:post", function(req, res)
  res:finish(format("user %s post %s\n", req.params.id, req.params.post))
end)
r:delete("/users/:id", function(req, res)
  res:finish("deleted " .. req.params.id .. "\n")
end)
r:get("/rest/*", function(req, res)
  res:finish("rest=" .. req.params["*"] .. "\n")
end)
r:get("/big/:n", function(req, res)
  res:finish(string.rep("x", tonumber(req.params.n)))
end)
r:get("/redirect", function(_, res)
  res:status(302):header("Location", "/users/9")
  res:finish("see /users/9\n")
end)
r:get("/close", function(_, res)
  res:header("Connection", "close")
  res:finish("bye\n")
end)
r:get("/split", function(_, res)
  res:header("X-Split", "a\r\nSet-Cookie: evil=1")
  res:finish("not reached\n")
end)
-- /fields/KIND sends the same ordinary fields each time (the server keeps
-- their checked lines), then: "bad" a known name with a new, bad value;
-- "late" one of them again after the head went (the error in the body);
-- "close" Connection: close after them.
r:get("/fields/:kind", function(req, res)
  local kind = req.params.kind
  res:header("Content-Type", "text/plain"):header("X-Same", "v")
  if kind == "bad" then res:header("X-Same", "w\r\nX-Evil: 1") end
  if kind == "close" then res:header("Connection", "close") end
  if kind == "late" then
    res:write("sent\n")
    local ok, err = pcall(res.header, res, "X-Same", "v")
    res:finish(tostring(ok) .. " " .. tostring(err) .. "\n")
    return
  end
  res:finish(kind .. "\n")
end)
if static then r:static("/static", static) end

-- /hog/N opens the static directory's a.txt up to N times and keeps the
-- files open (their count is the answer): what a busy server's open
-- files and sockets do to its descriptors; /unhog closes them.
local fs = require "coronet.fs"
local hogs = {}
r:get("/hog/:n", function(req, res)
  for _ = 1, tonumber(req.params.n) do
    local f = fs.open(static .. "/a.txt")
    if not f then break end
    hogs[#hogs + 1] = f
  end
  res:finish(#hogs .. "\n")
end)
r:get("/unhog", function(_, res)
  for i = #hogs, 1, -1 do hogs[i]:close(); hogs[i] = nil end
  res:finish("0\n")
end)

return http.server(r, opts)
