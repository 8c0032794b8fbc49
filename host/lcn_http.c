/* lcn_http.c: Lua binding of the HTTP parser (cn_http.c). A parser object
** belongs to one connection: it reads heads and bodies straight from the
** connection's read chain, scanning each byte once as it arrives and
** making Lua strings only of the parts it hands over (method, target,
** path, field names and values, body pieces). As in lcn_conn.c a call
** that must wait parks the task and returns false; lua/coronet/http.lua
** yields and calls again. */
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>

#include "cn.h"
#include "lcn.h"

#define PARSER_MT "coronet.http.parser"

enum { B_NONE, B_LENGTH, B_CHUNKED, B_CLOSE };

typedef struct {
  cn_http_head_t head;
  cn_http_chunk_t chunk;
  int body;          /* B_*: how the rest of the current body is framed */
  int head_request;  /* a response to read answers a HEAD */
  uint64_t left;     /* B_LENGTH: body bytes not yet read */
  uint64_t taken;    /* body bytes read so far */
  uint64_t max_body; /* past it: "body too large" (413) */
  uint64_t idle_ms, head_ms, body_ms; /* 0: no limit */
  uint64_t head_deadline, body_deadline; /* loop ms, 0: not started */
} parser_t;


static parser_t *check_parser(lua_State *L, int idx) {
  return luaL_checkudata(L, idx, PARSER_MT);
}


static uint64_t opt_field(lua_State *L, const char *k, double dflt,
                          double scale) {
  double v;
  lua_getfield(L, 1, k);
  v = luaL_optnumber(L, -1, dflt);
  lua_pop(L, 1);
  if (!(v >= 0))
    luaL_error(L, "bad argument #1 to 'parser' (%s must not be negative)", k);
  return (uint64_t)(v * scale + 0.5);
}


/* parser{response=, max_target=, max_head=, max_fields=, max_body=,
** idle=, header_timeout=, body_timeout=} -> parser
** Times in seconds (0: none). max_head is at most a block (16 KiB): a
** head is read as one span. */
static int http_parser(lua_State *L) {
  parser_t *P;
  luaL_checktype(L, 1, LUA_TTABLE);
  P = lua_newuserdata(L, sizeof *P);
  memset(P, 0, sizeof *P);
  lua_getfield(L, 1, "response");
  cn_http_head_init(&P->head, lua_toboolean(L, -1));
  lua_pop(L, 1);
  P->head.max_target = (uint32_t)opt_field(L, "max_target", 8192, 1);
  P->head.max_head = (uint32_t)opt_field(L, "max_head", 16384, 1);
  P->head.max_fields = (uint32_t)opt_field(L, "max_fields", 100, 1);
  P->max_body = opt_field(L, "max_body", 1 << 20, 1);
  P->idle_ms = opt_field(L, "idle", 0, 1000);
  P->head_ms = opt_field(L, "header_timeout", 0, 1000);
  P->body_ms = opt_field(L, "body_timeout", 0, 1000);
  if (P->head.max_head > CN_BLOCK_DATA)
    luaL_error(L, "bad argument #1 to 'parser' (max_head above %d)",
               CN_BLOCK_DATA);
  luaL_getmetatable(L, PARSER_MT);
  lua_setmetatable(L, -2);
  return 1;
}


double lcn_http_ffi_time(void) { return (double)time(NULL); }


/* -- Heads ------------------------------------------------------------- */


/* scan_head feeds the bytes of in that P has not seen yet to its scanner. */
static int scan_head(parser_t *P, const cn_buf_t *in) {
  uv_buf_t iov[8];
  size_t used;
  int k, i, rc;
  while ((k = cn_buf_iov(in, P->head.len, iov, 8)) > 0) {
    for (i = 0; i < k; i++) {
      rc = cn_http_head_scan(&P->head, iov[i].base, iov[i].len, &used);
      if (rc != CN_HTTP_MORE)
        return rc;
    }
  }
  return CN_HTTP_MORE;
}


