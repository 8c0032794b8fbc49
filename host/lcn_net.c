/* lcn_net.c: Lua binding of dialing (cn_dial.c) and of listeners opened by
** scripts (cn_listen.c). The blocking wrappers are in lua/coronet/net.lua. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "cn.h"
#include "lcn.h"

#define DIAL_MT "coronet.dial"
#define LISTENER_MT "coronet.listener"

typedef struct {
  cn_dial_t *d; /* NULL once the result was taken */
} dial_box;


static int dial_gc(lua_State *L) {
  dial_box *b = luaL_checkudata(L, 1, DIAL_MT);
  if (b->d != NULL)
    cn_dial_abandon(b->d);
  b->d = NULL;
  return 0;
}


typedef int (*result_fn)(lua_State *L, dial_box *b, int err);


/* finish releases b's request once its result is on the stack. */
static void finish(dial_box *b) {
  cn_worker_t *w = cn_worker_self();
  cn_dial_abandon(b->d);
  b->d = NULL;
  if (w->current != NULL)
    cn_sched_op_done(w->current);
}


/* dial_result pushes the outcome of a finished dial and releases it. */
static int dial_result(lua_State *L, dial_box *b, int err) {
  cn_conn_t *c = err == 0 && b->d->err == 0 ? cn_dial_take(b->d) : NULL;
  if (err == 0)
    err = b->d->err;
  finish(b);
  if (c == NULL)
    return lcn_fail(L, err);
  lcn_push_conn(L, c);
  cn_conn_start(c);
  return 1;
}


/* lookup_result pushes the addresses of a finished lookup as a table of
** numeric host strings ("127.0.0.1", "::1"), or nil, err; releases it. */
static int lookup_result(lua_State *L, dial_box *b, int err) {
  struct addrinfo *ai;
  int n = 0;
  if (err == 0)
    err = b->d->err;
  if (err == 0) {
    lua_newtable(L);
    for (ai = b->d->res; ai != NULL; ai = ai->ai_next) {
      char ip[64];
      if (ai->ai_family == AF_INET)
        uv_ip4_name((struct sockaddr_in *)ai->ai_addr, ip, sizeof ip);
      else if (ai->ai_family == AF_INET6)
        uv_ip6_name((struct sockaddr_in6 *)ai->ai_addr, ip, sizeof ip);
      else
        continue;
      lua_pushstring(L, ip);
      lua_rawseti(L, -2, ++n);
    }
  }
  finish(b);
  if (err != 0)
    return lcn_fail(L, err);
  if (n == 0)
    return lcn_fail(L, UV_EAI_NONAME);
  return 1;
}


/* progress is the common tail of dial and lookup and their _wait calls:
** the result once the request is done (or timed out), else the task parks
** and false, handle is returned. */
static int progress(lua_State *L, dial_box *b, double timeout,
                    const char *what, result_fn result) {
  cn_task_t *t;
  uint64_t start;
  if (b->d == NULL)
    return lcn_fail(L, CN_ECLOSED);
  if (b->d->done)
    return result(L, b, 0);
  t = cn_sched_task(L, what);
  if (cn_sched_timed_out(t))
    return result(L, b, CN_ETIMEOUT);
  start = cn_sched_op_start(t);
  b->d->waiter = cn_sched_waiter(t);
  cn_sched_park(t, CN_WAIT_DIAL,
                timeout > 0 ? start + (uint64_t)(timeout * 1000) : 0, NULL,
                NULL);
  lua_pushboolean(L, 0);
  lua_pushvalue(L, 1);
  return 2;
}


/* new_request replaces argument 1 with a handle for a new request, or
** returns NULL after pushing nil, err. */
static dial_box *new_request(lua_State *L) {
  dial_box *b = lua_newuserdata(L, sizeof *b);
  b->d = NULL;
  luaL_getmetatable(L, DIAL_MT);
  lua_setmetatable(L, -2);
  lua_replace(L, 1);
  if ((b->d = malloc(sizeof *b->d)) == NULL) {
    lcn_fail(L, CN_ENOMEM);
    return NULL;
  }
  return b;
}


/* dial(addr [, timeout]) -> conn | nil, err | false, handle
** Starts connecting; call dial_wait(handle, timeout) after each wake. */
static int net_dial(lua_State *L) {
  const char *addr = luaL_checkstring(L, 1);
  double timeout = luaL_optnumber(L, 2, 0);
  dial_box *b;
  lua_pushvalue(L, 1); /* keeps addr alive once the handle replaces it */
  if ((b = new_request(L)) == NULL)
    return 2;
  if (cn_dial_start(b->d, cn_worker_self(), addr) < 0) {
    free(b->d);
    b->d = NULL;
    lua_pushnil(L);
    lua_pushfstring(L, "bad address '%s': expected HOST:PORT, [IPV6]:PORT "
                       "or unix:PATH", addr);
    return 2;
  }
  return progress(L, b, timeout, "dial", dial_result);
}


static int net_dial_wait(lua_State *L) {
  return progress(L, luaL_checkudata(L, 1, DIAL_MT), luaL_optnumber(L, 2, 0),
                  "dial", dial_result);
}


