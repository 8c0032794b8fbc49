/* lcn_busredis.c: Lua binding of the bus across processes through Redis
** (cn_busredis.c): its state, for coronet.bus.status(), and its URL, for
** scripts that keep more than messages in the same Redis. */
#include <lauxlib.h>
#include <lua.h>

#include "cn.h"
#include "lcn.h"


static void set_count(lua_State *L, const char *name, uint64_t v) {
  lua_pushnumber(L, (lua_Number)v);
  lua_setfield(L, -2, name);
}


/* status() -> "up" | "down" | "local", {published=, received=, dropped=,
** lost=, outages=, outbox=, unconfirmed=, redis=}
** "local" without --bus (the bus spans this process only). */
static int busredis_status(lua_State *L) {
  cn_busredis_stats_t st;
  cn_busredis_stats(&st);
  lua_pushstring(L, !st.configured ? "local" : st.up ? "up" : "down");
  lua_createtable(L, 0, 8);
  set_count(L, "published", st.published);
  set_count(L, "received", st.received);
  set_count(L, "dropped", st.dropped);
  set_count(L, "lost", st.lost);
  set_count(L, "outages", st.outages);
  set_count(L, "outbox", st.outbox);
  set_count(L, "unconfirmed", st.unconfirmed);
  if (st.configured) {
    lua_pushstring(L, st.where);
    lua_setfield(L, -2, "redis");
  }
  return 2;
}


/* up() -> true | false, or nil without --bus: as status(), lighter */
static int busredis_up(lua_State *L) {
  cn_busredis_stats_t st;
  cn_busredis_stats(&st);
  if (!st.configured)
    return 0;
  lua_pushboolean(L, st.up);
  return 1;
}


/* progress() -> queued, settled: how many messages this process queued
** for Redis, and up to which one all are settled (taken by Redis, or
** counted lost); nil without --bus */
static int busredis_progress(lua_State *L) {
  cn_busredis_stats_t st;
  cn_busredis_stats(&st);
  if (!st.configured)
    return 0;
  lua_pushnumber(L, (lua_Number)st.queued);
  lua_pushnumber(L, (lua_Number)st.settled);
  return 2;
}


/* url() -> the URL given to --bus (with its password), or nil */
static int busredis_url(lua_State *L) {
  const char *url = cn_busredis_url();
  if (url == NULL)
    return 0;
  lua_pushstring(L, url);
  return 1;
}


/* publish(topic, msg) -> true | nil, err
** Sends msg to topic's subscribers in every process, this one's too,
** through Redis: they all get the topic's messages in one order. */
static int busredis_publish(lua_State *L) {
  size_t tlen, n;
  const char *topic = luaL_checklstring(L, 1, &tlen);
  const char *msg = luaL_checklstring(L, 2, &n);
  return lcn_ok(L, cn_busredis_publish(topic, tlen, msg, n));
}


static const luaL_Reg funcs[] = {{"status", busredis_status},
                                 {"up", busredis_up},
                                 {"progress", busredis_progress},
                                 {"url", busredis_url},
                                 {"publish", busredis_publish},
                                 {NULL, NULL}};


int luaopen_coronet_busredis(lua_State *L) {
  return lcn_lib(L, funcs, NULL, NULL);
}