/* head_park parks task t until more of P's head arrives on c (see
** head_wait). Returns 0, or CN_ETIMEOUT. */
static int head_park(cn_task_t *t, cn_conn_t *c, parser_t *P) {
  uint64_t idle = P->idle_ms ? P->idle_ms : c->rtimeout;
  return lcn_conn_task_wait(t, c, c->in.len + 1, NULL, 0,
                            c->in.len > 0 ? c->rtimeout : idle,
                            lcn_earliest(P->head_deadline, c->rdeadline));
}


/* head_wait parks until more of the head arrives: for its first byte at
** most the idle time, for the rest until the header deadline, counted
** from the first byte (and within the connection's own read timeout and
** deadline). Pushes false, or nil, err [, true when part of a head had
** come]. */
static int head_wait(lua_State *L, cn_conn_t *c, parser_t *P) {
  int err = c->rerr, partial = c->in.len > 0;
  if (err == 0) {
    if (partial && P->head_deadline == 0 && P->head_ms > 0)
      P->head_deadline = lcn_deadline_in(L, (double)P->head_ms / 1000);
    err = head_park(cn_sched_task(L, "http:read_head"), c, P);
    if (err == 0) {
      lua_pushboolean(L, 0);
      return 1;
    }
  } else if (err == CN_EOF && partial) {
    err = CN_EUNEXPEOF;
  }
  lcn_op_done();
  lcn_fail(L, err);
  lua_pushboolean(L, partial);
  return 3;
}


/* push_lower pushes the field name s in lower case. */
static void push_lower(lua_State *L, cn_http_str_t s) {
  char small[64];
  size_t i;
  for (i = 0; i < s.n; i++)
    if (s.p[i] >= 'A' && s.p[i] <= 'Z')
      break;
  if (i == s.n) {
    lua_pushlstring(L, s.p, s.n);
  } else if (s.n <= sizeof small) {
    for (i = 0; i < s.n; i++)
      small[i] = (char)(s.p[i] | (s.p[i] >= 'A' && s.p[i] <= 'Z' ? 0x20 : 0));
    lua_pushlstring(L, small, s.n);
  } else {
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (i = 0; i < s.n; i++)
      luaL_addchar(&b, (char)(s.p[i] | (s.p[i] >= 'A' && s.p[i] <= 'Z'
                                            ? 0x20 : 0)));
    luaL_pushresult(&b);
  }
}


/* push_fields pushes a table of the field lines at p (n bytes, as
** cn_http_fields passed them), names in lower case, repeated ones joined
** with ", "; nfields sizes it. */
static void push_fields(lua_State *L, const char *p, size_t n, int nfields) {
  cn_http_str_t name, value;
  size_t pos = 0;
  lua_createtable(L, 0, nfields);
  while (cn_http_next_field(p, n, &pos, &name, &value)) {
    push_lower(L, name);
    lua_pushvalue(L, -1);
    lua_rawget(L, -3);
    if (lua_isnil(L, -1)) {
      lua_pop(L, 1);
      lua_pushlstring(L, value.p, value.n);
    } else {
      lua_pushliteral(L, ", ");
      lua_pushlstring(L, value.p, value.n);
      lua_concat(L, 3);
    }
    lua_rawset(L, -3);
  }
}


static int prefix_ci(cn_http_str_t s, const char *lit) {
  size_t i, n = strlen(lit);
  if (s.n < n)
    return 0;
  for (i = 0; i < n; i++)
    if ((s.p[i] | 0x20) != lit[i] && s.p[i] != lit[i])
      return 0;
  return 1;
}


