/* cn_dial.c: outbound connections: resolve the name on libuv's thread
** pool (never on the loop), then connect to each address in turn. Lua
** binding in lcn_net.c. */
#include <stdlib.h>
#include <string.h>

#include "cn.h"

static void try_next(cn_dial_t *d);


static void dial_finish(cn_dial_t *d, int err) {
  cn_waiter_t *w = d->waiter;
  d->err = err;
  d->done = 1;
  d->waiter = NULL;
  if (d->res != NULL && !d->lookup) {
    uv_freeaddrinfo(d->res);
    d->res = NULL;
  }
  if (w != NULL)
    w->wake(w);
}


static void maybe_free(cn_dial_t *d) {
  if (d->abandoned && !d->busy) {
    if (d->res != NULL)
      uv_freeaddrinfo(d->res);
    free(d);
  }
}


static void connect_cb(uv_connect_t *req, int status) {
  cn_dial_t *d = req->data;
  d->busy = 0;
  if (d->abandoned) {
    if (d->conn != NULL)
      cn_conn_abort(d->conn);
    maybe_free(d);
    return;
  }
  if (status == 0) {
    if (!(d->conn->flags & CN_CONN_PIPE)) {
      int len = sizeof d->conn->peer;
      uv_os_fd_t fd;
      uv_tcp_nodelay(&d->conn->h.tcp, 1);
      if (uv_fileno(&d->conn->h.handle, &fd) == 0)
        cn_tcp_keepalive(fd, d->w->cfg->keepalive);
      if (uv_tcp_getpeername(&d->conn->h.tcp, (struct sockaddr *)&d->conn->peer,
                             &len) < 0 ||
          len > (int)sizeof d->conn->peer)
        memset(&d->conn->peer, 0, sizeof d->conn->peer);
    }
    dial_finish(d, 0);
    return;
  }
  cn_conn_abort(d->conn);
  d->conn = NULL;
  d->last_err = status;
  try_next(d);
}


static int start_connect(cn_dial_t *d, const struct sockaddr *sa) {
  int rc;
  d->conn = cn_conn_new(d->w, d->addr.family == AF_UNIX);
  if (d->conn == NULL)
    return UV_ENOMEM;
  d->req.data = d;
  if (d->addr.family == AF_UNIX) {
    uv_pipe_connect(&d->req, &d->conn->h.pipe, d->addr.path, connect_cb);
    rc = 0;
  } else {
    rc = uv_tcp_connect(&d->req, &d->conn->h.tcp, sa, connect_cb);
  }
  if (rc < 0) {
    cn_conn_abort(d->conn);
    d->conn = NULL;
    return rc;
  }
  d->busy = 1;
  return 0;
}


/* try_next connects to the next resolved address, or finishes with the
** last error when none is left. */
static void try_next(cn_dial_t *d) {
  while (d->next != NULL) {
    struct addrinfo *ai = d->next;
    int rc;
    d->next = ai->ai_next;
    if (ai->ai_family == AF_INET)
      ((struct sockaddr_in *)ai->ai_addr)->sin_port =
        htons((uint16_t)d->addr.port);
    else if (ai->ai_family == AF_INET6)
      ((struct sockaddr_in6 *)ai->ai_addr)->sin6_port =
        htons((uint16_t)d->addr.port);
    else
      continue;
    if ((rc = start_connect(d, ai->ai_addr)) == 0)
      return;
    d->last_err = rc;
  }
  dial_finish(d, d->last_err != 0 ? d->last_err : UV_EAI_NONAME);
}


static void resolved_cb(uv_getaddrinfo_t *req, int status,
                        struct addrinfo *res) {
  cn_dial_t *d = req->data;
  d->busy = 0;
  d->res = res;
  if (d->abandoned) {
    maybe_free(d);
    return;
  }
  if (status < 0) {
    dial_finish(d, status == UV_ECANCELED ? CN_ETIMEOUT
                                          : cn_addr_lookup_err(status));
    return;
  }
  d->next = res;
  if (d->lookup)
    dial_finish(d, 0); /* the caller reads d->res */
  else
    try_next(d);
}


static int start_lookup(cn_dial_t *d, cn_worker_t *w) {
  struct addrinfo hints;
  int rc;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  d->gai.data = d;
  rc = uv_getaddrinfo(&w->loop, &d->gai, resolved_cb, d->addr.host, NULL,
                      &hints);
  if (rc < 0)
    dial_finish(d, rc);
  else
    d->busy = 1;
  return 0;
}


/* cn_dial_start begins connecting to addr ("host:port", "[v6]:port",
** "unix:path"); d->waiter wakes when d->done. Returns 0, or CN_EADDR for
** an address that does not parse. */
int cn_dial_start(cn_dial_t *d, cn_worker_t *w, const char *addr) {
  int rc;
  memset(d, 0, sizeof *d);
  d->w = w;
  if (cn_addr_parse(addr, &d->addr) < 0)
    return CN_EADDR;
  if (d->addr.family == AF_UNIX || d->addr.sslen > 0) {
    if ((rc = start_connect(d, (struct sockaddr *)&d->addr.ss)) < 0)
      dial_finish(d, rc);
    return 0;
  }
  return start_lookup(d, w);
}


/* cn_dial_lookup resolves host (a name or a numeric address) on the
** thread pool without connecting; when d->done and d->err is 0, d->res
** lists the addresses (freed by cn_dial_abandon). Returns 0, or CN_EADDR
** for a host that is empty or too long. */
int cn_dial_lookup(cn_dial_t *d, cn_worker_t *w, const char *host) {
  size_t n = strlen(host);
  memset(d, 0, sizeof *d);
  d->w = w;
  d->lookup = 1;
  if (n == 0 || n >= sizeof d->addr.host)
    return CN_EADDR;
  memcpy(d->addr.host, host, n + 1);
  return start_lookup(d, w);
}


/* cn_dial_take hands the connected conn to the caller (once). */
cn_conn_t *cn_dial_take(cn_dial_t *d) {
  cn_conn_t *c = d->conn;
  d->conn = NULL;
  return c;
}


/* cn_dial_abandon gives d up: a pending lookup is cancelled, a pending
** connect closed, and d freed once libuv is done with it. */
void cn_dial_abandon(cn_dial_t *d) {
  d->abandoned = 1;
  d->waiter = NULL;
  if (d->busy && d->conn == NULL)
    uv_cancel((uv_req_t *)&d->gai);
  else if (d->busy)
    cn_conn_abort(d->conn); /* connect_cb sees UV_ECANCELED */
  else if (d->conn != NULL)
    cn_conn_abort(d->conn);
  if (d->busy)
    d->conn = NULL;
  maybe_free(d);
}
