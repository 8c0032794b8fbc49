/* lcn_shared.c: Lua binding of the shared dictionaries (cn_shared.c):
** coronet.shared(name [, {bytes = N}]) -> dict with get, set, add,
** replace, incr, delete, keys, flush_all, capacity, free_space. One
** userdata per dictionary and worker, kept for the Lua state's life, so
** that a dictionary outlives reloads. */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "cn.h"
#include "lcn.h"

#define SHARED_MT "coronet.shared"
#define DEFAULT_BYTES (1 << 20)
#define KEYS_MAX 1024

typedef struct {
  cn_shared_t *d;
} dict_box;


static cn_shared_t *check_dict(lua_State *L) {
  return ((dict_box *)luaL_checkudata(L, 1, SHARED_MT))->d;
}


/* bad_arg raises "bad argument #i to 'dict:fname' (msg)", counting from
** the first argument after the dictionary. */
static int bad_arg(lua_State *L, const char *fname, int idx, const char *msg) {
  return luaL_error(L, "bad argument #%d to '%s' (%s)", idx - 1, fname, msg);
}


static const char *check_key(lua_State *L, const char *fname, size_t *n) {
  const char *k;
  if (lua_type(L, 2) != LUA_TSTRING)
    bad_arg(L, fname, 2, lua_pushfstring(L, "string expected, got %s",
                                         luaL_typename(L, 2)));
  k = lua_tolstring(L, 2, n);
  if (*n == 0)
    bad_arg(L, fname, 2, "empty key");
  return k;
}


/* check_value reads the value at idx: nil, a string, a number or a
** boolean. */
static void check_value(lua_State *L, const char *fname, int idx,
                        cn_shared_val_t *v) {
  v->str = NULL;
  v->len = 0;
  v->num = 0;
  switch (lua_type(L, idx)) {
  case LUA_TNIL:
  case LUA_TNONE:
    v->type = CN_SHARED_NIL;
    break;
  case LUA_TSTRING:
    v->type = CN_SHARED_STRING;
    v->str = lua_tolstring(L, idx, &v->len);
    break;
  case LUA_TNUMBER:
    v->type = CN_SHARED_NUMBER;
    v->num = lua_tonumber(L, idx);
    break;
  case LUA_TBOOLEAN:
    v->type = CN_SHARED_BOOL;
    v->num = lua_toboolean(L, idx);
    break;
  default:
    bad_arg(L, fname, idx, lua_pushfstring(L, "string, number or boolean "
                                              "expected, got %s",
                                           luaL_typename(L, idx)));
  }
}


/* dict:get(key) -> value | nil */
static int dict_get(lua_State *L) {
  cn_shared_t *d = check_dict(L);
  size_t n, cap;
  const char *k = check_key(L, "get", &n);
  char stack[512], *buf = stack;
  cn_shared_val_t v;
  int rc;
  cap = sizeof stack;
  rc = cn_shared_get(d, k, n, &v, &buf, &cap);
  if (rc < 0)
    return lcn_fail(L, rc);
  if (v.type == CN_SHARED_STRING)
    lua_pushlstring(L, v.str, v.len);
  else if (v.type == CN_SHARED_NUMBER)
    lua_pushnumber(L, v.num);
  else if (v.type == CN_SHARED_BOOL)
    lua_pushboolean(L, v.num != 0);
  else
    lua_pushnil(L);
  if (buf != stack)
    free(buf);
  return 1;
}


static int store(lua_State *L, const char *fname, int mode) {
  cn_shared_t *d = check_dict(L);
  size_t n;
  const char *k = check_key(L, fname, &n);
  cn_shared_val_t v;
  double ttl = 0;
  check_value(L, fname, 3, &v);
  if (!lua_isnoneornil(L, 4)) {
    ttl = lua_tonumber(L, 4);
    if (lua_type(L, 4) != LUA_TNUMBER || ttl < 0)
      bad_arg(L, fname, 4, "ttl must be a number of seconds, 0 or more");
  }
  return lcn_ok(L, cn_shared_set(d, k, n, &v, ttl, mode));
}


/* dict:set(key, value [, ttl]) -> true | nil, "no memory"
** Stores value (nil deletes) for ttl seconds (0 or none: for good),
** evicting the least recently used entries to make room. */
static int dict_set(lua_State *L) { return store(L, "set", CN_SHARED_SET); }


/* dict:add(key, value [, ttl]) -> true | nil, "exists" | nil, "no memory"
** Like set, only when key has no value, and never evicting. */
static int dict_add(lua_State *L) { return store(L, "add", CN_SHARED_ADD); }


/* dict:replace(key, value [, ttl]) -> true | nil, "not found" | nil,
** "no memory": like set, only when key has a value. */
static int dict_replace(lua_State *L) { return store(L, "replace", CN_SHARED_REPLACE); }


/* dict:incr(key, n [, init]) -> new value | nil, "not found" | nil,
** "not a number" | nil, "no memory"
** Adds n to key's number; a missing key starts at init when given. */
static int dict_incr(lua_State *L) {
  cn_shared_t *d = check_dict(L);
  size_t n;
  const char *k = check_key(L, "incr", &n);
  double by, init = 0, result = 0;
  int rc;
  if (lua_type(L, 3) != LUA_TNUMBER)
    bad_arg(L, "incr", 3, "number expected");
  by = lua_tonumber(L, 3);
  if (!lua_isnoneornil(L, 4)) {
    if (lua_type(L, 4) != LUA_TNUMBER)
      bad_arg(L, "incr", 4, "number expected");
    init = lua_tonumber(L, 4);
  }
  rc = cn_shared_incr(d, k, n, by, lua_isnoneornil(L, 4) ? NULL : &init,
                      &result);
  if (rc < 0)
    return lcn_fail(L, rc);
  lua_pushnumber(L, result);
  return 1;
}


