/* lcn_tls.c: Lua binding of TLS (cn_tls.c): configurations, built on the
** thread pool since they read files; starting TLS on a connection; waiting
** for its handshake; what it negotiated. conn:starttls and conn:tls are
** made of these in lua/coronet/tls.lua. */
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "cn.h"
#include "lcn.h"

#define CONF_MT "coronet.tls_conf"
#define JOB_MT "coronet.tls_job"

typedef struct {
  cn_tls_conf_t *f;
} conf_box;

/* A configuration being built on the thread pool. */
typedef struct {
  uv_work_t req;
  cn_tls_opts_t o; /* its strings are the job's own copies */
  cn_tls_conf_t *f;
  char err[512];
  int rc;
  int done, abandoned;
  cn_waiter_t *waiter;
} job_t;

typedef struct {
  job_t *j; /* NULL once the result was taken */
} job_box;


static void push_conf(lua_State *L, cn_tls_conf_t *f) {
  conf_box *b = lua_newuserdata(L, sizeof *b);
  b->f = f; /* the box owns the reference */
  luaL_getmetatable(L, CONF_MT);
  lua_setmetatable(L, -2);
}


/* lcn_tls_conf returns the configuration at idx (a coronet.tls_conf), or
** NULL when idx is nil or none. */
cn_tls_conf_t *lcn_tls_conf(lua_State *L, int idx) {
  if (lua_isnoneornil(L, idx))
    return NULL;
  return ((conf_box *)luaL_checkudata(L, idx, CONF_MT))->f;
}


static int conf_gc(lua_State *L) {
  conf_box *b = luaL_checkudata(L, 1, CONF_MT);
  cn_tls_conf_unref(b->f);
  b->f = NULL;
  return 0;
}


/* -- Building on the thread pool ---------------------------------------- */


static void job_free(job_t *j) {
  int i;
  for (i = 0; i < j->o.ncert; i++) {
    free((char *)j->o.cert[i]);
    free((char *)j->o.key[i]);
  }
  free((char *)j->o.ca);
  free((char *)j->o.alpn);
  if (j->f != NULL)
    cn_tls_conf_unref(j->f);
  free(j);
}


static void work_cb(uv_work_t *req) {
  job_t *j = req->data;
  j->rc = cn_tls_conf_new(&j->o, &j->f, j->err, sizeof j->err);
}


static void after_cb(uv_work_t *req, int status) {
  job_t *j = req->data;
  cn_waiter_t *w = j->waiter;
  if (status < 0 && j->rc == 0)
    j->rc = status;
  j->done = 1;
  j->waiter = NULL;
  if (j->abandoned)
    job_free(j);
  else if (w != NULL)
    w->wake(w);
}


static void job_unwait(void *job, cn_waiter_t *wt) {
  job_t *j = job;
  if (j->waiter == wt)
    j->waiter = NULL;
}


static int job_gc(lua_State *L) {
  job_box *b = luaL_checkudata(L, 1, JOB_MT);
  if (b->j != NULL) {
    if (b->j->done)
      job_free(b->j);
    else
      b->j->abandoned = 1; /* after_cb frees it */
  }
  b->j = NULL;
  return 0;
}


/* job_result pushes the finished job's configuration, or nil, err. */
static int job_result(lua_State *L, job_box *b) {
  job_t *j = b->j;
  int n;
  lcn_op_done();
  if (j->rc == 0) {
    push_conf(L, j->f);
    j->f = NULL;
    n = 1;
  } else {
    lua_pushnil(L);
    if (j->rc == -1)
      lua_pushstring(L, j->err);
    else
      lua_pushstring(L, cn_strerror(j->rc));
    n = 2;
  }
  job_free(j);
  b->j = NULL;
  return n;
}


/* job_progress returns the result of a finished job, else parks the task
** and returns false, handle. */
static int job_progress(lua_State *L, job_box *b) {
  cn_task_t *t;
  if (b->j == NULL)
    return lcn_fail(L, CN_ECLOSED);
  if (b->j->done)
    return job_result(L, b);
  t = cn_sched_task(L, "tls");
  cn_sched_op_start(t);
  b->j->waiter = cn_sched_waiter(t);
  cn_sched_park(t, CN_WAIT_FILE, 0, job_unwait, b->j); /* reads files */
  lua_pushboolean(L, 0);
  lua_pushvalue(L, 1);
  return 2;
}


