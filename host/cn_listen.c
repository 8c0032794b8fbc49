/* cn_listen.c: listening sockets. The socket is made here (so the control
** thread can bind every address before workers start); each worker polls
** its own and accepts every pending connection each time it is ready. */
#define _GNU_SOURCE /* accept4 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "cn.h"

#define ACCEPT_BATCH 1024 /* accepts per readiness, before others run */
#define EMFILE_RETRY_MS 100


static int sock_err(int fd) {
  int err = uv_translate_sys_error(errno);
  if (fd >= 0)
    close(fd);
  return err;
}


static int unix_in_use(const char *path) {
  struct sockaddr_un sun;
  struct stat st;
  int fd, rc;
  if (stat(path, &st) < 0 || !S_ISSOCK(st.st_mode))
    return 1; /* not a stale socket: let bind report it */
  memset(&sun, 0, sizeof sun);
  sun.sun_family = AF_UNIX;
  memcpy(sun.sun_path, path, strlen(path) + 1); /* fits: cn_addr_parse */
  if ((fd = socket(AF_UNIX, SOCK_STREAM, 0)) < 0)
    return 1;
  rc = connect(fd, (struct sockaddr *)&sun, sizeof sun);
  close(fd);
  return rc == 0 || errno != ECONNREFUSED;
}


static int listen_unix(const cn_addr_t *a, uv_os_sock_t *out, char *bound,
                       size_t size) {
  struct sockaddr_un sun;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return sock_err(fd);
  memset(&sun, 0, sizeof sun);
  sun.sun_family = AF_UNIX;
  memcpy(sun.sun_path, a->path, sizeof a->path);
  if (bind(fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
    if (errno != EADDRINUSE || unix_in_use(a->path))
      return sock_err(fd);
    unlink(a->path); /* stale socket left by a process that died */
    if (bind(fd, (struct sockaddr *)&sun, sizeof sun) < 0)
      return sock_err(fd);
  }
  if (listen(fd, SOMAXCONN) < 0)
    return sock_err(fd);
  cn_addr_format((struct sockaddr *)&sun, bound, size);
  *out = fd;
  return 0;
}


/* cn_listen_socket binds and listens on a, writing the bound address (with
** the real port when a asks for 0) into bound. With reuseport, several
** sockets may share the address and the kernel spreads connections.
** Returns 0 or a UV_E* code. */
int cn_listen_socket(const cn_addr_t *a, int reuseport, uv_os_sock_t *out,
                     char *bound, size_t size) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  int fd, one = 1;
  if (a->family == AF_UNIX)
    return listen_unix(a, out, bound, size);
  fd = socket(a->family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0)
    return sock_err(fd);
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
#ifdef SO_REUSEPORT
  if (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one))
    return sock_err(fd);
#else
  (void)reuseport;
#endif
  if (a->family == AF_INET6)
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (bind(fd, (const struct sockaddr *)&a->ss, (socklen_t)a->sslen) < 0 ||
      listen(fd, 4096) < 0 ||
      getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
    return sock_err(fd);
  cn_addr_format((struct sockaddr *)&ss, bound, size);
  *out = fd;
  return 0;
}


/* cn_tcp_keepalive turns TCP keepalive on for socket fd: probes start
** after idle seconds without traffic, every 10 s (or idle if shorter),
** and 6 unanswered ones end the connection, so that a peer that vanished
** without a word is found. idle 0 leaves the socket as it is. */
void cn_tcp_keepalive(uv_os_sock_t fd, int idle) {
  int one = 1, intvl = idle < 10 ? idle : 10, cnt = 6;
  if (idle <= 0)
    return;
  setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
#ifdef TCP_KEEPIDLE
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
#else
  (void)intvl, (void)cnt;
#endif
}


/* Linux's accept gives a TCP socket the listener's TCP_NODELAY and
** keepalive settings: set once on the listener, they cost an accepted
** connection no system call (five a connection otherwise). */
#ifdef __linux__
#define OPTS_INHERITED 1
#else
#define OPTS_INHERITED 0
#endif


