/* lcn_busredis.c: Lua binding of the bus across processes through Redis
** (cn_busredis.c): its state, for coronet.bus.status(), and its URL, for
** scripts that keep more than messages in the same Redis. */
#include <lauxlib.h>
#include <lua.h>

#include "cn.h"
#include "lcn.h"


/* status() -> "up" | "down" | "local", {published=, received=, dropped=,
** lost=, outages=, outbox=, unconfirmed=, redis=}
** "local" without --bus (the bus spans this process only). */
static int busredis_status(lua_State *L) {
  cn_busredis_stats_t st;
  cn_busredis_stats(&st);
  lua_pushstring(L, !st.configured ? "local" : st.up ? "up" : "down");
  lua_createtable(L, 0, 8);
  lcn_set_number(L, "published", (double)st.published);
  lcn_set_number(L, "received", (double)st.received);
  lcn_set_number(L, "dropped", (double)st.dropped);
  lcn_set_number(L, "lost", (double)st.lost);
  lcn_set_number(L, "outages", (double)st.outages);
  lcn_set_number(L, "outbox", (double)st.outbox);
  lcn_set_number(L, "unconfirmed", (double)st.unconfirmed);
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