/* path_of returns the path part of a request target: up to "?" in
** origin-form, after the authority in absolute-form, else all of it. */
static cn_http_str_t path_of(cn_http_str_t t) {
  const char *q;
  if (prefix_ci(t, "http://") || prefix_ci(t, "https://")) {
    const char *p = (const char *)memchr(t.p, ':', t.n) + 3;
    const char *slash = memchr(p, '/', t.n - (size_t)(p - t.p));
    if (slash == NULL) { /* "http://host": the path is "/" */
      t.p = "/";
      t.n = 1;
      return t;
    }
    t.n -= (size_t)(slash - t.p);
    t.p = slash;
  }
  if ((q = memchr(t.p, '?', t.n)) != NULL)
    t.n = (size_t)(q - t.p);
  return t;
}


/* read_head's upvalues, interned once, not at every head: the fields it
** sets in a response table, the version strings, and the parsers'
** metatable. */
enum { K_HEADERS = 1, K_STATUS, K_REASON, K_VERSION, V_10, V_11, U_MT,
       NUPVALUES = U_MT };
static const char *const UPVALUE[U_MT] = {
  NULL, "headers", "status", "reason", "version", "1.0", "1.1"};


/* set_key sets field k of table 3 (read_head's) to the value on top, which
** it pops. */
static void set_key(lua_State *L, int k) {
  lua_pushvalue(L, lua_upvalueindex(k));
  lua_insert(L, -2);
  lua_rawset(L, 3);
}


static void push_version(lua_State *L, const cn_http_msg_t *m) {
  lua_pushvalue(L, lua_upvalueindex(m->minor == 0 ? V_10 : V_11));
}


/* push_target pushes the target, its path (decoded) and its query (raw,
** nil when absent). Returns 0, or -400 for a bad escape in the path. */
static int push_target(lua_State *L, cn_http_str_t target) {
  cn_http_str_t path = path_of(target);
  const char *q = memchr(target.p, '?', target.n);
  lua_pushlstring(L, target.p, target.n);
  if (memchr(path.p, '%', path.n) != NULL) {
    char buf[CN_BLOCK_DATA];
    size_t n = path.n;
    memcpy(buf, path.p, n);
    if (cn_http_decode_path(buf, &n) < 0)
      return -400;
    lua_pushlstring(L, buf, n);
  } else if (path.p == target.p && path.n == target.n) {
    lua_pushvalue(L, -1);
  } else {
    lua_pushlstring(L, path.p, path.n);
  }
  if (q != NULL)
    lua_pushlstring(L, q + 1, target.n - (size_t)(q + 1 - target.p));
  else
    lua_pushnil(L);
  return 0;
}


/* push_request pushes the method, target, path, query and version of the
** request head m, and its field lines (at pos of the len bytes at head)
** as one string, which http.lua makes req.headers of when it is first
** read (C.headers). Returns 0 or -400. */
static int push_request(lua_State *L, const cn_http_msg_t *m,
                        const char *head, size_t pos, size_t len) {
  int rc;
  lua_pushlstring(L, m->method.p, m->method.n);
  if ((rc = push_target(L, m->target)) < 0)
    return rc;
  push_version(L, m);
  lua_pushlstring(L, head + pos, len - pos);
  return 0;
}


/* set_response sets the headers, status, reason and version of the
** response head m in table 3. */
static void set_response(lua_State *L, const cn_http_msg_t *m,
                         const char *head, size_t pos, size_t len,
                         int nfields) {
  push_fields(L, head + pos, len - pos, nfields);
  set_key(L, K_HEADERS);
  lua_pushinteger(L, m->status);
  set_key(L, K_STATUS);
  lua_pushlstring(L, m->reason.p, m->reason.n);
  set_key(L, K_REASON);
  push_version(L, m);
  set_key(L, K_VERSION);
}


/* start_body sets P up for the body m->body announces. */
static void start_body(parser_t *P, const cn_http_msg_t *m) {
  P->taken = 0;
  P->body_deadline = 0;
  P->left = 0;
  if (m->body == CN_HTTP_BODY_CHUNKED) {
    P->body = B_CHUNKED;
    cn_http_chunk_init(&P->chunk);
  } else if (m->body == CN_HTTP_BODY_CLOSE) {
    P->body = B_CLOSE;
  } else {
    P->left = (uint64_t)m->body;
    P->body = m->body > 0 ? B_LENGTH : B_NONE;
  }
}


