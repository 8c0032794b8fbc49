rockspec_format = "3.0"
package = "coronet"
version = "scm-1"
source = {
   url = "git+file:///work/main",
   branch = "main",
}
description = {
   summary = "A Lua-scriptable network server host: LuaJIT + libuv, a coroutine per connection",
   detailed = [[
coronet is a small C program that embeds LuaJIT and libuv and runs Lua
scripts as TCP connection handlers. Every connection is a coroutine;
handler code reads in blocking style (conn:read_line()) while one thread
serves tens of thousands of connections. Scripts get Go-style io, bufio,
channels and select, and the host reloads them without dropping a
connection.
]],
   homepage = "https://coronet.invalid/",
   license = "MIT",
   labels = { "server", "network", "coroutines", "libuv" },
}
dependencies = {
   "lua == 5.1",
}
external_dependencies = {
   LIBUV = { header = "uv.h" },
}
build = {
   type = "make",
   build_target = "all",
   build_variables = {
      CFLAGS = "$(CFLAGS)",
      LUADIR = "$(LUADIR)",
   },
   install_target = "install",
   install_variables = {
      PREFIX = "$(PREFIX)",
      BINDIR = "$(BINDIR)",
      LUADIR = "$(LUADIR)",
   },
}