/* dict:delete(key) -> true */
static int dict_delete(lua_State *L) {
  cn_shared_t *d = check_dict(L);
  size_t n;
  const char *k = check_key(L, "delete", &n);
  cn_shared_val_t v = {CN_SHARED_NIL, 0, NULL, 0};
  return lcn_ok(L, cn_shared_set(d, k, n, &v, 0, CN_SHARED_SET));
}


/* dict:keys([max]) -> list of up to max (default 1024, 0: every) keys,
** most recently used first */
static int dict_keys(lua_State *L) {
  cn_shared_t *d = check_dict(L);
  lua_Number max = KEYS_MAX;
  size_t count, i;
  char *block, *p;
  if (!lua_isnoneornil(L, 2)) {
    max = lua_tonumber(L, 2);
    if (lua_type(L, 2) != LUA_TNUMBER || max < 0)
      bad_arg(L, "keys", 2, "max must be a number, 0 or more");
  }
  block = cn_shared_keys(d, max > 1e15 ? 0 : (size_t)max, &count);
  lua_createtable(L, (int)count, 0);
  for (i = 0, p = block; i < count; i++) {
    size_t len;
    memcpy(&len, p, sizeof len);
    lua_pushlstring(L, p + sizeof len, len);
    lua_rawseti(L, -2, (int)i + 1);
    p += sizeof len + len;
  }
  free(block);
  return 1;
}


/* dict:flush_all() -> true: removes every entry */
static int dict_flush_all(lua_State *L) {
  cn_shared_flush(check_dict(L));
  lua_pushboolean(L, 1);
  return 1;
}


/* dict:capacity() -> bytes; dict:free_space() -> bytes */
static int dict_usage(lua_State *L, int free_space) {
  size_t used, cap;
  cn_shared_usage(check_dict(L), &used, &cap);
  lua_pushnumber(L, (lua_Number)(free_space ? cap - used : cap));
  return 1;
}
static int dict_capacity(lua_State *L) { return dict_usage(L, 0); }
static int dict_free_space(lua_State *L) { return dict_usage(L, 1); }


static int dict_gc(lua_State *L) {
  dict_box *b = luaL_checkudata(L, 1, SHARED_MT);
  if (b->d != NULL)
    cn_shared_release(b->d);
  b->d = NULL;
  return 0;
}


static int dict_tostring(lua_State *L) {
  lua_pushfstring(L, "coronet.shared (%s)", cn_shared_name(check_dict(L)));
  return 1;
}


/* open(name [, {bytes = N}]) -> dict: the same one on every call of this
** worker (the registry's table keeps it for the state's life). */
static int l_open(lua_State *L) {
  const char *name = lua_tostring(L, 1);
  lua_Number bytes = DEFAULT_BYTES;
  dict_box *b;
  if (lua_type(L, 1) != LUA_TSTRING)
    return luaL_error(L, "bad argument #1 to 'shared' (string expected, "
                         "got %s)", luaL_typename(L, 1));
  if (!lua_isnoneornil(L, 2)) {
    if (lua_type(L, 2) == LUA_TTABLE)
      lua_getfield(L, 2, "bytes");
    if (lua_type(L, 2) != LUA_TTABLE ||
        !(lua_isnil(L, -1) || lua_tonumber(L, -1) > 0))
      return luaL_error(L, "bad argument #2 to 'shared' (expected {bytes = "
                           "N}, N a positive number)");
    if (!lua_isnil(L, -1))
      bytes = lua_tonumber(L, -1);
    lua_pop(L, 1);
  }
  lua_getfield(L, LUA_REGISTRYINDEX, SHARED_MT);
  lua_getfield(L, -1, "open");
  lua_getfield(L, -1, name);
  if (!lua_isnil(L, -1))
    return 1;
  lua_pop(L, 1);
  b = lua_newuserdata(L, sizeof *b);
  b->d = NULL;
  luaL_getmetatable(L, SHARED_MT);
  lua_setmetatable(L, -2);
  if ((b->d = cn_shared_open(name, (size_t)bytes)) == NULL)
    return luaL_error(L, "coronet.shared: out of memory");
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, name);
  return 1;
}


static const luaL_Reg methods[] = {
  {"get", dict_get},           {"set", dict_set},
  {"add", dict_add},           {"replace", dict_replace},
  {"incr", dict_incr},         {"delete", dict_delete},
  {"keys", dict_keys},         {"flush_all", dict_flush_all},
  {"capacity", dict_capacity}, {"free_space", dict_free_space},
  {NULL, NULL}};


int luaopen_coronet_shared(lua_State *L) {
  lcn_class(L, SHARED_MT, methods, dict_gc, dict_tostring);
  lua_pop(L, 1);
  lua_newtable(L);
  lua_setfield(L, -2, "open"); /* name -> dict, for the state's life */
  lua_pop(L, 1);
  lua_pushcfunction(L, l_open);
  return 1;
}
