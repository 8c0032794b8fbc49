/* lcn.h: what the Lua bindings (lcn_*.c) share: metatable names, helpers
** defined in lcn_host.c, and the luaopen_ functions. */
#ifndef LCN_H
#define LCN_H

#include <lua.h>

#include "cn.h"

#define LCN_CONN_MT "coronet.conn"

int lcn_fail(lua_State *L, int err);
uint64_t lcn_deadline_in(lua_State *L, double seconds);
uint64_t lcn_deadline_at(lua_State *L, double t);
void lcn_push_conn(lua_State *L, cn_conn_t *c);
cn_conn_t *lcn_to_conn(lua_State *L, int idx);
void lcn_serve_conn(cn_worker_t *w, int handler, cn_conn_t *c);

int luaopen_coronet_sched(lua_State *L);
int luaopen_coronet_conn(lua_State *L);
int luaopen_coronet_host(lua_State *L);
int luaopen_coronet_net(lua_State *L);
int luaopen_coronet_proc(lua_State *L);
int luaopen_coronet_fs(lua_State *L);

#endif
