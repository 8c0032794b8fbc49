/* lcn_redis.c: Lua binding of the Redis protocol (cn_resp.c) over
** connections: commands encoded straight into a connection's write chain,
** replies parsed straight from its read chain into Lua values. The client
** (connect, pipelines, pub/sub, the pool) is lua/coronet/redis.lua.
**
** Replies map to Lua as: status, bulk, verbatim (without its "txt:") and
** big-number strings -> strings; integers -> numbers (beyond 2^53, exact
** decimal strings); doubles -> numbers; booleans -> booleans; arrays,
** sets and pushes -> lists; maps -> tables; attributes are dropped; null
** -> the null sentinel (upvalue 1); an error -> a table {err = message}
** with the error metatable (upvalue 2). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "cn.h"
#include "lcn.h"

#define RESP_MT "coronet.resp"
#define PREALLOC 1024 /* table slots made ahead of the elements at most */

typedef struct {
  cn_resp_t p;
  size_t fed; /* bytes of the reply in progress framed so far */
  int framing; /* a reply is in progress, framed without decoding */
} resp_box;


static resp_box *check_resp(lua_State *L, int idx) {
  return luaL_checkudata(L, idx, RESP_MT);
}


/* -- Decoding ---------------------------------------------------------- */

/* dec_t builds a reply's Lua value on L's stack as the parser walks it:
** each open aggregate is a table on the stack (a map's pending key above
** it); a string's pieces gather in lb when there are several. */
typedef struct {
  lua_State *L;
  int depth;
  struct {
    int idx;  /* the table's stack slot */
    int type;
    int n;    /* elements put so far */
    int key;  /* a map key waits above the table */
  } fr[CN_RESP_MAX_DEPTH];
  int stype, pieces;
  const char *one; /* the first piece of the string being read */
  size_t onelen;
  int top_type; /* the type of the reply's own value */
  luaL_Buffer lb;
} dec_t;


/* put moves the finished value on top of the stack into the aggregate
** being built; the reply's own value stays on top. */
static int put(dec_t *d) {
  lua_State *L = d->L;
  if (d->depth == 0)
    return 0;
  if (d->fr[d->depth - 1].type == CN_RESP_MAP ||
      d->fr[d->depth - 1].type == CN_RESP_ATTR) {
    if (!d->fr[d->depth - 1].key) {
      d->fr[d->depth - 1].key = 1; /* waits for its value */
      return 0;
    }
    d->fr[d->depth - 1].key = 0;
    if (lua_type(L, -2) == LUA_TNUMBER && isnan(lua_tonumber(L, -2)))
      lua_pop(L, 2); /* a NaN cannot be a Lua key */
    else
      lua_rawset(L, d->fr[d->depth - 1].idx);
    return 0;
  }
  lua_rawseti(L, d->fr[d->depth - 1].idx, ++d->fr[d->depth - 1].n);
  return 0;
}


/* push_int pushes n as a number, or as its decimal string when a double
** cannot hold it exactly. */
static void push_int(lua_State *L, int64_t n) {
  if (n >= -(INT64_C(1) << 53) && n <= INT64_C(1) << 53) {
    lua_pushnumber(L, (lua_Number)n);
  } else {
    char buf[24];
    snprintf(buf, sizeof buf, "%lld", (long long)n);
    lua_pushstring(L, buf);
  }
}


static int dec_value(void *ud, int type, int64_t n) {
  dec_t *d = ud;
  lua_State *L = d->L;
  int prealloc = n < PREALLOC ? (int)n : PREALLOC;
  if (d->depth == 0 && type != CN_RESP_ATTR)
    d->top_type = type;
  switch (type) {
  case CN_RESP_INT:
    push_int(L, n);
    return put(d);
  case CN_RESP_BOOL:
    lua_pushboolean(L, (int)n);
    return put(d);
  case CN_RESP_NULL:
    lua_pushvalue(L, lua_upvalueindex(1));
    return put(d);
  case CN_RESP_MAP:
  case CN_RESP_ATTR:
    lua_createtable(L, 0, prealloc);
    break;
  case CN_RESP_ARRAY:
  case CN_RESP_SET:
  case CN_RESP_PUSH:
    lua_createtable(L, prealloc, 0);
    break;
  default: /* a string: its bytes follow */
    d->stype = type;
    d->pieces = 0;
    return 0;
  }
  d->fr[d->depth].idx = lua_gettop(L);
  d->fr[d->depth].type = type;
  d->fr[d->depth].n = 0;
  d->fr[d->depth].key = 0;
  d->depth++;
  return 0;
}


