/* fuzz_chat.c: libFuzzer harness for the chat protocol. The rules are
** plain Lua (scripts/chat_proto.lua, scripts/chat_room.lua), so the
** harness embeds LuaJIT and hands each input to t/fuzz/fuzz_chat.lua,
** which runs several rooms joined by a model bus, feeds the input's
** bytes to members in pieces and checks what every member gets against
** a model of the room; a failed check raises, and the harness aborts with
** the message. Lua's line-to-line steps feed libFuzzer's coverage through
** extra counters, since the interpreter itself is not instrumented. */
#include <lauxlib.h>
#include <luajit.h>
#include <lualib.h>
#include <string.h>

#include "fuzz.h"

#ifndef FUZZ_ROOT
#define FUZZ_ROOT "."
#endif

/* Coverage of the Lua code: an edge (previous line, line) bumps a counter
** that libFuzzer reads with its own (without libFuzzer: unused). */
#define COV_SIZE (1 << 14)
__attribute__((used, section("__libfuzzer_extra_counters")))
static uint8_t lua_cov[COV_SIZE];
static unsigned prev_line;

static lua_State *L;
static int run_ref = LUA_NOREF;


static void line_hook(lua_State *co, lua_Debug *ar) {
  unsigned line = (unsigned)ar->currentline;
  (void)co;
  lua_cov[(line * 2654435761u ^ prev_line) % COV_SIZE]++;
  prev_line = line >> 1;
}


/* setup makes the Lua state once: the standard libraries, the JIT off
** (hooks see every line), the paths to scripts/ and t/fuzz/, and the run
** function fuzz_chat.lua returns. */
static void setup(void) {
  const char *root = getenv("FUZZ_ROOT") ? getenv("FUZZ_ROOT") : FUZZ_ROOT;
  L = luaL_newstate();
  FUZZ_CHECK(L != NULL);
  luaL_openlibs(L);
  luaJIT_setmode(L, 0, LUAJIT_MODE_ENGINE | LUAJIT_MODE_OFF);
  lua_getglobal(L, "package");
  lua_pushfstring(L, "%s/scripts/?.lua;%s/t/fuzz/?.lua", root, root);
  lua_setfield(L, -2, "path");
  lua_pop(L, 1);
  lua_getglobal(L, "require");
  lua_pushliteral(L, "fuzz_chat");
  if (lua_pcall(L, 1, 1, 0) != 0) {
    fprintf(stderr, "fuzz_chat: %s\n", lua_tostring(L, -1));
    abort();
  }
  FUZZ_CHECK(lua_isfunction(L, -1));
  run_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_sethook(L, line_hook, LUA_MASKLINE, 0);
}


static int traceback(lua_State *co) {
  luaL_traceback(co, co, lua_tostring(co, 1), 1);
  return 1;
}


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (L == NULL)
    setup();
  prev_line = 0;
  lua_pushcfunction(L, traceback);
  lua_rawgeti(L, LUA_REGISTRYINDEX, run_ref);
  lua_pushlstring(L, (const char *)data, size);
  if (lua_pcall(L, 1, 0, -3) != 0) {
    fprintf(stderr, "fuzz_chat: %s\n", lua_tostring(L, -1));
    abort();
  }
  lua_settop(L, 0);
  return 0;
}