/* conn_opts gives TCP socket fd coronet's options: no Nagle delay, and
** keepalive as the command line sets it (off for 0: a listener may come
** from elsewhere with it on). */
static void conn_opts(uv_os_sock_t fd, int keepalive) {
  int one = 1, zero = 0;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (keepalive > 0)
    cn_tcp_keepalive(fd, keepalive);
  else
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &zero, sizeof zero);
}


static void poll_cb(uv_poll_t *h, int status, int events);
static void retry_cb(uv_timer_t *t);


static void set_paused(cn_listener_t *l, int paused) {
  if (l->closing || l->paused == paused)
    return;
  l->paused = paused;
  if (paused)
    uv_poll_stop(&l->poll);
  else
    uv_poll_start(&l->poll, UV_READABLE, poll_cb);
}


/* -- Descriptors ---------------------------------------------------------- */

/* Accepting pauses while few file descriptors remain, so that the work a
** connection starts (a dial, a file) finds one: descriptors, not
** connections, run out. The kernel hands out the lowest free descriptor,
** so one numbered at or above the limit less the reserve means that
** fewer than the reserve are free. */


/* cn_fd_reserve returns how many descriptors accepting leaves free: a
** 32nd of the open-file limit, between 8 and 256. *limit gets the limit. */
int cn_fd_reserve(int *limit) {
  static int lim, reserve;
  struct rlimit rl;
  if (lim == 0) {
    lim = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 1 << 30
            ? (int)rl.rlim_cur : 1 << 30;
    reserve = lim / 32 < 8 ? 8 : lim / 32 > 256 ? 256 : lim / 32;
  }
  if (limit != NULL)
    *limit = lim;
  return reserve;
}


/* fds_short says whether descriptor number fd (just opened) leaves fewer
** than the reserve free. */
static int fds_short(int fd) {
  int limit, reserve = cn_fd_reserve(&limit);
  return fd >= limit - reserve;
}


/* fds_free_now probes, with a copy of descriptor of, whether enough
** descriptors are free again. */
static int fds_free_now(int of) {
  int fd = fcntl(of, F_DUPFD_CLOEXEC, 0);
  if (fd < 0)
    return errno != EMFILE && errno != ENFILE;
  close(fd);
  return !fds_short(fd);
}


/* out_of_fds pauses l for EMFILE_RETRY_MS; the first pause of an episode
** is logged (why: an errno, or 0 for the reserve). */
static void out_of_fds(cn_listener_t *l, int why) {
  int limit, reserve = cn_fd_reserve(&limit);
  if (l->short_since == 0) {
    l->short_since = uv_hrtime();
    l->short_retries = 0;
    if (why != 0)
      cn_log(CN_LOG_WARN, "accept on %s: %s; pausing", l->addr,
             uv_strerror(uv_translate_sys_error(why)));
    else
      cn_log(CN_LOG_WARN, "accept on %s: fewer than %d of %d file "
             "descriptors left; pausing", l->addr, reserve, limit);
  }
  set_paused(l, 1);
  uv_timer_start(&l->retry, retry_cb, EMFILE_RETRY_MS, 0);
}


static void retry_cb(uv_timer_t *t) {
  cn_listener_t *l = t->data;
  if (!fds_free_now(l->fd)) {
    l->short_retries++;
    uv_timer_start(&l->retry, retry_cb, EMFILE_RETRY_MS, 0);
    return;
  }
  if (l->short_since != 0)
    cn_log(CN_LOG_WARN, "accept on %s: resumed after %.1f s out of file "
           "descriptors (%u retries)", l->addr,
           (double)(uv_hrtime() - l->short_since) / 1e9, l->short_retries);
  l->short_since = 0;
  if (cn__accepted_total(l->w) < l->w->cfg->max_conns)
    set_paused(l, 0);
}