static int dec_data(void *ud, const char *p, size_t n) {
  dec_t *d = ud;
  if (d->pieces == 0) {
    d->one = p; /* the read chain stays as it is while decoding */
    d->onelen = n;
  } else {
    if (d->pieces == 1) {
      luaL_buffinit(d->L, &d->lb);
      luaL_addlstring(&d->lb, d->one, d->onelen);
    }
    luaL_addlstring(&d->lb, p, n);
  }
  d->pieces++;
  return 0;
}


/* push_double pushes the number a RESP3 double's text s says ("1.5",
** "inf", "-inf", "nan"), or s itself when it says none. */
static void push_double(lua_State *L, const char *s, size_t n) {
  char buf[64], *end;
  double v;
  if (n > 0 && n < sizeof buf) {
    memcpy(buf, s, n);
    buf[n] = '\0';
    v = strtod(buf, &end);
    if (end == buf + n) {
      lua_pushnumber(L, v);
      return;
    }
  }
  lua_pushlstring(L, s, n);
}


/* end_string pushes the finished string value of type d->stype. */
static void end_string(dec_t *d) {
  lua_State *L = d->L;
  size_t n;
  const char *s;
  if (d->pieces > 1)
    luaL_pushresult(&d->lb);
  else
    lua_pushlstring(L, d->pieces == 1 ? d->one : "", d->pieces ? d->onelen : 0);
  switch (d->stype) {
  case CN_RESP_ERROR:
  case CN_RESP_BLOBERR:
    lua_createtable(L, 0, 1);
    lua_insert(L, -2);
    lua_setfield(L, -2, "err");
    lua_pushvalue(L, lua_upvalueindex(2));
    lua_setmetatable(L, -2);
    break;
  case CN_RESP_DOUBLE:
    s = lua_tolstring(L, -1, &n);
    push_double(L, s, n);
    lua_remove(L, -2);
    break;
  case CN_RESP_VERBATIM: /* "txt:" or "mkd:" before the text */
    s = lua_tolstring(L, -1, &n);
    if (n >= 4 && s[3] == ':') {
      lua_pushlstring(L, s + 4, n - 4);
      lua_remove(L, -2);
    }
    break;
  default:
    break;
  }
}


static int dec_end(void *ud, int type) {
  dec_t *d = ud;
  switch (type) {
  case CN_RESP_ARRAY:
  case CN_RESP_SET:
  case CN_RESP_PUSH:
  case CN_RESP_MAP:
    d->depth--;
    return put(d);
  case CN_RESP_ATTR: /* dropped: what it says is not the reply */
    d->depth--;
    lua_pop(d->L, 1);
    return 0;
  default:
    end_string(d);
    return put(d);
  }
}


static const cn_resp_hooks_t dec_hooks = {dec_value, dec_data, dec_end};


/* decode parses the reply at the head of c's read chain while building
** its value. Returns CN_RESP_DONE with the value pushed and its bytes
** consumed (*type: its type), CN_RESP_MORE with nothing pushed (the reply
** is not all here: rb then frames it as it arrives), or an error. */
static int decode(lua_State *L, resp_box *rb, cn_conn_t *c, int *type) {
  dec_t d;
  int top = lua_gettop(L), rc;
  size_t used;
  luaL_checkstack(L, 2 * CN_RESP_MAX_DEPTH + 32, "reply too deep");
  d.L = L;
  d.depth = 0;
  d.pieces = 0;
  d.top_type = 0;
  cn_resp_reset(&rb->p); /* from the reply's first byte */
  rb->p.hooks = &dec_hooks;
  rb->p.ud = &d;
  rc = cn_resp_feed_buf(&rb->p, &c->in, 0, &used);
  rb->p.hooks = NULL;
  rb->p.ud = NULL;
  if (rc == CN_RESP_DONE) {
    cn_buf_consume(&c->in, used);
    *type = d.top_type;
    return rc;
  }
  lua_settop(L, top);
  if (rc == CN_RESP_MORE) {
    rb->framing = 1;
    rb->fed = used;
  }
  return rc;
}


/* next_reply pushes the next whole reply in c's read chain. Returns as
** decode does. A reply that arrives in pieces is framed as they come
** (each byte looked at once) and decoded once it is all here. */
static int next_reply(lua_State *L, resp_box *rb, cn_conn_t *c, int *type) {
  size_t used;
  int rc;
  if (rb->framing) {
    rb->p.hooks = NULL;
    rc = cn_resp_feed_buf(&rb->p, &c->in, rb->fed, &used);
    rb->fed += used;
    if (rc != CN_RESP_DONE)
      return rc;
    rb->framing = 0;
    rb->fed = 0;
  }
  return decode(L, rb, c, type);
}


