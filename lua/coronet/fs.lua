-- coronet.fs: files as Readers and Writers. Every request runs on libuv's
-- thread pool, so a task reading a large (or slow) file never delays the
-- loop's other tasks. Errors are nil, "OP PATH: message" ("eof" alone).
local C = require "coronet.c.fs"
local coronet = require "coronet"
local conn = require "coronet.conn"
local io_ = require "coronet.io"
local type, error, getmetatable, ipairs = type, error, getmetatable, ipairs
local concat = table.concat
local wait, argcheck = coronet.wait, coronet.argcheck

local _M = { _VERSION = "0.1.0" }
local methods = C.methods
local CONN = conn.metatable
local BUF = C.buffer_size
_M.metatable = C.metatable

for _, m in ipairs { { "read", "number?" }, { "seek", "string?", "number?" },
  { "stat" }, { "close" }, { "write" } } do
  coronet.blocking(methods, m[1], "file", m[2], m[3])
end

-- file:read([n]) -> 1..n bytes | nil, "eof" | nil, err
-- file:seek([whence [, offset]]) -> position; whence "set", "cur", "end"
-- file:stat() -> {size=, type=, mode=, mtime=, ...}
-- file:close() -> true | nil, err
-- file:write(data) -> count | nil, err, count_written
-- data is a string or a table of strings.

local function finish(x, req)
  while x == false do
    wait("fs")
    x, req = C.finish(req)
  end
  return x, req
end

-- open(path [, mode [, perm]]) -> file | nil, err
-- mode as Lua's io.open: "r" (default), "w", "a", with "+" to read and
-- write, "x" after "w" to fail if the file exists; perm (default 0666,
-- less the umask) for a file it creates. In append mode writes go to the
-- end; reads and seek use their own position.
function _M.open(path, mode, perm)
  argcheck(path, "string", 1, "open")
  return finish(C.open(path, mode, perm))
end

-- open_under(path, root) -> file | nil, err
-- Opens path for reading only if it is a regular file whose real location
-- (every symlink resolved) lies inside the directory root; a FIFO or a
-- device is never opened in a way that waits. err ends in "permission
-- denied" outside root, "inappropriate file type or format" for anything
-- but a regular file, or the OS's reason ("no such file or directory",
-- "too many open files").
function _M.open_under(path, root)
  argcheck(path, "string", 1, "open_under")
  argcheck(root, "string", 2, "open_under")
  return finish(C.open_under(path, root))
end

-- stat(path) -> {size=, type=, mode=, mtime=, atime=, ctime=, ...}
-- type is "file", "directory", "link", "fifo", "socket", "char", "block".
function _M.stat(path)
  argcheck(path, "string", 1, "stat")
  return finish(C.stat(path))
end

-- remove(path) -> true | nil, err (a file, not a directory)
function _M.remove(path)
  argcheck(path, "string", 1, "remove")
  return finish(C.remove(path))
end

-- read_file(path) -> contents | nil, err
function _M.read_file(path)
  argcheck(path, "string", 1, "read_file")
  local f, err = _M.open(path, "r")
  if not f then return nil, err end
  local parts, n = {}, 0
  while true do
    local s, rerr = f:read(BUF)
    if not s then
      f:close()
      if rerr ~= "eof" then return nil, rerr end
      return concat(parts, "", 1, n)
    end
    n = n + 1
    parts[n] = s
  end
end

-- write_file(path, data [, mode]) -> true | nil, err
-- data is a string or a table of strings; mode "w" (default) or "a".
function _M.write_file(path, data, mode)
  argcheck(path, "string", 1, "write_file")
  local f, err = _M.open(path, mode or "w")
  if not f then return nil, err end
  local ok, werr = f:write(data)
  local cok, cerr = f:close()
  if not ok then return nil, werr end
  if not cok then return nil, cerr end
  return true
end

-- The Reader/Writer fast paths that coronet.io's copy looks for. Between a
-- file and a connection the bytes go through the file's C buffer, never a
-- Lua string.

local send, recv, copy_plain = C.send, C.recv, io_.copy_plain

local function host_loop(fn, self, c)
  local total = 0
  while true do
    local n, err = fn(self, c)
    while n == false do
      wait("copy")
      n, err = fn(self, c)
    end
    if not n then
      if err == "eof" then return total end
      return total, err
    end
    total = total + n
  end
end

-- file:write_to(w) -> bytes, err: copies the rest of the file to w.
function methods.write_to(self, w)
  if getmetatable(w) == CONN then return host_loop(send, self, w) end
  return copy_plain(w, self, BUF)
end

-- file:read_from(r) -> bytes, err: writes what r gives until its EOF.
function methods.read_from(self, r)
  if getmetatable(r) == CONN then return host_loop(recv, self, r) end
  return copy_plain(self, r, BUF)
end

return _M
