/* lcn_group.c: Lua binding of groups of connections (cn_group.c):
** coronet.group() -> group with add, remove, send, send_batch, send_to,
** len, wait, drop_behind. group:wait is made blocking in
** lua/coronet/init.lua. */
#include <lauxlib.h>
#include <string.h>
#include <lua.h>

#include "cn.h"
#include "lcn.h"

#define GROUP_MT "coronet.group"
#define DEFAULT_LIMIT (1 << 20)

typedef struct {
  cn_group_t *g;
} group_box;


static cn_group_t *check_group(lua_State *L) {
  return ((group_box *)luaL_checkudata(L, 1, GROUP_MT))->g;
}


static cn_conn_t *check_member(lua_State *L, int idx) {
  return lcn_to_conn(L, idx); /* NULL once closed */
}


static int push_ok(lua_State *L, int rc) {
  if (rc < 0)
    return lcn_fail(L, rc);
  lua_pushboolean(L, 1);
  return 1;
}


/* new() -> an empty group */
static int group_new(lua_State *L) {
  group_box *b = lua_newuserdata(L, sizeof *b);
  b->g = NULL;
  luaL_getmetatable(L, GROUP_MT);
  lua_setmetatable(L, -2);
  if ((b->g = cn_group_new()) == NULL)
    return luaL_error(L, "coronet.group: out of memory");
  return 1;
}


/* group:add(conn [, {limit = bytes}]) -> true | nil, "closed"
** A member whose unsent bytes would pass limit (default 1 MiB) is closed
** and leaves. */
static int group_add(lua_State *L) {
  cn_group_t *g = check_group(L);
  cn_conn_t *c = check_member(L, 2);
  lua_Number limit = DEFAULT_LIMIT;
  if (!lua_isnoneornil(L, 3)) {
    if (lua_type(L, 3) == LUA_TTABLE)
      lua_getfield(L, 3, "limit");
    if (lua_type(L, 3) != LUA_TTABLE ||
        !(lua_isnil(L, -1) || lua_tonumber(L, -1) > 0))
      return luaL_error(L, "bad argument #2 to 'add' (expected {limit = N}, "
                           "N a positive number of bytes)");
    if (!lua_isnil(L, -1))
      limit = lua_tonumber(L, -1);
  }
  if (c == NULL)
    return lcn_fail(L, CN_ECLOSED);
  if (limit > (lua_Number)SIZE_MAX / 2)
    limit = (lua_Number)SIZE_MAX / 2;
  return push_ok(L, cn_group_add(g, c, (size_t)limit));
}


/* group:remove(conn) -> whether conn was a member */
static int group_remove(lua_State *L) {
  cn_group_t *g = check_group(L);
  cn_conn_t *c = check_member(L, 2);
  lua_pushboolean(L, c != NULL && cn_group_remove(g, c));
  return 1;
}


static cn_sblock_t *check_data(lua_State *L, int idx, const char *fname) {
  size_t n;
  const char *p;
  cn_sblock_t *s;
  if (lua_type(L, idx) != LUA_TSTRING)
    luaL_error(L, "bad argument #%d to '%s' (string expected, got %s)",
               idx - 1, fname, luaL_typename(L, idx));
  p = lua_tolstring(L, idx, &n);
  if ((s = cn_sblock_new(p, n)) == NULL)
    luaL_error(L, "%s: out of memory", fname);
  return s;
}


/* group:send(data [, except]) -> count
** Appends data to the write chain of every member but except (one copy of
** the bytes for all); returns how many members got it. */
static int group_send(lua_State *L) {
  cn_group_t *g = check_group(L);
  cn_conn_t *except = lua_isnoneornil(L, 3) ? NULL : check_member(L, 3);
  cn_sblock_t *s;
  size_t count = 0;
  if (lua_type(L, 2) == LUA_TSTRING && lua_objlen(L, 2) == 0) {
    lua_pushinteger(L, 0);
    return 1;
  }
  s = check_data(L, 2, "send");
  count = cn_group_send(g, s, except);
  cn_sblock_unref(s);
  lua_pushinteger(L, (lua_Integer)count);
  return 1;
}


/* batch_except returns the conn of excepts[i] (false, nil or a closed
** connection: NULL); raises for anything else. */
static cn_conn_t *batch_except(lua_State *L, int i) {
  cn_conn_t *c = NULL;
  lua_rawgeti(L, 3, i);
  if (lua_toboolean(L, -1)) {
    if (lua_type(L, -1) != LUA_TUSERDATA)
      luaL_error(L, "bad argument #2 to 'send_batch' (excepts[%d] is not "
                    "a connection)", i);
    c = lcn_to_conn(L, -1);
  }
  lua_pop(L, 1);
  return c;
}


