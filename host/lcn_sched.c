/* lcn_sched.c: Lua binding of the scheduler (cn_sched.c): spawn, park and
** wake, time, Lua timers on the worker's timing wheel (cn_timer.c), and
** introspection. The blocking wrappers that yield live in lua/coronet/. */
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "cn.h"
#include "lcn.h"

/* Lua timers (see below), per worker */
static __thread int timers_ref = LUA_NOREF; /* pending: node -> channel */
static __thread int fire_ref = LUA_NOREF;
static __thread size_t ntimers; /* pending Lua timers of this worker */


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


/* park([seconds [, wait]]) -> false, token, task, own
** Marks the running task parked until wake() or the timeout; the caller
** yields next and gets true, values... from wake, or false at timeout.
** wait says what for (a number from the waits table; default other).
** task is the task's handle (a light userdata, what wake takes fastest)
** and own says whether the caller runs in the task's coroutine rather than
** in one the task resumed. */
static int l_park(lua_State *L) {
  cn_task_t *t = cn_sched_task(L, "park");
  lua_State *co = cn_sched_thread(t);
  uint64_t deadline = 0;
  int wait = (int)luaL_optinteger(L, 2, CN_WAIT_OTHER);
  luaL_argcheck(L, wait >= 0 && wait < CN_WAIT_NKINDS, 2, "bad wait kind");
  if (!lua_isnoneornil(L, 1))
    deadline = lcn_deadline_in(L, luaL_checknumber(L, 1));
  cn_sched_op_done(t);
  cn_sched_park(t, wait, deadline, NULL, NULL);
  lua_pushboolean(L, 0);
  lua_pushnumber(L, cn_sched_parked_as(t));
  lua_pushlightuserdata(L, t);
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


static cn_task_t *check_task(lua_State *L, int idx) {
  int type = lua_type(L, idx);
  luaL_argcheck(L, type == LUA_TTHREAD || type == LUA_TLIGHTUSERDATA, idx,
                "task expected");
  return cn_sched_lookup(L, idx);
}


/* wake(task, ...) -> bool
** Wakes a parked task (its coroutine or the handle park returned), which
** resumes with true, ...; false if it was not parked (running, ready, or
** ended). */
static int l_wake(lua_State *L) {
  cn_task_t *t = check_task(L, 1);
  lua_pushboolean(L, t != NULL && cn_sched_wake_with(t, L, lua_gettop(L) - 1));
  return 1;
}


/* wake_park(task, token, ...) -> bool
** Like wake, but only while task is still in the park() that returned
** token. */
static int l_wake_park(lua_State *L) {
  cn_task_t *t = check_task(L, 1);
  luaL_checktype(L, 2, LUA_TNUMBER);
  lua_pushboolean(L, t != NULL &&
                       cn_sched_parked_as(t) == (uint32_t)lua_tonumber(L, 2) &&
                       cn_sched_wake_with(t, L, lua_gettop(L) - 2));
  return 1;
}


/* wake_node(node [, v]) -> bool
** wake_park(node[1], node[2], node [, v]): a waiter node (coronet.chan,
** coronet.sync) is an array whose first two items are a task's handle
** and the token of its park; the task wakes with true, node [, v]. (Fewer
** arguments on the waker's stack: see coronet.wait.) */
static int l_wake_node(lua_State *L) {
  int n = lua_gettop(L); /* node [, v]: the values it wakes with */
  cn_task_t *t;
  uint32_t token;
  luaL_checktype(L, 1, LUA_TTABLE);
  if (n > 2 || (n == 2 && lua_isnil(L, 2)))
    lua_settop(L, n = n > 2 ? 2 : 1);
  lua_rawgeti(L, 1, 1);
  lua_rawgeti(L, 1, 2);
  t = lua_type(L, -2) == LUA_TLIGHTUSERDATA ? cn_sched_lookup(L, -2) : NULL;
  token = (uint32_t)lua_tonumber(L, -1);
  lua_pop(L, 2);
  lua_pushboolean(L, t != NULL && cn_sched_parked_as(t) == token &&
                       cn_sched_wake_with(t, L, n));
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


/* tag([task [, v]]) -> number
** The number task (default: the running one) is tagged with, 0 if none
** (coronet.lifecycle keeps its script version there); v sets it. Raises
** outside a task when task is not given, and for a task that ended. */
static int l_tag(lua_State *L) {
  cn_task_t *t;
  if (lua_isnoneornil(L, 1))
    t = cn_sched_task(L, "tag");
  else if ((t = check_task(L, 1)) == NULL)
    return luaL_argerror(L, 1, "task ended");
  if (!lua_isnoneornil(L, 2))
    cn_sched_set_tag(t, (uint32_t)luaL_checkinteger(L, 2));
  lua_pushinteger(L, (lua_Integer)cn_sched_tag(t));
  return 1;
}


/* set_describe(fn): fn(e) -> string describes an error value that is not
** a string, when a task that ended with it is logged. */
static int l_set_describe(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  lua_settop(L, 1);
  cn_sched_set_describe(L);
  return 0;
}


/* stats() -> table: this worker's tasks, connections and blocks in use
** and idle; resumes, turns (and long_turns, those that ended on their time
** budget), runq (ready tasks), parks (by wait kind), lag (counts per log2
** bucket of microseconds, lag[1] under 1 us), timers (pending Lua
** timers), deadlines (every pending timer: Lua timers and the deadlines
** of parked tasks). */
static int l_stats(lua_State *L) {
  cn_worker_t *w = cn_worker_self();
  const cn_sched_stats_t *st = &w->stats;
  int i;
  lua_createtable(L, 0, 14);
  lcn_set_number(L, "tasks", (double)w->ntasks);
  lcn_set_number(L, "connections", (double)w->nconns);
  lcn_set_number(L, "blocks", (double)w->pool.nlive);
  lcn_set_number(L, "free_blocks", (double)w->pool.nfree);
  lcn_set_number(L, "block_size", (double)CN_BLOCK_SIZE);
  lcn_set_number(L, "worker", w->id);
  lcn_set_number(L, "resumes", (double)st->resumes);
  lcn_set_number(L, "turns", (double)st->turns);
  lcn_set_number(L, "long_turns", (double)st->long_turns);
  lcn_set_number(L, "runq", (double)w->runq_len);
  lcn_set_number(L, "timers", (double)ntimers);
  lcn_set_number(L, "deadlines", (double)w->timers.n);
  lua_createtable(L, 0, CN_WAIT_NKINDS);
  for (i = 0; i < CN_WAIT_NKINDS; i++)
    lcn_set_number(L, cn_sched_wait_name(i), (double)st->parks[i]);
  lua_setfield(L, -2, "parks");
  lua_createtable(L, CN_LAG_BUCKETS, 0);
  for (i = 0; i < CN_LAG_BUCKETS; i++) {
    lua_pushnumber(L, (double)st->lag[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, -2, "lag");
  return 1;
}


typedef struct {
  cn_task_t **list;
  size_t n;
} walk_t;


static void collect(cn_task_t *t, void *arg) {
  walk_t *wk = arg;
  wk->list[wk->n++] = t;
}


static int newest_first(const void *a, const void *b) {
  uint64_t x = cn_sched_task_id(*(cn_task_t *const *)a);
  uint64_t y = cn_sched_task_id(*(cn_task_t *const *)b);
  return x < y ? 1 : x > y ? -1 : 0;
}


/* lcn_push_task pushes a new table with task t's id, kind, state, wait and
** since (seconds) and room for extra more fields; *info receives what
** cn_sched_info gave (for the caller's own fields). */
void lcn_push_task(lua_State *L, cn_task_t *t, cn_task_info_t *info,
                   int extra) {
  static const char *const states[] = {"ready", "running", "parked"};
  cn_sched_info(t, info);
  lua_createtable(L, 0, 5 + extra);
  lcn_set_number(L, "id", (double)info->id);
  lua_pushstring(L, cn_sched_kind_name(info->kind));
  lua_setfield(L, -2, "kind");
  lua_pushstring(L, states[info->state]);
  lua_setfield(L, -2, "state");
  lua_pushstring(L, cn_sched_wait_name(info->wait));
  lua_setfield(L, -2, "wait");
  lcn_set_number(L, "since", (double)info->since / 1e9);
}


/* tasks() -> list of {id=, kind=, state=, wait=, since=, deadline=}, one
** per live task of this worker, newest first: kind "main", "handler" or
** "spawned"; state "ready", "running" or "parked"; wait what its park
** waits for (the last park's unless parked); since the now() at which it
** parked or became ready; deadline the now() at which its park times out,
** if any. */
static int l_tasks(lua_State *L) {
  cn_worker_t *w = cn_worker_self();
  double now = (double)uv_hrtime() / 1e9;
  uint64_t loop_now = uv_now(&w->loop);
  walk_t wk;
  size_t i;
  wk.n = 0;
  wk.list = lua_newuserdata(L, (w->ntasks + 1) * sizeof *wk.list);
  cn_sched_walk(w, collect, &wk);
  qsort(wk.list, wk.n, sizeof *wk.list, newest_first);
  lua_createtable(L, (int)wk.n, 0);
  for (i = 0; i < wk.n; i++) {
    cn_task_info_t info;
    lcn_push_task(L, wk.list[i], &info, 1);
    if (info.deadline != 0)
      lcn_set_number(L, "deadline",
                 now + ((double)info.deadline - (double)loop_now) / 1e3);
    lua_rawseti(L, -2, (int)i + 1);
  }
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


/* -- Lua timers ------------------------------------------------------- */

/* A Lua timer (lua/coronet/time.lua) is a channel table that owns a
** timer userdata: a node in the worker's timing wheel. When it fires, the
** fire function (given to timer_init) runs from the loop, outside any
** task, with the table and now(); a ticker's node goes back into the wheel
** first. While a node is pending, a registry table maps it to its channel,
** which keeps both alive (a userdata finalizer would cost each timer more
** than the timer itself). */

typedef struct {
  cn_timer_t node; /* first: the node is the userdata */
  uint64_t period; /* ms; 0: fires once */
} ltimer_t;

#define TIMER_MT "coronet.timer"



/* hold (1) or release (0) the channel of pending node lt; pushes the
** channel on L. */
static void hold(lua_State *L, ltimer_t *lt, int on, int chan) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, timers_ref);
  lua_pushlightuserdata(L, lt);
  if (on)
    lua_pushvalue(L, chan);
  else
    lua_pushnil(L);
  lua_rawset(L, -3);
  lua_pop(L, 1);
}


static void ltimer_fire(cn_timer_t *node) {
  ltimer_t *lt = (ltimer_t *)node;
  cn_worker_t *w = cn_worker_self();
  lua_State *L = w->L;
  uint64_t now = uv_now(&w->loop);
  lua_rawgeti(L, LUA_REGISTRYINDEX, fire_ref);
  lua_rawgeti(L, LUA_REGISTRYINDEX, timers_ref);
  lua_pushlightuserdata(L, lt);
  lua_rawget(L, -2);
  lua_replace(L, -2); /* fire, channel */
  if (lt->period > 0) { /* skips the ticks it fell behind on */
    uint64_t when = node->when + lt->period;
    if (when <= now)
      when += lt->period * ((now - when) / lt->period + 1);
    cn_timer_start(&w->timers, node, when);
  } else {
    ntimers--;
    hold(L, lt, 0, 0);
  }
  lua_pushnumber(L, (double)uv_hrtime() / 1e9);
  if (lua_pcall(L, 2, 0, 0) != 0) {
    cn_log(CN_LOG_ERROR, "timer: %s", lua_tostring(L, -1));
    lua_pop(L, 1);
  }
}


static int ltimer_stop(lua_State *L, ltimer_t *lt) {
  if (!cn_timer_stop(&cn_worker_self()->timers, &lt->node))
    return 0;
  ntimers--;
  hold(L, lt, 0, 0);
  return 1;
}


/* timer_init(fire): fire(channel, now) delivers a Lua timer's tick. */
static int l_timer_init(lua_State *L) {
  luaL_checktype(L, 1, LUA_TFUNCTION);
  luaL_unref(L, LUA_REGISTRYINDEX, fire_ref);
  fire_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  if (timers_ref == LUA_NOREF) {
    lua_newtable(L);
    timers_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  return 0;
}


/* timer() -> a stopped timer node */
static int l_timer(lua_State *L) {
  ltimer_t *lt;
  if (timers_ref == LUA_NOREF)
    return luaL_error(L, "timer: timer_init first");
  lt = lua_newuserdata(L, sizeof *lt);
  memset(lt, 0, sizeof *lt);
  lt->node.cb = ltimer_fire;
  luaL_getmetatable(L, TIMER_MT);
  lua_setmetatable(L, -2);
  return 1;
}


/* timer_start(node, channel, seconds [, period]) -> bool: (re)starts node
** to fire for channel seconds from now, then every period seconds (at
** least 1 ms) if given; true if it was pending. */
static int l_timer_start(lua_State *L) {
  ltimer_t *lt = luaL_checkudata(L, 1, TIMER_MT);
  uint64_t when;
  double period = luaL_optnumber(L, 4, 0);
  int was;
  luaL_checktype(L, 2, LUA_TTABLE);
  when = lcn_deadline_in(L, luaL_checknumber(L, 3));
  was = ltimer_stop(L, lt);
  lt->period = period > 0 ? (uint64_t)ceil(period * 1000) : 0;
  cn_timer_start(&cn_worker_self()->timers, &lt->node, when);
  ntimers++;
  hold(L, lt, 1, 2);
  lua_pushboolean(L, was);
  return 1;
}


/* timer_arm(channel, seconds [, period]) -> channel
** Gives channel a new node (channel.node), started as timer_start does:
** one call instead of two, at the bottom of a timer's making, so that a
** task waiting on a new timer needs no deeper stack (lua/coronet/time.lua,
** coronet.wait). The caller checked the numbers. */
static int l_timer_arm(lua_State *L) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 3);
  l_timer(L);
  lua_pushvalue(L, -1);
  lua_setfield(L, 1, "node");
  lua_insert(L, 1); /* node, channel, seconds, period */
  l_timer_start(L);
  lua_pushvalue(L, 2);
  return 1;
}


/* timer_stop(node) -> bool: true if this stopped a pending node. */
static int l_timer_stop(lua_State *L) {
  lua_pushboolean(L, ltimer_stop(L, luaL_checkudata(L, 1, TIMER_MT)));
  return 1;
}


/* timer_pending(node) -> bool */
static int l_timer_pending(lua_State *L) {
  ltimer_t *lt = luaL_checkudata(L, 1, TIMER_MT);
  lua_pushboolean(L, lt->node.on);
  return 1;
}


/* timers() -> the count of pending Lua timers */
static int l_timers(lua_State *L) {
  lua_pushnumber(L, (double)ntimers);
  return 1;
}


static const luaL_Reg funcs[] = {
  {"spawn", l_spawn},
  {"park", l_park},
  {"unpark", l_unpark},
  {"wake", l_wake},
  {"wake_park", l_wake_park},
  {"wake_node", l_wake_node},
  {"current", l_current},
  {"now", l_now},
  {"alive", l_alive},
  {"tag", l_tag},
  {"set_describe", l_set_describe},
  {"stats", l_stats},
  {"tasks", l_tasks},
  {"exit", l_exit},
  {"timer_init", l_timer_init},
  {"timer", l_timer},
  {"timer_start", l_timer_start},
  {"timer_arm", l_timer_arm},
  {"timer_stop", l_timer_stop},
  {"timer_pending", l_timer_pending},
  {"timers", l_timers},
  {NULL, NULL}};


/* luaopen_coronet_sched returns the functions above and waits, the
** numbers park takes: waits.read, waits.channel, ... */
int luaopen_coronet_sched(lua_State *L) {
  int i;
  lcn_class(L, TIMER_MT, NULL, NULL, NULL);
  lua_pop(L, 2);
  lua_newtable(L);
  luaL_register(L, NULL, funcs);
  lua_createtable(L, 0, CN_WAIT_NKINDS);
  for (i = 0; i < CN_WAIT_NKINDS; i++) {
    lua_pushinteger(L, i);
    lua_setfield(L, -2, cn_sched_wait_name(i));
  }
  lua_setfield(L, -2, "waits");
  return 1;
}