/* finish_head takes the complete head of P->head.len bytes off c's read
** chain, sets P's body state and pushes true, keep_alive,
** expect_continue, has_body, and for a request push_request's values (a
** response goes into table 3); or pushes -STATUS for a head to refuse. */
static int finish_head(lua_State *L, cn_conn_t *c, parser_t *P) {
  size_t len = P->head.len, pos;
  const char *head = cn_buf_peek(&c->in, len);
  int response = P->head.response, top = lua_gettop(L), rc;
  cn_http_msg_t m;
  if (head == NULL)
    return lcn_fail(L, CN_ENOMEM);
  pos = cn_http_start_line(&m, head, len, response);
  rc = cn_http_fields(&m, &P->head, head, len, pos);
  if (rc == 0)
    rc = cn_http_framing(&m, response, P->head_request);
  if (rc == 0 && m.body > 0 && (uint64_t)m.body > P->max_body && !response)
    rc = -413;
  if (rc == 0) {
    start_body(P, &m);
    lua_pushboolean(L, 1);
    lua_pushboolean(L, cn_http_keep_alive(&m));
    lua_pushboolean(L, (m.flags & CN_HTTP_EXPECT) != 0);
    lua_pushboolean(L, P->body != B_NONE);
    if (response)
      set_response(L, &m, head, pos, len, (int)P->head.nfields);
    else
      rc = push_request(L, &m, head, pos, len);
  }
  cn_buf_consume(&c->in, len);
  cn_conn_consumed(c);
  cn_http_head_init(&P->head, response);
  P->head_deadline = 0;
  if (rc < 0) {
    P->body = B_NONE;
    lua_settop(L, top);
    lua_pushinteger(L, -rc);
    return 1;
  }
  return lua_gettop(L) - top;
}


/* head_parser returns read_head's parser, argument 2, checked against
** its metatable, an upvalue: faster than check_parser. */
static parser_t *head_parser(lua_State *L) {
  parser_t *P = lua_touserdata(L, 2);
  if (P != NULL && lua_getmetatable(L, 2)) {
    int same = lua_rawequal(L, -1, lua_upvalueindex(U_MT));
    lua_pop(L, 1);
    if (same)
      return P;
  }
  return check_parser(L, 2);
}


/* read_head(conn, parser [, t, head_request]) -> true, keep_alive,
**   expect_continue, has_body [, method, target, path, query, version,
**   fields] | status | nil, err [, partial] | false
** Reads the next head. A request's parts come back: the path decoded,
** the query raw (nil without "?"), the field lines as one string. A
** response's go into t (head_request says it answers a HEAD): status,
** reason, version, headers. A number is the status to refuse the request
** with (400, 413, 414, 417, 431, 501, 505); then close. partial says that
** part of a head had come when the read failed ("timeout": 408). */
static int http_read_head(lua_State *L) {
  cn_conn_t *c = lcn_reader_conn(L, 1);
  parser_t *P = head_parser(L);
  int rc;
  if (P->head.response)
    luaL_checktype(L, 3, LUA_TTABLE);
  if (c == NULL)
    return 2;
  P->head_request = lua_toboolean(L, 4);
  rc = scan_head(P, &c->in);
  if (rc == CN_HTTP_MORE)
    return head_wait(L, c, P);
  lcn_op_done();
  lua_settop(L, 3);
  if (rc > 0)
    return finish_head(L, c, P);
  cn_http_head_init(&P->head, P->head.response);
  P->head_deadline = 0;
  lua_pushinteger(L, -rc);
  return 1;
}