/* -- Lookups ------------------------------------------------------------ */


/* lookup(host [, timeout]) -> {ip, ...} | nil, err | false, handle
** Resolves host on the thread pool; call lookup_wait(handle, timeout)
** after each wake. */
static int net_lookup(lua_State *L) {
  const char *host = luaL_checkstring(L, 1);
  double timeout = luaL_optnumber(L, 2, 0);
  dial_box *b;
  lua_pushvalue(L, 1);
  if ((b = new_request(L)) == NULL)
    return 2;
  if (cn_dial_lookup(b->d, cn_worker_self(), host) < 0) {
    free(b->d);
    b->d = NULL;
    return lcn_fail(L, CN_EADDR);
  }
  return progress(L, b, timeout, "lookup", lookup_result);
}


static int net_lookup_wait(lua_State *L) {
  return progress(L, luaL_checkudata(L, 1, DIAL_MT), luaL_optnumber(L, 2, 0),
                  "lookup", lookup_result);
}


/* -- Listeners --------------------------------------------------------- */

/* A listener that a version of the script opened in its main chunk belongs
** to that version: when the next version's main chunk listens on the same
** address, it is handed over (the socket stays open: no connection is
** refused), once that version takes over; one the next version does not
** open again is closed then. If the new version fails, nothing changes. */

typedef struct listener_box listener_box;
struct listener_box {
  cn_listener_t *l; /* NULL once closed or handed over */
  int handler;      /* registry ref */
  int self;         /* registry ref to the box while open */
  int version;      /* of the main chunk that opened it; 0: none */
  listener_box *from; /* a claim: takes from's listener when version does */
  listener_box *prev, *next; /* the worker's boxes with a version */
  char want[2 * CN_ADDRSTRLEN]; /* the address as asked */
  cn_tls_conf_t *conf; /* not NULL: TLS, its connections start so */
  int tls;          /* registry ref to conf's Lua object */
};

static __thread listener_box *owned;


static void on_conn(cn_listener_t *l, cn_conn_t *c) {
  listener_box *b = l->data;
  lcn_serve_conn(l->w, b->handler, c);
}


static void link_box(listener_box *b) {
  b->prev = NULL;
  b->next = owned;
  if (owned != NULL)
    owned->prev = b;
  owned = b;
}


/* detach forgets b's listener (without closing it) and lets b be
** collected. */
static void detach(lua_State *L, listener_box *b) {
  if (b->version != 0) {
    if (b->prev != NULL)
      b->prev->next = b->next;
    else
      owned = b->next;
    if (b->next != NULL)
      b->next->prev = b->prev;
    b->version = 0;
  }
  luaL_unref(L, LUA_REGISTRYINDEX, b->handler);
  luaL_unref(L, LUA_REGISTRYINDEX, b->self);
  luaL_unref(L, LUA_REGISTRYINDEX, b->tls);
  b->handler = b->self = b->tls = LUA_NOREF;
  b->conf = NULL;
  b->l = NULL;
  b->from = NULL;
}


/* close_box closes b's listener; claims on it are lost. */
static void close_box(lua_State *L, listener_box *b) {
  listener_box *p;
  if (b->from != NULL) { /* a claim: the listener is not its own */
    detach(L, b);
    return;
  }
  for (p = owned; p != NULL; p = p->next)
    if (p->from == b) {
      p->from = NULL;
      p->l = NULL;
    }
  if (b->l != NULL)
    cn_listener_close(b->l);
  detach(L, b);
}


/* find_claimable returns the listener box of an older version on the same
** address that version has not claimed yet, or NULL. */
static listener_box *find_claimable(const char *addr, int version) {
  listener_box *b, *p;
  for (b = owned; b != NULL; b = b->next) {
    if (b->version == version || b->from != NULL || b->l == NULL ||
        strcmp(b->want, addr) != 0)
      continue;
    for (p = owned; p != NULL && p->from != b; p = p->next) {
    }
    if (p == NULL)
      return b;
  }
  return NULL;
}


/* lcn_net_version_end hands the listeners of an older version that
** version claimed over to it and closes the others (ok: it took over), or
** drops what version opened or claimed (it failed). */
void lcn_net_version_end(lua_State *L, int version, int ok) {
  listener_box *b, *next;
  for (b = owned; b != NULL; b = next) {
    next = b->next;
    if (b->version != version)
      continue;
    if (!ok || (b->from != NULL && b->l == NULL)) {
      close_box(L, b);
    } else if (b->from != NULL) {
      b->l->data = b;
      b->l->tls = b->conf; /* the new version's certificates */
      detach(L, b->from); /* before next: it may be next */
      b->from = NULL;
      next = b->next;
    }
  }
  for (b = owned; ok && b != NULL; b = next) {
    next = b->next;
    if (b->version < version && b->from == NULL) {
      close_box(L, b);
      next = owned; /* close_box may have changed any link: again */
    }
  }
}


