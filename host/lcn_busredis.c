/* lcn_busredis.c: Lua binding of the bus across processes through Redis
** (cn_busredis.c): its state, for coronet.bus.status(). */
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


static const luaL_Reg funcs[] = {{"status", busredis_status}, {NULL, NULL}};


int luaopen_coronet_busredis(lua_State *L) {
  lua_newtable(L);
  luaL_register(L, NULL, funcs);
  return 1;
}