/* -- The calls --------------------------------------------------------- */


/* failed ends c after a protocol error: pushes nil, "redis: protocol
** error: ..." (or the error) and returns 2. */
static int failed(lua_State *L, resp_box *rb, cn_conn_t *c, int err) {
  lcn_op_done();
  cn_conn_abort(c);
  lua_pushnil(L);
  if (err == CN_EPROTO)
    lua_pushfstring(L, "redis: protocol error: %s", rb->p.err);
  else
    lua_pushfstring(L, "redis: %s", cn_strerror(err));
  cn_resp_reset(&rb->p);
  rb->framing = 0;
  return 2;
}


/* read(resp, conn, out, i, n [, pushq]) -> n + 1 | false, i | nil, err
** Reads replies into out[i..n]. With pushq, a RESP3 push that arrives
** first is appended to pushq instead. Parks when the next reply is not
** all here (false, and the index reached: call again with it). A
** malformed reply, or one past the limits, aborts conn: nil, "redis:
** protocol error: ...". EOF: nil, "eof" (or "unexpected eof" inside a
** reply); a read timeout: nil, "timeout". */
static int redis_read(lua_State *L) {
  resp_box *rb = check_resp(L, 1);
  cn_conn_t *c = lcn_reader_conn(L, 2);
  int i = (int)luaL_checkinteger(L, 4), n = (int)luaL_checkinteger(L, 5);
  int pushq = lua_istable(L, 6), progress = 0, type, rc, top;
  luaL_checktype(L, 3, LUA_TTABLE);
  if (c == NULL)
    return 2;
  while (i <= n) {
    if ((rc = next_reply(L, rb, c, &type)) < 0)
      return failed(L, rb, c, rc);
    if (rc == CN_RESP_MORE)
      break;
    progress = 1;
    if (type == CN_RESP_PUSH && pushq)
      lua_rawseti(L, 6, (int)lua_objlen(L, 6) + 1);
    else
      lua_rawseti(L, 3, i++);
  }
  if (progress) {
    cn_conn_consumed(c);
    lcn_op_done(); /* a timeout bounds the wait for each reply */
  }
  if (i > n) {
    lua_pushinteger(L, i);
    return 1;
  }
  if (c->werr != 0 && c->rerr == 0)
    return lcn_fail(L, c->werr);
  top = lua_gettop(L);
  if (lcn_conn_park_want(L, c, c->in.len + (size_t)cn_resp_need(&rb->p),
                         "redis") == 1) {
    lua_pushinteger(L, i); /* parked: false, i */
    return 2;
  }
  lua_settop(L, top + 2); /* nil, err without the partial bytes */
  return 2;
}


/* push_arg writes one command argument (a string, or a number in its
** shortest exact decimal form) as a bulk string to c. */
static int push_arg(lua_State *L, cn_conn_t *c, int idx) {
  char buf[96], num[32];
  const char *s;
  size_t len, k;
  int err;
  if (lua_type(L, idx) == LUA_TNUMBER) {
    double v = lua_tonumber(L, idx);
    int prec = 15;
    if (v == floor(v) && fabs(v) < 9e18)
      snprintf(num, sizeof num, "%lld", (long long)v);
    else /* the fewest digits that read back as v */
      do
        snprintf(num, sizeof num, "%.*g", prec, v);
      while (strtod(num, NULL) != v && ++prec <= 17);
    s = num;
    len = strlen(num);
  } else {
    s = lua_tolstring(L, idx, &len);
  }
  k = cn_resp_header(buf, CN_RESP_BULK, len);
  if (len + k + 2 <= sizeof buf) { /* small: one append */
    memcpy(buf + k, s, len);
    memcpy(buf + k + len, "\r\n", 2);
    return cn_conn_write(c, buf, k + len + 2);
  }
  if ((err = cn_conn_write(c, buf, k)) < 0 ||
      (err = cn_conn_write(c, s, len)) < 0)
    return err;
  return cn_conn_write(c, "\r\n", 2);
}