/* group:send_batch(frames, excepts [, n]) -> count
** Hands out frames[1..n] (n: #frames) as one block: every member gets
** each frames[i] but the connection excepts[i] (false: none gets it
** left out), in order, in one append. Returns how many members got
** some. */
static int group_send_batch(lua_State *L) {
  cn_group_t *g = check_group(L);
  int i, n;
  size_t total = 0, len;
  cn_group_part_t *parts;
  cn_sblock_t *s;
  luaL_checktype(L, 2, LUA_TTABLE);
  luaL_checktype(L, 3, LUA_TTABLE);
  n = lua_isnoneornil(L, 4) ? (int)lua_objlen(L, 2) : luaL_checkint(L, 4);
  if (n < 0)
    return luaL_error(L, "bad argument #3 to 'send_batch' (count must not "
                         "be negative)");
  if (n == 0) {
    lua_pushinteger(L, 0);
    return 1;
  }
  parts = lua_newuserdata(L, (size_t)n * sizeof *parts); /* scratch */
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, 2, i);
    if (lua_type(L, -1) != LUA_TSTRING)
      return luaL_error(L, "bad argument #1 to 'send_batch' (frames[%d] is "
                           "%s, not a string)", i, luaL_typename(L, -1));
    total += lua_objlen(L, -1);
    lua_pop(L, 1);
    parts[i - 1].end = total;
    parts[i - 1].except = batch_except(L, i);
  }
  if ((s = cn_sblock_alloc(total)) == NULL)
    return luaL_error(L, "send_batch: out of memory");
  for (i = 1; i <= n; i++) {
    const char *p;
    lua_rawgeti(L, 2, i);
    p = lua_tolstring(L, -1, &len);
    memcpy(s->data + parts[i - 1].end - len, p, len);
    lua_pop(L, 1);
  }
  lua_pushinteger(L, (lua_Integer)cn_group_send_batch(g, s, parts,
                                                      (size_t)n));
  cn_sblock_unref(s);
  return 1;
}


/* group:send_to(conn, data) -> true | nil, err
** Appends data to one member's write chain, under its limit (over it, the
** member is closed: nil, "closed"); nil, "not found" for a non-member. */
static int group_send_to(lua_State *L) {
  cn_group_t *g = check_group(L);
  cn_conn_t *c = check_member(L, 2);
  cn_sblock_t *s = check_data(L, 3, "send_to");
  int rc = c != NULL ? cn_group_send_to(g, c, s) : CN_ENOTFOUND;
  cn_sblock_unref(s);
  return push_ok(L, rc);
}


/* group:len() -> count of members */
static int group_len(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)check_group(L)->n);
  return 1;
}


/* group:behind() -> count of members behind */
static int group_behind(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)check_group(L)->behind);
  return 1;
}


/* group:wait([timeout]) -> true | nil, "timeout" | false (parked)
** Returns true once no member is behind; until then parks the task (the
** Lua wrapper calls again when it wakes). */
static int group_wait(lua_State *L) {
  cn_group_t *g = check_group(L);
  cn_task_t *t = cn_sched_task(L, "group:wait");
  lua_Number tmo = luaL_optnumber(L, 2, -1);
  uint64_t start;
  if (g->behind == 0) {
    lcn_op_done();
    lua_pushboolean(L, 1);
    return 1;
  }
  if (cn_sched_timed_out(t) || tmo == 0) {
    lcn_op_done();
    return lcn_fail(L, CN_ETIMEOUT);
  }
  start = cn_sched_op_start(t);
  if (cn_group_wait(g, cn_sched_waiter(t)) < 0)
    return lcn_fail(L, CN_ENOMEM);
  cn_sched_park(t, CN_WAIT_WRITE, tmo > 0 ? start + (uint64_t)(tmo * 1000) + 1 : 0,
                cn_group_unwait, g);
  lua_pushboolean(L, 0);
  return 1;
}


/* group:drop_behind() -> count: closes every member that is behind */
static int group_drop_behind(lua_State *L) {
  lua_pushinteger(L, (lua_Integer)cn_group_drop_behind(check_group(L)));
  return 1;
}


/* group:dropped() -> members closed at their limit or as behind, ever */
static int group_dropped(lua_State *L) {
  lua_pushnumber(L, (lua_Number)check_group(L)->dropped);
  return 1;
}


static int group_gc(lua_State *L) {
  group_box *b = luaL_checkudata(L, 1, GROUP_MT);
  if (b->g != NULL)
    cn_group_free(b->g);
  b->g = NULL;
  return 0;
}


static int group_tostring(lua_State *L) {
  lua_pushfstring(L, "coronet.group (%d members)", (int)check_group(L)->n);
  return 1;
}


static const luaL_Reg methods[] = {
  {"add", group_add},       {"remove", group_remove},
  {"send", group_send},     {"send_batch", group_send_batch},
  {"send_to", group_send_to},
  {"len", group_len},       {"behind", group_behind},
  {"wait", group_wait},     {"drop_behind", group_drop_behind},
  {"dropped", group_dropped}, {NULL, NULL}};


int luaopen_coronet_group(lua_State *L) {
  lua_newtable(L);
  lua_pushcfunction(L, group_new);
  lua_setfield(L, -2, "new");
  lcn_class(L, GROUP_MT, methods, group_gc, group_tostring);
  lua_setfield(L, -3, "methods"); /* for the blocking wait */
  lua_pop(L, 1);
  return 1;
}