/* accept_one accepts a pending connection. Returns 1 when it did, 0 when
** none is pending or accepting must pause. */
static int accept_one(cn_listener_t *l) {
  cn_worker_t *w = l->w;
  struct sockaddr_in6 peer;
  socklen_t plen = sizeof peer;
  cn_conn_t *c;
  int fd;
  if (cn__accepted_total(w) >= w->cfg->max_conns) {
    set_paused(l, 1); /* resumed by cn__listen_resume */
    w->accept_paused = 1;
    return 0;
  }
  memset(&peer, 0, sizeof peer);
  fd = accept4(l->fd, (struct sockaddr *)&peer, &plen,
               SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (fd < 0) {
    if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
        errno == ENOMEM) {
      out_of_fds(l, errno);
      return 0;
    }
    return errno == EINTR || errno == ECONNABORTED || errno == EPROTO;
  }
  if (fds_short(fd))
    out_of_fds(l, 0); /* this one is served; the next ones wait */
  if ((c = cn_conn_new(w, l->pipe)) == NULL) {
    close(fd);
    return 1;
  }
  if (cn_conn_open(c, fd) < 0) {
    close(fd);
    cn_conn_abort(c);
    return 1;
  }
  if (!l->pipe && plen <= sizeof peer)
    memcpy(&c->peer, &peer, plen);
  if (!l->pipe && !OPTS_INHERITED)
    conn_opts(fd, w->cfg->keepalive);
  c->flags |= CN_CONN_ACCEPTED;
  w->naccepted++;
  w->counters.accepted++;
  if (l->tls != NULL && cn_tls_start(c, l->tls, NULL) < 0) {
    cn_conn_abort(c);
    return 1;
  }
  l->on_conn(l, c);
  return !l->paused;
}


static void poll_cb(uv_poll_t *h, int status, int events) {
  cn_listener_t *l = h->data;
  int i;
  (void)events;
  if (status < 0) {
    cn_log(CN_LOG_ERROR, "listen %s: %s", l->addr, uv_strerror(status));
    return;
  }
  for (i = 0; i < ACCEPT_BATCH && !l->closing && accept_one(l); i++) {
  }
}


/* cn_listener_start starts accepting on fd, a listening socket, in worker
** w; the caller sets on_conn before the loop next runs. */
int cn_listener_start(cn_worker_t *w, uv_os_sock_t fd, int pipe,
                      cn_listener_t **out) {
  cn_listener_t *l = calloc(1, sizeof *l);
  int rc;
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (l == NULL)
    return UV_ENOMEM;
  l->fd = fd;
  l->w = w;
  l->pipe = pipe;
  if (!pipe && OPTS_INHERITED)
    conn_opts(fd, w->cfg->keepalive);
  if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
    cn_addr_format((struct sockaddr *)&ss, l->addr, sizeof l->addr);
  if ((rc = uv_poll_init_socket(&w->loop, &l->poll, fd)) < 0) {
    free(l);
    return rc;
  }
  l->poll.data = l;
  uv_timer_init(&w->loop, &l->retry);
  l->retry.data = l;
  l->paused = 1;
  set_paused(l, 0);
  l->next = w->listeners;
  w->listeners = l;
  *out = l;
  return 0;
}


static void listener_freed(uv_handle_t *h) {
  cn_listener_t *l = h->data;
  if (++l->closing < 3)
    return; /* the other handle is still closing */
  free(l->unlink_path);
  free(l);
}


/* cn_listener_close stops accepting, closes the socket (removing a unix
** socket file it owns) and frees l. */
void cn_listener_close(cn_listener_t *l) {
  cn_listener_t **p;
  if (l->closing)
    return;
  l->closing = 1;
  for (p = &l->w->listeners; *p != NULL; p = &(*p)->next)
    if (*p == l) {
      *p = l->next;
      break;
    }
  uv_close((uv_handle_t *)&l->poll, listener_freed);
  uv_close((uv_handle_t *)&l->retry, listener_freed);
  close(l->fd);
  if (l->unlink_path != NULL)
    unlink(l->unlink_path);
}


/* cn__listen_resume lets listeners paused at the connection limit accept
** again once a connection closed (those out of descriptors retry on their
** timer). */
void cn__listen_resume(cn_worker_t *w) {
  cn_listener_t *l;
  if (cn__accepted_total(w) >= w->cfg->max_conns)
    return;
  w->accept_paused = 0;
  for (l = w->listeners; l != NULL; l = l->next)
    if (l->paused && !uv_is_active((uv_handle_t *)&l->retry))
      set_paused(l, 0);
}
