/* lcn_proc.c: Lua binding of child processes (cn_proc.c). The table-shaped
** API is in lua/coronet/process.lua. */
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "cn.h"
#include "lcn.h"

#define PROC_MT "coronet.proc"

typedef struct {
  cn_proc_t *p;
} proc_box;


static proc_box *check_proc(lua_State *L) {
  return luaL_checkudata(L, 1, PROC_MT);
}


/* strings_of returns a NULL-terminated copy of the strings t[1..n] (or of
** "k=v" for every string pair of t when pairs is set). It and its strings
** live on L's stack (two values) until the calling function returns. */
static char **strings_of(lua_State *L, int t, int pairs) {
  size_t n = 0, i = 0;
  char **v;
  if (pairs) {
    lua_pushnil(L);
    while (lua_next(L, t)) {
      n++;
      lua_pop(L, 1);
    }
  } else {
    n = lua_objlen(L, t);
  }
  lua_createtable(L, pairs ? (int)n : 0, 0); /* anchors the k=v strings */
  v = lua_newuserdata(L, (n + 1) * sizeof *v);
  if (pairs) {
    lua_pushnil(L);
    while (lua_next(L, t)) {
      lua_pushvalue(L, -2);
      lua_pushliteral(L, "=");
      lua_pushvalue(L, -3);
      lua_concat(L, 3);
      v[i++] = (char *)lua_tostring(L, -1);
      lua_rawseti(L, -5, (int)i);
      lua_pop(L, 1);
    }
  } else {
    for (i = 0; i < n; i++) {
      lua_rawgeti(L, t, (int)i + 1);
      v[i] = (char *)luaL_checkstring(L, -1);
      lua_pop(L, 1); /* t keeps it alive */
    }
  }
  v[i] = NULL;
  return v;
}


static int stdio_mode(lua_State *L, int t, const char *name, int def) {
  static const char *const modes[] = {"null", "inherit", "pipe", NULL};
  int m;
  lua_getfield(L, t, name);
  m = lua_isnil(L, -1) ? def : lcn_option(L, -1, NULL, modes, 1, "spawn");
  lua_pop(L, 1);
  return m;
}


/* spawn{file, args..., env=, cwd=, stdin=, stdout=, stderr=, detached=}
**   -> proc, pid, stdin, stdout, stderr | nil, err
** Streams are "null" (default for stdin), "inherit" (default for stdout
** and stderr) or "pipe" (a connection). */
static int proc_spawn(lua_State *L) {
  cn_conn_t *io[3];
  cn_spawn_t s;
  int i, rc, base;
  proc_box *b;
  luaL_checktype(L, 1, LUA_TTABLE);
  base = lua_gettop(L);
  s.args = strings_of(L, 1, 0);
  luaL_argcheck(L, s.args[0] != NULL, 1, "no program given");
  s.env = NULL;
  lua_getfield(L, 1, "env");
  if (!lua_isnil(L, -1)) {
    luaL_checktype(L, -1, LUA_TTABLE);
    s.env = strings_of(L, lua_gettop(L), 1);
  }
  lua_getfield(L, 1, "cwd");
  s.cwd = lua_tostring(L, -1);
  lua_getfield(L, 1, "detached");
  s.detached = lua_toboolean(L, -1);
  s.mode[0] = stdio_mode(L, 1, "stdin", CN_STDIO_IGNORE);
  s.mode[1] = stdio_mode(L, 1, "stdout", CN_STDIO_INHERIT);
  s.mode[2] = stdio_mode(L, 1, "stderr", CN_STDIO_INHERIT);
  b = lua_newuserdata(L, sizeof *b);
  b->p = NULL;
  luaL_getmetatable(L, PROC_MT);
  lua_setmetatable(L, -2);
  if ((b->p = malloc(sizeof *b->p)) == NULL)
    return lcn_fail(L, CN_ENOMEM);
  if ((rc = cn_proc_spawn(b->p, cn_worker_self(), &s, io)) < 0) {
    b->p = NULL; /* freed by cn_proc_spawn */
    lua_pushnil(L);
    lua_pushfstring(L, "spawn %s: %s", s.args[0], cn_strerror(rc));
    return 2;
  }
  lua_replace(L, base + 1);
  lua_settop(L, base + 1);
  lua_pushinteger(L, b->p->pid);
  for (i = 0; i < 3; i++) {
    if (io[i] != NULL)
      lcn_push_conn(L, io[i]);
    else
      lua_pushnil(L);
  }
  return 5;
}


