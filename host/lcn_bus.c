/* lcn_bus.c: Lua binding of the bus between workers (cn_bus.c), for
** lua/coronet/bus.lua, which keeps each worker's subscriptions and hands
** them what this binding takes from the engine: each message becomes one
** Lua string per worker. */
#include <lauxlib.h>
#include <lua.h>

#include "cn.h"
#include "lcn.h"

#define BUS_ANCHOR "coronet.bus.anchor"


/* publish(topic, msg, delivered, dropped) -> workers
** Queues msg for the subscribers of topic on the other workers; the
** caller delivered it to this worker's own, with the counts given. */
static int bus_publish(lua_State *L) {
  size_t tlen, n;
  const char *topic = luaL_checklstring(L, 1, &tlen);
  const char *msg = luaL_checklstring(L, 2, &n);
  int rc;
  cn_bus_count((uint64_t)luaL_optnumber(L, 3, 0),
               (uint64_t)luaL_optnumber(L, 4, 0));
  rc = cn_bus_publish(cn_worker_self(), topic, tlen, msg, n);
  if (rc < 0)
    return luaL_error(L, "bus.publish: %s", cn_strerror(rc));
  lua_pushinteger(L, rc);
  return 1;
}


/* interest(topic, cap): this worker keeps up to cap messages of topic
** waiting (0: none, its interest ends). */
static int bus_interest(lua_State *L) {
  size_t tlen;
  const char *topic = luaL_checklstring(L, 1, &tlen);
  lua_Number cap = luaL_checknumber(L, 2);
  int rc = cn_bus_interest(cn_worker_self(), topic, tlen,
                           cap > 0 ? (size_t)cap : 0);
  if (rc < 0)
    return luaL_error(L, "bus.subscribe: %s", cn_strerror(rc));
  return 0;
}


/* take([poll]) -> topic, msg, lost | false | nil
** The next message for this worker, and how many of its topic were
** dropped before it; when none waits, false after parking the task until
** one comes, or nil at once when poll is set. */
static int bus_take(lua_State *L) {
  cn_worker_t *w = cn_worker_self();
  uint64_t lost = 0;
  cn_bus_msg_t *m = cn_bus_take(w, &lost);
  cn_task_t *t;
  if (m == NULL && lua_toboolean(L, 1))
    return 0;
  if (m == NULL) {
    t = cn_sched_task(L, "bus");
    cn_bus_wait(w, cn_sched_waiter(t));
    cn_sched_park(t, CN_WAIT_BUS, 0, cn_bus_unwait, w);
    lua_pushboolean(L, 0);
    return 1;
  }
  lua_pushlstring(L, m->bytes, m->tlen);
  lua_pushlstring(L, cn_bus_msg_data(m), m->len);
  lua_pushnumber(L, (lua_Number)lost);
  cn_bus_msg_unref(m);
  return 3;
}


/* kick(): wakes the task parked in take(), if any. */
static int bus_kick(lua_State *L) {
  (void)L;
  cn_bus_kick(cn_worker_self());
  return 0;
}


/* count(delivered, dropped): adds to the process's counters. */
static int bus_count(lua_State *L) {
  cn_bus_count((uint64_t)luaL_checknumber(L, 1),
               (uint64_t)luaL_checknumber(L, 2));
  return 0;
}


/* stats() -> {published=, delivered=, dropped=, topics=}, process-wide */
static int bus_stats(lua_State *L) {
  cn_bus_stats_t st;
  cn_bus_stats(&st);
  lua_createtable(L, 0, 4);
  lua_pushnumber(L, (lua_Number)st.published);
  lua_setfield(L, -2, "published");
  lua_pushnumber(L, (lua_Number)st.delivered);
  lua_setfield(L, -2, "delivered");
  lua_pushnumber(L, (lua_Number)st.dropped);
  lua_setfield(L, -2, "dropped");
  lua_pushnumber(L, (lua_Number)st.topics);
  lua_setfield(L, -2, "topics");
  return 1;
}


/* The anchor's __gc runs when the worker's Lua state closes: the worker
** leaves the bus. */
static int anchor_gc(lua_State *L) {
  (void)L;
  cn_bus_worker_close(cn_worker_self());
  return 0;
}


static const luaL_Reg funcs[] = {
  {"publish", bus_publish}, {"interest", bus_interest},
  {"take", bus_take},       {"kick", bus_kick},
  {"count", bus_count},     {"stats", bus_stats},
  {NULL, NULL}};


int luaopen_coronet_bus(lua_State *L) {
  lua_newtable(L);
  luaL_register(L, NULL, funcs);
  lua_newuserdata(L, 1);
  lcn_class(L, BUS_ANCHOR, NULL, anchor_gc, NULL);
  lua_pop(L, 1); /* the methods (none) */
  lua_setmetatable(L, -2);
  lua_setfield(L, -2, "_anchor"); /* lives as long as the module */
  return 1;
}