static const char *opt_string(lua_State *L, const char *field) {
  const char *s;
  lua_getfield(L, 1, field);
  s = lua_tostring(L, -1);
  lua_pop(L, 1);
  return s != NULL ? strdup(s) : NULL;
}


static double opt_number(lua_State *L, const char *field) {
  double v;
  lua_getfield(L, 1, field);
  v = lua_tonumber(L, -1);
  lua_pop(L, 1);
  return v;
}


/* read_certs copies opts.cert[i], opts.key[i] into o. */
static void read_certs(lua_State *L, cn_tls_opts_t *o) {
  int i, n;
  lua_getfield(L, 1, "cert");
  lua_getfield(L, 1, "key");
  luaL_argcheck(L, lua_istable(L, -2) && lua_istable(L, -1), 1,
                "cert and key lists expected");
  n = (int)lua_objlen(L, -2);
  luaL_argcheck(L, n >= 1 && n <= CN_TLS_MAX_CERTS &&
                   (int)lua_objlen(L, -1) == n,
                1, "1 to 16 certificates, each with its key");
  for (i = 0; i < n; i++) {
    lua_rawgeti(L, -2, i + 1);
    lua_rawgeti(L, -2, i + 1);
    luaL_argcheck(L, lua_isstring(L, -2) && lua_isstring(L, -1), 1,
                  "certificates and keys are strings");
    o->cert[i] = strdup(lua_tostring(L, -2));
    o->key[i] = strdup(lua_tostring(L, -1));
    o->ncert = i + 1;
    lua_pop(L, 2);
  }
  lua_pop(L, 2);
}


/* conf{server=, cert={...}, key={...}, alpn=, ca=, handshake_timeout=,
** ticket_rotation=} -> conf | nil, err | false, handle
** A client's configuration (ca: a file or PEM text; nil: the system's
** store) comes at once once built; otherwise the files are read on the
** thread pool: call conf_wait(handle) after each wake. */
static int tls_conf(lua_State *L) {
  job_box *b;
  job_t *j;
  int server, rc;
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_getfield(L, 1, "server");
  server = lua_toboolean(L, -1);
  lua_pop(L, 1);
  if (!server) {
    cn_tls_conf_t *f;
    lua_getfield(L, 1, "ca");
    f = cn_tls_client_conf(lua_tostring(L, -1));
    lua_pop(L, 1);
    if (f != NULL) {
      push_conf(L, f);
      return 1;
    }
  }
  b = lua_newuserdata(L, sizeof *b);
  b->j = NULL;
  luaL_getmetatable(L, JOB_MT);
  lua_setmetatable(L, -2);
  if ((j = calloc(1, sizeof *j)) == NULL)
    return lcn_fail(L, CN_ENOMEM);
  b->j = j; /* job_gc frees what follows if a check raises */
  j->done = 1;  /* until it is queued */
  j->o.server = server;
  if (server)
    read_certs(L, &j->o);
  j->o.alpn = opt_string(L, "alpn");
  j->o.ca = opt_string(L, "ca");
  j->o.handshake_timeout = opt_number(L, "handshake_timeout");
  j->o.ticket_rotation = opt_number(L, "ticket_rotation");
  j->req.data = j;
  j->done = 0;
  rc = uv_queue_work(&cn_worker_self()->loop, &j->req, work_cb, after_cb);
  if (rc < 0) { /* not j->rc: the pool may be writing it already */
    j->rc = rc;
    j->done = 1;
  }
  lua_replace(L, 1);
  return job_progress(L, b);
}


static int tls_conf_wait(lua_State *L) {
  return job_progress(L, luaL_checkudata(L, 1, JOB_MT));
}


/* -- Connections -------------------------------------------------------- */


