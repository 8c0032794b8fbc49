/* lcn_sched.c: Lua binding of the scheduler (cn_sched.c): spawn, park and
** wake, time. The blocking wrappers that yield live in lua/coronet/. */
#include <math.h>

#include <lauxlib.h>
#include <lua.h>

#include "cn.h"
#include "lcn.h"


/* spawn(fn, ...) -> task
** Starts fn(...) as a new task, run from the next loop turn. */
static int l_spawn(lua_State *L) {
  int n = lua_gettop(L);
  luaL_checktype(L, 1, LUA_TFUNCTION);
  cn_sched_spawn(L, n - 1);
  return 1;
}


/* -- Lua-level parks ----------------------------------------------------- */

/* Each park() is numbered (per task); wake_park() wakes the task only while
** that park is the current one, so a waiter that a channel forgot to drop
** (its coroutine was abandoned) cannot wake the task in a later, unrelated
** wait. */


/* park([seconds]) -> false, token, task, own
** Marks the running task parked until wake() or the timeout; the caller
** yields next and gets true, values... from wake, or false at timeout.
** task is the task's coroutine (what wake takes) and own says whether the
** caller runs in it rather than in a coroutine the task resumed. */
static int l_park(lua_State *L) {
  cn_task_t *t = cn_sched_task(L, "park");
  lua_State *co = cn_sched_thread(t);
  uint64_t deadline = 0;
  if (!lua_isnoneornil(L, 1))
    deadline = lcn_deadline_in(L, luaL_checknumber(L, 1));
  cn_sched_op_done(t);
  cn_sched_park(t, deadline, NULL, NULL);
  lua_pushboolean(L, 0);
  lua_pushnumber(L, cn_sched_parked_as(t));
  if (co == L) {
    lua_pushthread(L);
  } else {
    lua_pushthread(co);
    lua_xmove(co, L, 1);
  }
  lua_pushboolean(L, co == L);
  return 4;
}


/* unpark()
** Undoes the park of the running task when it cannot yield after all. */
static int l_unpark(lua_State *L) {
  cn_worker_t *w = cn_worker_self();
  if (w->current != NULL)
    cn_sched_unpark(w->current);
  (void)L;
  return 0;
}


/* wake(task, ...) -> bool
** Wakes a parked task, which resumes with true, ...; false if it was not
** parked (running, ready, or ended). */
static int l_wake(lua_State *L) {
  cn_task_t *t;
  luaL_checktype(L, 1, LUA_TTHREAD);
  t = cn_sched_lookup(L, 1);
  lua_pushboolean(L, t != NULL && cn_sched_wake_with(t, L, lua_gettop(L) - 1));
  return 1;
}


/* wake_park(task, token, ...) -> bool
** Like wake, but only while task is still in the park() that returned
** token. */
static int l_wake_park(lua_State *L) {
  cn_task_t *t;
  luaL_checktype(L, 1, LUA_TTHREAD);
  luaL_checktype(L, 2, LUA_TNUMBER);
  t = cn_sched_lookup(L, 1);
  lua_pushboolean(L, t != NULL &&
                       cn_sched_parked_as(t) == (uint32_t)lua_tonumber(L, 2) &&
                       cn_sched_wake_with(t, L, lua_gettop(L) - 2));
  return 1;
}


/* current() -> the running task's coroutine, or nil */
static int l_current(lua_State *L) {
  cn_worker_t *w = cn_worker_self();
  lua_State *co;
  if (w->current == NULL)
    return 0;
  co = cn_sched_thread(w->current);
  if (co == L) {
    lua_pushthread(L);
  } else {
    lua_pushthread(co);
    lua_xmove(co, L, 1);
  }
  return 1;
}


/* now() -> seconds (monotonic, a float) */
static int l_now(lua_State *L) {
  lua_pushnumber(L, (double)uv_hrtime() / 1e9);
  return 1;
}


/* alive(task) -> bool: whether the task has not ended. */
static int l_alive(lua_State *L) {
  lua_pushboolean(L, cn_sched_lookup(L, 1) != NULL);
  return 1;
}


/* stats() -> table: tasks, connections, blocks in use and idle. */
static int l_stats(lua_State *L) {
  cn_worker_t *w = cn_worker_self();
  lua_createtable(L, 0, 6);
  lua_pushnumber(L, (double)w->ntasks);
  lua_setfield(L, -2, "tasks");
  lua_pushnumber(L, (double)w->nconns);
  lua_setfield(L, -2, "connections");
  lua_pushnumber(L, (double)w->pool.nlive);
  lua_setfield(L, -2, "blocks");
  lua_pushnumber(L, (double)w->pool.nfree);
  lua_setfield(L, -2, "free_blocks");
  lua_pushnumber(L, (double)CN_BLOCK_SIZE);
  lua_setfield(L, -2, "block_size");
  lua_pushnumber(L, w->id);
  lua_setfield(L, -2, "worker");
  return 1;
}


/* exit([code]) -- ends the program (--run) or the server, with status code
** (true: 0, false: 1); the calling task never resumes. */
static int l_exit(lua_State *L) {
  int code = lua_isboolean(L, 1) ? !lua_toboolean(L, 1)
                                 : (int)luaL_optinteger(L, 1, 0);
  cn_worker_exit(cn_worker_self(), code);
  return 0;
}


static const luaL_Reg funcs[] = {
  {"spawn", l_spawn}, {"park", l_park},   {"unpark", l_unpark},
  {"wake", l_wake},   {"now", l_now},     {"alive", l_alive},
  {"stats", l_stats}, {"exit", l_exit},   {"current", l_current},
  {"wake_park", l_wake_park}, {NULL, NULL}};


int luaopen_coronet_sched(lua_State *L) {
  lua_newtable(L);
  luaL_register(L, NULL, funcs);
  return 1;
}