/* new_box pushes a listener handle for addr serving handler (at 2), TLS
** with the configuration at 4 if there is one. */
static listener_box *new_box(lua_State *L, const char *addr, int version) {
  listener_box *b = lua_newuserdata(L, sizeof *b);
  memset(b, 0, sizeof *b);
  b->handler = b->self = b->tls = LUA_NOREF;
  if ((b->conf = lcn_tls_conf(L, 4)) != NULL) {
    lua_pushvalue(L, 4);
    b->tls = luaL_ref(L, LUA_REGISTRYINDEX);
  }
  luaL_getmetatable(L, LISTENER_MT);
  lua_setmetatable(L, -2);
  snprintf(b->want, sizeof b->want, "%s", addr);
  lua_pushvalue(L, 2);
  b->handler = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_pushvalue(L, -1);
  b->self = luaL_ref(L, LUA_REGISTRYINDEX); /* serves until closed */
  b->version = version;
  if (version != 0)
    link_box(b);
  return b;
}


/* listen(addr, handler [, version, tls]) -> listener | nil, err [, host]
** Serves addr (a numeric host, or unix:PATH) from this script: each
** connection runs handler(conn) as a task, as for the command line's;
** with tls (a server's coronet.c.tls configuration) it is TLS.
** version, given when a version's main chunk listens, makes the listener
** that version's (see above). For a host name it fails with the name as
** a third value, for lua/coronet/net.lua to look up (on the thread pool)
** and try again. */
static int net_listen(lua_State *L) {
  const char *addr = luaL_checkstring(L, 1);
  int version = (int)luaL_optinteger(L, 3, 0);
  cn_worker_t *w = cn_worker_self();
  listener_box *b;
  cn_addr_t a;
  uv_os_sock_t fd;
  char bound[CN_ADDRSTRLEN];
  int rc;
  luaL_checktype(L, 2, LUA_TFUNCTION);
  if (version != 0 && (b = find_claimable(addr, version)) != NULL) {
    listener_box *claim = new_box(L, addr, version);
    claim->from = b;
    claim->l = b->l;
    return 1;
  }
  if (cn_addr_parse(addr, &a) < 0) {
    lua_pushnil(L);
    lua_pushfstring(L, "listen %s: bad address: expected HOST:PORT, "
                       "[IPV6]:PORT or unix:PATH", addr);
    return 2;
  }
  if (a.family != AF_UNIX && a.sslen == 0) { /* a name: net.lua resolves */
    lua_pushnil(L);
    lua_pushfstring(L, "listen %s: not a numeric address", addr);
    lua_pushstring(L, a.host);
    return 3;
  }
  rc = cn_listen_socket(&a, w->cfg->workers > 1 || w->cfg->reuseport, &fd,
                        bound, sizeof bound);
  if (rc < 0) {
    lua_pushnil(L);
    lua_pushfstring(L, "listen %s: %s", addr, cn_strerror(rc));
    return 2;
  }
  b = new_box(L, addr, version);
  if ((rc = cn_listener_start(w, fd, a.family == AF_UNIX, &b->l)) < 0) {
    close(fd);
    detach(L, b);
    return lcn_fail(L, rc);
  }
  if (a.family == AF_UNIX)
    b->l->unlink_path = strdup(a.path);
  b->l->on_conn = on_conn;
  b->l->data = b;
  b->l->tls = b->conf;
  return 1;
}


static listener_box *check_listener(lua_State *L) {
  return luaL_checkudata(L, 1, LISTENER_MT);
}


/* listener:addr() -> the bound "host:port" (the real port when 0 was
** asked), or "unix:PATH" */
static int listener_addr(lua_State *L) {
  listener_box *b = check_listener(L);
  if (b->l == NULL)
    return lcn_fail(L, CN_ECLOSED);
  lua_pushfstring(L, "%s%s", b->l->tls != NULL ? "tls://" : "", b->l->addr);
  return 1;
}


/* listener:close() -> true
** Stops accepting; connections already accepted go on. A listener handed
** over to a newer version of the script is that version's: closing the
** old handle does nothing. */
static int listener_close(lua_State *L) {
  listener_box *b = check_listener(L);
  if (b->l != NULL || b->from != NULL)
    close_box(L, b);
  lua_pushboolean(L, 1);
  return 1;
}


static int listener_tostring(lua_State *L) {
  listener_box *b = check_listener(L);
  lua_pushfstring(L, "coronet.listener %s",
                  b->l != NULL ? b->l->addr : "(closed)");
  return 1;
}


static const luaL_Reg listener_methods[] = {
  {"addr", listener_addr}, {"close", listener_close}, {NULL, NULL}};

static const luaL_Reg funcs[] = {{"dial", net_dial},
                                 {"dial_wait", net_dial_wait},
                                 {"lookup", net_lookup},
                                 {"lookup_wait", net_lookup_wait},
                                 {"listen", net_listen},
                                 {NULL, NULL}};


int luaopen_coronet_net(lua_State *L) {
  lcn_class(L, LISTENER_MT, listener_methods, NULL, listener_tostring);
  lua_pop(L, 2);
  return lcn_lib(L, funcs, DIAL_MT, dial_gc);
}