/* start(conn, conf [, name, alpn, verify]) -> true | nil, err | false
** Makes conn a TLS connection: a server when conf is a server's, else a
** client asking for name (SNI and the certificate check) and alpn
** ("h2,http/1.1"), checking the certificate unless verify is false. What
** conn has still to send leaves as plaintext first: until it has, the
** task parks and false is returned; call again after the wake. */
static int tls_start(lua_State *L) {
  cn_conn_t *c = lcn_open_conn(L, 1);
  cn_tls_conf_t *f = ((conf_box *)luaL_checkudata(L, 2, CONF_MT))->f;
  cn_tls_client_t cl;
  int rc;
  if (c == NULL)
    return 2;
  if (c->tls != NULL)
    return lcn_fail(L, CN_EISTLS);
  if (c->out.len > 0) {
    cn_conn_flush(c);
    if (c->werr != 0) {
      lcn_op_done();
      return lcn_fail(L, c->werr);
    }
    if (c->out.len > 0) {
      if ((rc = lcn_conn_park_write(L, c, "conn:starttls")) < 0) {
        lcn_op_done();
        return lcn_fail(L, rc);
      }
      lua_pushboolean(L, 0);
      return 1;
    }
  }
  lcn_op_done();
  cl.name = luaL_optstring(L, 3, NULL);
  cl.alpn = luaL_optstring(L, 4, NULL);
  cl.verify = lua_isnoneornil(L, 5) || lua_toboolean(L, 5);
  return lcn_ok(L, cn_tls_start(c, f, cn_tls_conf_server(f) ? NULL : &cl));
}


/* handshake(conn [, timeout]) -> true | nil, err | false
** true once conn's handshake finished; its error if it failed; else the
** task parks (at most timeout seconds) and false is returned. */
static int tls_handshake(lua_State *L) {
  cn_conn_t *c = lcn_open_conn(L, 1);
  double timeout = luaL_optnumber(L, 2, 0);
  cn_task_t *t;
  uint64_t start;
  int st;
  if (c == NULL)
    return 2;
  if ((st = cn_tls_status(c)) != 0) {
    lcn_op_done();
    if (st < 0)
      return lcn_fail(L, st);
    lua_pushboolean(L, 1);
    return 1;
  }
  if (cn_conn_reading(c))
    return lcn_fail(L, CN_EBUSYR);
  t = cn_sched_task(L, "conn:tls");
  if (cn_sched_timed_out(t)) {
    lcn_op_done();
    return lcn_fail(L, CN_ETLSTIMEOUT);
  }
  start = cn_sched_op_start(t);
  cn_conn_wait_read(c, cn_sched_waiter(t), 1, NULL, 0);
  cn_sched_park(t, CN_WAIT_READ,
                timeout > 0 ? start + (uint64_t)(timeout * 1000) : 0,
                cn_conn_unwait, c);
  lua_pushboolean(L, 0);
  return 1;
}


static void set_string(lua_State *L, const char *k, const char *v) {
  if (v == NULL || *v == '\0')
    return;
  lua_pushstring(L, v);
  lua_setfield(L, -2, k);
}


/* info(conn) -> {version=, cipher=, alpn=, sni=, peer=, resumed=,
** verified=} | nil, err
** What conn's finished handshake negotiated; alpn, sni and peer (the
** subject of the peer's certificate) only when there are. */
static int tls_info(lua_State *L) {
  cn_conn_t *c = lcn_open_conn(L, 1);
  cn_tls_info_t i;
  int rc;
  if (c == NULL)
    return 2;
  if ((rc = cn_tls_info(c, &i)) < 0)
    return lcn_fail(L, rc);
  lua_createtable(L, 0, 7);
  set_string(L, "version", i.version);
  set_string(L, "cipher", i.cipher);
  set_string(L, "alpn", i.alpn);
  set_string(L, "sni", i.sni);
  set_string(L, "peer", i.peer);
  lua_pushboolean(L, i.resumed);
  lua_setfield(L, -2, "resumed");
  lua_pushboolean(L, i.verified);
  lua_setfield(L, -2, "verified");
  return 1;
}


static const luaL_Reg funcs[] = {{"conf", tls_conf},
                                 {"conf_wait", tls_conf_wait},
                                 {"start", tls_start},
                                 {"handshake", tls_handshake},
                                 {"info", tls_info},
                                 {NULL, NULL}};


int luaopen_coronet_tls(lua_State *L) {
  lcn_class(L, CONF_MT, NULL, conf_gc, NULL);
  lua_pop(L, 2);
  return lcn_lib(L, funcs, JOB_MT, job_gc);
}
