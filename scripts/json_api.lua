-- json_api: a small JSON API on http.router(), with Debian's lua-cjson
-- (apt install lua-cjson). A list of notes, kept per worker across
-- reloads in coronet.state:
--   coronet scripts/json_api.lua --listen 127.0.0.1:8080
--   curl -d '{"text":"buy milk"}' http://127.0.0.1:8080/notes
--   curl http://127.0.0.1:8080/notes
--   curl http://127.0.0.1:8080/notes/1
--   curl -X PUT -d '{"text":"buy oat milk"}' http://127.0.0.1:8080/notes/1
--   curl -X DELETE http://127.0.0.1:8080/notes/1
local http = require "coronet.http"
local coronet = require "coronet"
local ok, cjson = pcall(require, "cjson.safe")
if not ok then
  error("json_api.lua needs lua-cjson (apt install lua-cjson)", 0)
end

local MAX_BODY = 64 * 1024
local MAX_TEXT = 1000

local store = coronet.state("json_api")
store.notes = store.notes or {} -- id -> {id=, text=}
store.next = store.next or 1
local notes = store.notes

local function reply(res, status, value)
  res:status(status)
  res:header("Content-Type", "application/json")
  return res:finish(cjson.encode(value) .. "\n")
end

local function fail(res, status, message)
  return reply(res, status, { error = message })
end

-- note_from reads {"text": "..."} from the request body; on failure it
-- answers the request and returns nil.
local function note_from(req, res)
  local ctype = req.headers["content-type"] or ""
  if ctype ~= "" and not ctype:find("json", 1, true)
    and not ctype:find("x-www-form-urlencoded", 1, true) then
    fail(res, 415, "send application/json")
    return nil
  end
  local body, err = req:body(MAX_BODY)
  if not body then
    fail(res, 400, err)
    return nil
  end
  local v = cjson.decode(body)
  if type(v) ~= "table" or type(v.text) ~= "string" or #v.text > MAX_TEXT then
    fail(res, 400, "expected {\"text\": \"...\"} of at most " .. MAX_TEXT
      .. " bytes")
    return nil
  end
  return v.text
end

local function find(req, res)
  local note = notes[tonumber(req.params.id)]
  if not note then fail(res, 404, "no note " .. req.params.id) end
  return note
end

local r = http.router()

r:get("/notes", function(_, res)
  local list = {}
  for _, n in pairs(notes) do list[#list + 1] = n end
  table.sort(list, function(a, b) return a.id < b.id end)
  if #list == 0 then -- cjson writes an empty table as an object
    res:header("Content-Type", "application/json")
    return res:finish("[]\n")
  end
  return reply(res, 200, list)
end)

r:post("/notes", function(req, res)
  local text = note_from(req, res)
  if not text then return end
  local note = { id = store.next, text = text }
  store.next = store.next + 1
  notes[note.id] = note
  res:header("Location", "/notes/" .. note.id)
  return reply(res, 201, note)
end)

r:get("/notes/:id", function(req, res)
  local note = find(req, res)
  if note then return reply(res, 200, note) end
end)

r:put("/notes/:id", function(req, res)
  local note = find(req, res)
  if not note then return end
  local text = note_from(req, res)
  if not text then return end
  note.text = text
  return reply(res, 200, note)
end)

r:delete("/notes/:id", function(req, res)
  local note = find(req, res)
  if not note then return end
  notes[note.id] = nil
  res:status(204)
  return res:finish()
end)

return http.server(r, { max_body = MAX_BODY })