/* proc:wait([timeout]) -> code, signal | nil, "timeout" | false */
static int proc_wait(lua_State *L) {
  proc_box *b = check_proc(L);
  double timeout = luaL_optnumber(L, 2, 0);
  cn_task_t *t;
  if (b->p->exited) {
    cn_worker_t *w = cn_worker_self();
    if (w->current != NULL)
      cn_sched_op_done(w->current);
    lua_pushnumber(L, (double)b->p->status);
    lua_pushinteger(L, b->p->signal);
    return 2;
  }
  t = cn_sched_task(L, "proc:wait");
  if (cn_sched_timed_out(t)) {
    cn_sched_op_done(t);
    return lcn_fail(L, CN_ETIMEOUT);
  }
  b->p->waiter = cn_sched_waiter(t);
  cn_sched_park(t, CN_WAIT_PROCESS,
                timeout > 0 ? cn_sched_op_start(t) + (uint64_t)(timeout * 1000)
                            : 0,
                NULL, NULL);
  lua_pushboolean(L, 0);
  return 1;
}


/* check_signal returns the signal at idx: a number (a whole one), a name
** ("TERM", "KILL", "INT", "HUP", "USR1", "USR2", "STOP", "CONT", "QUIT")
** or nil for TERM; raises, for proc:kill, on anything else. */
static int check_signal(lua_State *L, int idx) {
  static const char *const names[] = {"TERM", "KILL", "INT",  "HUP", "USR1",
                                      "USR2", "STOP", "CONT", "QUIT", NULL};
  static const int nums[] = {SIGTERM, SIGKILL, SIGINT,  SIGHUP, SIGUSR1,
                             SIGUSR2, SIGSTOP, SIGCONT, SIGQUIT};
  if (lua_type(L, idx) == LUA_TNUMBER) {
    lua_Number n = lua_tonumber(L, idx);
    if (!(n >= -INT_MAX && n <= INT_MAX) || n != (lua_Number)(int)n)
      lcn_argerror(L, 1, "kill", "invalid signal number");
    return (int)n;
  }
  if (!lua_isnoneornil(L, idx) && lua_type(L, idx) != LUA_TSTRING)
    lcn_argerror(L, 1, "kill",
                 lua_pushfstring(L, "signal name or number expected, got %s",
                                 luaL_typename(L, idx)));
  return nums[lcn_option(L, idx, "TERM", names, 1, "kill")];
}


/* proc:kill([signal]) -> true | nil, err; signal as check_signal takes it,
** "TERM" by default. */
static int proc_kill(lua_State *L) {
  proc_box *b = check_proc(L);
  return lcn_ok(L, cn_proc_kill(b->p, check_signal(L, 2)));
}


static int proc_gc(lua_State *L) {
  proc_box *b = check_proc(L);
  if (b->p != NULL)
    cn_proc_release(b->p);
  b->p = NULL;
  return 0;
}


static const luaL_Reg methods[] = {
  {"wait", proc_wait}, {"kill", proc_kill}, {NULL, NULL}};


int luaopen_coronet_proc(lua_State *L) {
  lcn_class(L, PROC_MT, methods, proc_gc, NULL);
  lua_pop(L, 2);
  lua_newtable(L);
  lua_pushcfunction(L, proc_spawn);
  lua_setfield(L, -2, "spawn");
  return 1;
}