/* send(conn, cmd, arg...) -> true | nil, err
** Appends the command to conn's write chain (it leaves when the task
** parks). Arguments are strings or numbers; anything else raises, naming
** the command: bad argument #2 to 'set' (string expected, got table). */
static int redis_send(lua_State *L) {
  int top = lua_gettop(L), i, err;
  const char *cmd = luaL_checkstring(L, 2);
  char head[24];
  cn_conn_t *c;
  for (i = 3; i <= top; i++) {
    int t = lua_type(L, i);
    if (t != LUA_TSTRING && t != LUA_TNUMBER)
      return luaL_error(L, "bad argument #%d to '%s' (string expected, got "
                        "%s)", i - 2, cmd, luaL_typename(L, i));
  }
  if ((c = lcn_open_conn(L, 1)) == NULL)
    return 2;
  err = cn_conn_write(c, head, cn_resp_header(head, CN_RESP_ARRAY,
                                              (size_t)(top - 1)));
  for (i = 2; i <= top && err == 0; i++)
    err = push_arg(L, c, i);
  return lcn_ok(L, err);
}


/* idle(resp, conn) -> bool: conn is open, nothing is buffered either way
** and no reply is in progress: it may go back to a pool. */
static int redis_idle(lua_State *L) {
  resp_box *rb = check_resp(L, 1);
  cn_conn_t *c = lcn_to_conn(L, 2);
  lua_pushboolean(L, c != NULL && !(c->flags & CN_CONN_CLOSED) &&
                       c->rerr == 0 && c->werr == 0 && c->in.len == 0 &&
                       c->reader == NULL && c->writer == NULL &&
                       !rb->framing);
  return 1;
}


static uint64_t opt_limit(lua_State *L, int idx, const char *name,
                          uint64_t def, uint64_t max) {
  lua_Number v;
  lua_getfield(L, idx, name);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    return def;
  }
  v = lua_tonumber(L, -1);
  if (!(v >= 1 && v <= (lua_Number)max))
    luaL_error(L, "bad option '%s' (a number from 1 to %f expected)", name,
               (lua_Number)max);
  lua_pop(L, 1);
  return (uint64_t)v;
}


/* new([limits]) -> resp: a reply parser for one connection. limits may set
** max_bulk, max_reply (bytes), max_count (elements of an aggregate) and
** max_depth (nesting, at most 64). */
static int redis_new(lua_State *L) {
  resp_box *rb;
  int has = lua_istable(L, 1);
  rb = lua_newuserdata(L, sizeof *rb);
  cn_resp_init(&rb->p);
  rb->fed = 0;
  rb->framing = 0;
  luaL_getmetatable(L, RESP_MT);
  lua_setmetatable(L, -2);
  if (has) {
    rb->p.max_bulk = opt_limit(L, 1, "max_bulk", rb->p.max_bulk, UINT32_MAX);
    rb->p.max_reply = opt_limit(L, 1, "max_reply", rb->p.max_reply,
                                (uint64_t)1 << 40);
    rb->p.max_count = (int64_t)opt_limit(L, 1, "max_count",
                                         (uint64_t)rb->p.max_count, INT32_MAX);
    rb->p.max_depth = (int)opt_limit(L, 1, "max_depth",
                                     (uint64_t)rb->p.max_depth,
                                     CN_RESP_MAX_DEPTH);
  }
  return 1;
}


/* parse_url(addr) -> dial, user, password, db | nil
** Splits a Redis address (see cn_redis_url_parse); user and password are
** nil when absent. */
static int redis_parse_url(lua_State *L) {
  cn_redis_url_t u;
  if (cn_redis_url_parse(luaL_checkstring(L, 1), &u) < 0)
    return 0;
  lua_pushstring(L, u.dial);
  if (u.user[0] != '\0')
    lua_pushstring(L, u.user);
  else
    lua_pushnil(L);
  if (u.password[0] != '\0')
    lua_pushstring(L, u.password);
  else
    lua_pushnil(L);
  lua_pushinteger(L, u.db);
  return 4;
}


static const luaL_Reg funcs[] = {{"new", redis_new},
                                 {"parse_url", redis_parse_url},
                                 {"send", redis_send},
                                 {"idle", redis_idle},
                                 {NULL, NULL}};


/* luaopen_coronet_redis returns {new, send, read, idle, null, error_mt}:
** null is the sentinel a Redis null becomes inside aggregates, error_mt
** the metatable of error replies; lua/coronet/redis.lua dresses both. */
int luaopen_coronet_redis(lua_State *L) {
  lcn_lib(L, funcs, RESP_MT, NULL);
  lua_newtable(L); /* null */
  lua_newtable(L); /* error_mt */
  lua_pushvalue(L, -2);
  lua_setfield(L, -4, "null");
  lua_pushvalue(L, -1);
  lua_setfield(L, -4, "error_mt");
  lua_pushcclosure(L, redis_read, 2);
  lua_setfield(L, -2, "read");
  return 1;
}