/* lcn_http_ffi_wait_head: see lcn.h. A server's loop calls it, compiled,
** as a request ends, instead of read_head's first call, which would only
** park: with nothing buffered and no head begun, read_head finds what
** this checks, and parks the same way. */
int lcn_http_ffi_wait_head(void *box, void *parser) {
  cn_conn_t *c = lcn_conn_ffi_reader(box);
  parser_t *P = parser;
  cn_task_t *t = cn_worker_self()->current;
  if (c == NULL || t == NULL || c->in.len > 0 || c->rerr != 0 ||
      P->head.len > 0 || P->head.response)
    return 0;
  P->head_request = 0;
  if (head_park(t, c, P) == 0)
    return 1;
  lcn_op_done();
  return -1;
}


/* -- Bodies ------------------------------------------------------------ */


/* body_wait parks until more of the body arrives, at most until the body
** deadline (counted from the first body read). Pushes false or nil, err. */
static int body_wait(lua_State *L, cn_conn_t *c, parser_t *P) {
  int err = c->rerr;
  if (err == 0) {
    err = lcn_conn_wait(L, c, c->in.len + 1, NULL, 0, c->rtimeout,
                        lcn_earliest(P->body_deadline, c->rdeadline),
                        "http:read_body");
    if (err == 0) {
      lua_pushboolean(L, 0);
      return 1;
    }
  } else if (err == CN_EOF) {
    err = CN_EUNEXPEOF;
  }
  lcn_op_done();
  return lcn_fail(L, err);
}


static int body_fail(lua_State *L, parser_t *P, const char *msg) {
  lcn_op_done();
  P->body = B_NONE;
  lua_pushnil(L);
  lua_pushstring(L, msg);
  return 2;
}


/* chunk_framing consumes the chunked framing at the start of c's read
** chain. Returns CN_HTTP_DATA, CN_HTTP_MORE, CN_HTTP_DONE or -STATUS. */
static int chunk_framing(cn_conn_t *c, parser_t *P) {
  uv_buf_t iov;
  size_t used;
  int rc = CN_HTTP_MORE;
  while (cn_buf_iov(&c->in, 0, &iov, 1) == 1) {
    rc = cn_http_chunk_scan(&P->chunk, iov.base, iov.len, &used);
    cn_buf_consume(&c->in, used);
    if (rc != CN_HTTP_MORE)
      break;
  }
  cn_conn_consumed(c);
  return rc;
}


/* body_avail returns how many body bytes lie at the start of c's read
** chain, 0 when more must come (B_NONE: the body ended), or -STATUS. */
static int64_t body_avail(cn_conn_t *c, parser_t *P) {
  int rc;
  switch (P->body) {
  case B_LENGTH:
    return (int64_t)(c->in.len < P->left ? c->in.len : P->left);
  case B_CLOSE:
    if (c->in.len == 0 && c->rerr == CN_EOF)
      P->body = B_NONE;
    return (int64_t)c->in.len;
  case B_CHUNKED:
    rc = chunk_framing(c, P);
    if (rc == CN_HTTP_DONE) {
      P->body = B_NONE;
      return 0;
    }
    if (rc < 0)
      return rc;
    if (rc == CN_HTTP_MORE)
      return 0;
    return (int64_t)(c->in.len < P->chunk.left ? c->in.len : P->chunk.left);
  default:
    return 0;
  }
}


/* took records that n body bytes were read. */
static void took(parser_t *P, size_t n) {
  P->taken += n;
  if (P->body == B_LENGTH && (P->left -= n) == 0)
    P->body = B_NONE;
  else if (P->body == B_CHUNKED)
    P->chunk.left -= n;
}


/* body_step is read_body and discard: it takes up to max bytes of body
** (pushing them unless discard), or reports the end or a failure, or
** parks. */
static int body_step(lua_State *L, int discard) {
  cn_conn_t *c = lcn_reader_conn(L, 1);
  parser_t *P = check_parser(L, 2);
  lua_Integer max = luaL_optinteger(L, 3, CN_BLOCK_DATA);
  int64_t n;
  if (c == NULL)
    return 2;
  luaL_argcheck(L, max > 0, 3, "size must be positive");
  if (P->body_deadline == 0 && P->body_ms > 0)
    P->body_deadline = lcn_deadline_in(L, (double)P->body_ms / 1000);
  for (;;) {
    if (P->body == B_NONE) {
      lcn_op_done();
      if (discard) {
        lua_pushboolean(L, 1);
        return 1;
      }
      return lcn_fail(L, CN_EOF);
    }
    if ((n = body_avail(c, P)) < 0)
      return body_fail(L, P, n == -431 ? "trailers too large" : "bad chunk");
    if (n == 0 && P->body != B_NONE)
      return body_wait(L, c, P);
    if (n == 0)
      continue;
    if (n > max)
      n = max;
    if (P->taken + (uint64_t)n > P->max_body)
      return body_fail(L, P, "body too large");
    took(P, (size_t)n);
    if (discard) {
      cn_buf_consume(&c->in, (size_t)n);
      cn_conn_consumed(c);
      continue;
    }
    lcn_op_done();
    lcn_push_buf(L, &c->in, (size_t)n, (size_t)n);
    cn_conn_consumed(c);
    return 1;
  }
}


/* read_body(conn, parser [, max]) -> data | nil, "eof" | nil, err | false
** Returns 1..max bytes of the current body (de-chunked); "eof" at its end.
** Errors: "body too large" (past max_body), "bad chunk", "timeout"
** (past the body deadline), "unexpected eof". */
static int http_read_body(lua_State *L) { return body_step(L, 0); }


/* discard(conn, parser, limit) -> true | nil, err | false
** Drops the rest of the current body: true at its end; "body too large"
** once max_body or limit bytes of body were read in all. */
static int http_discard(lua_State *L) {
  parser_t *P = check_parser(L, 2);
  lua_Number limit = luaL_checknumber(L, 3);
  uint64_t max = P->max_body;
  int n;
  if (limit >= 0 && (uint64_t)limit < max)
    P->max_body = (uint64_t)limit;
  lua_settop(L, 2);
  lua_pushinteger(L, CN_BLOCK_DATA);
  n = body_step(L, 1);
  P->max_body = max;
  return n;
}


/* body_left(parser) -> bytes of the current body not yet read (-1: not
** known, chunked or until close; 0: none) */
static int http_body_left(lua_State *L) {
  parser_t *P = check_parser(L, 1);
  if (P->body == B_NONE)
    lua_pushinteger(L, 0);
  else if (P->body == B_LENGTH)
    lua_pushnumber(L, (double)P->left);
  else
    lua_pushinteger(L, -1);
  return 1;
}


/* headers(fields) -> the table of the field lines a request's read_head
** returned: names in lower case, repeated ones joined with ", " */
static int http_headers(lua_State *L) {
  size_t n, i;
  const char *p = luaL_checklstring(L, 1, &n);
  int lines = 0;
  for (i = 0; i < n; i++)
    lines += p[i] == '\n';
  push_fields(L, p, n, lines > 0 ? lines - 1 : 0);
  return 1;
}


static const luaL_Reg funcs[] = {
  {"parser", http_parser},       {"read_body", http_read_body},
  {"discard", http_discard},     {"body_left", http_body_left},
  {"headers", http_headers},     {NULL, NULL}};


/* luaopen_coronet_http returns the functions above, and read_head with
** its upvalues. */
int luaopen_coronet_http(lua_State *L) {
  int k;
  lcn_lib(L, funcs, PARSER_MT, NULL);
  for (k = 1; k < U_MT; k++)
    lua_pushstring(L, UPVALUE[k]);
  luaL_getmetatable(L, PARSER_MT);
  lua_pushcclosure(L, http_read_head, NUPVALUES);
  lua_setfield(L, -2, "read_head");
  return 1;
}
