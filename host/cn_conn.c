/* cn_conn.c: buffered stream connections over TCP and pipes: the read
** chain with its high-water mark, the write chain flushed with try_write
** then writev, half-close, graceful close and pumps. A TLS connection
** branches to cn_tls.c where bytes meet the socket. Lua binding in
** lcn_conn.c. */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "cn.h"

#define MAX_IOV 64
#define LINGER_MS 10000 /* how long a closed conn may spend flushing */

static void update_reading(cn_conn_t *c);
static void write_progress(cn_conn_t *c);
static void pump_run(cn_pump_t *p);
static void pump_end(cn_pump_t *p, int err);


/* A uv_write in flight owns the leading inflight bytes of the wire. */
struct cn_wreq_s {
  uv_write_t req;
  size_t inflight;
};


static void wake(cn_waiter_t **slot) {
  cn_waiter_t *w = *slot;
  if (w != NULL) {
    *slot = NULL;
    w->wake(w);
  }
}


static size_t write_lwm(const cn_conn_t *c) { return c->w->cfg->write_hwm / 4; }


/* inflight returns the leading bytes of wire(c) a uv_write owns. */
static size_t inflight(const cn_conn_t *c) {
  return c->wreq != NULL ? c->wreq->inflight : 0;
}


/* wire returns the chain whose bytes go to the socket: the write chain,
** or a TLS connection's records. inflight(c) counts its leading bytes. */
static cn_buf_t *wire(cn_conn_t *c) {
  return c->tls != NULL ? cn__tls_wire(c->tls) : &c->out;
}


/* queued returns the bytes of the write chain not yet in flight. */
static size_t queued(const cn_conn_t *c) {
  return c->tls != NULL ? c->out.len : c->out.len - inflight(c);
}


/* unsent returns every byte c has still to send. */
static size_t unsent(cn_conn_t *c) {
  return c->out.len + (c->tls != NULL ? cn__tls_wire(c->tls)->len : 0);
}


/* cn_conn_new returns a connection with an initialized but unopened TCP
** (or pipe) handle, registered with worker w, or NULL. */
cn_conn_t *cn_conn_new(cn_worker_t *w, int pipe) {
  cn_conn_t *c = calloc(1, pipe ? sizeof *c : offsetof(cn_conn_t, h) +
                                                 sizeof(uv_tcp_t));
  if (c == NULL)
    return NULL;
  if (pipe) {
    uv_pipe_init(&w->loop, &c->h.pipe, 0);
    c->flags |= CN_CONN_PIPE;
  } else {
    uv_tcp_init(&w->loop, &c->h.tcp);
  }
  c->h.handle.data = c;
  c->w = w;
  cn_buf_init(&c->in, &w->pool);
  cn_buf_init(&c->out, &w->pool);
  c->id = cn_worker_conn_id();
  c->next = w->conns;
  if (w->conns != NULL)
    w->conns->prev = c;
  w->conns = c;
  w->nconns++;
  w->counters.opened++;
  return c;
}


/* cn_conn_open attaches an open socket to c. Returns 0 or a UV_E* code. */
int cn_conn_open(cn_conn_t *c, uv_os_sock_t fd) {
  if (c->flags & CN_CONN_PIPE)
    return uv_pipe_open(&c->h.pipe, fd);
  return uv_tcp_open(&c->h.tcp, fd); /* options: cn_listen.c's */
}


/* cn_conn_start begins reading into the read chain, so bytes that arrive
** before the first read are waiting for it. */
void cn_conn_start(cn_conn_t *c) { update_reading(c); }


/* -- Reading ----------------------------------------------------------- */


/* read_limit returns how many unread bytes c's read chain may hold before
** reading stops: the high-water mark, more if the parked reader needs
** more, or as much as a pump's destination takes. */
static size_t read_limit(const cn_conn_t *c) {
  size_t limit = c->w->cfg->read_hwm;
  if (c->reader != NULL && c->want > limit)
    limit = c->want;
  if (c->pump_out != NULL)
    limit = c->pump_out->dst->out.len < c->w->cfg->write_hwm ? SIZE_MAX : 0;
  return limit;
}


static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  cn_conn_t *c = h->data;
  size_t limit, n;
  char *p;
  int rc;
  (void)suggested;
  if (c->tls != NULL) {
    rc = cn_buf_reserve(cn__tls_rbuf(c->tls), &p, &n);
  } else {
    limit = read_limit(c);
    n = limit > c->in.len ? limit - c->in.len : 0; /* one read passes the
                                                      limit by a block at
                                                      most */
    rc = cn_buf_reserve_read(&c->in, n, &p, &n);
  }
  if (rc < 0) {
    *buf = uv_buf_init(NULL, 0); /* read_cb gets UV_ENOBUFS */
    return;
  }
  *buf = uv_buf_init(p, (unsigned)n);
}


/* read_ready says whether the parked reader can make progress. */
static int read_ready(cn_conn_t *c) {
  if (c->rerr != 0 || c->in.len >= c->want)
    return 1;
  if (c->dlen == 0)
    return 0;
  if (cn_buf_find(&c->in, c->scanned, c->dlim, c->dlen) >= 0)
    return 1;
  c->scanned = c->in.len >= c->dlen ? c->in.len - c->dlen + 1 : 0;
  return 0;
}


static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  cn_conn_t *c = s->data;
  if (n > 0)
    c->w->counters.bytes_in += (size_t)n;
  if (c->tls != NULL) {
    if (!cn__tls_read(c, n))
      return; /* nothing new for the reader */
  } else {
    if (n > 0 && cn_buf_commit_read(&c->in, buf->base, (size_t)n) < 0)
      n = CN_ENOMEM; /* bytes were lost: the stream is broken */
    if (n > 0) {
      if (c->pump_out == NULL)
        cn_buf_settle(&c->in);
    } else {
      cn_buf_trim(&c->in);
      if (n == 0)
        return; /* EAGAIN: nothing this time */
      c->rerr = (int)n;
    }
  }
  if (c->pump_out != NULL)
    pump_run(c->pump_out);
  else if (c->reader != NULL && read_ready(c))
    wake(&c->reader);
  update_reading(c);
}


/* update_reading starts or stops reading from the socket: reading goes on
** while unread bytes stay under the high-water mark (or under what the
** parked reader needs, or while a pump's destination has room). */
static void update_reading(cn_conn_t *c) {
  int on = !(c->flags & (CN_CONN_CLOSED | CN_CONN_CLOSING)) && c->rerr == 0 &&
           c->in.len < read_limit(c);
  if (on && !(c->flags & CN_CONN_READING)) {
    int rc = uv_read_start(&c->h.stream, alloc_cb, read_cb);
    if (rc < 0) {
      c->rerr = rc;
      wake(&c->reader);
      return;
    }
    c->flags |= CN_CONN_READING;
  } else if (!on && (c->flags & CN_CONN_READING)) {
    if (!(c->flags & CN_CONN_CLOSING))
      uv_read_stop(&c->h.stream);
    c->flags &= ~CN_CONN_READING;
  }
}


/* cn_conn_wait_read parks wt as c's reader until want bytes are buffered,
** dlim[0..dlen) appears at or after c->scanned (dlen <= 8), EOF, an error
** or close. */
void cn_conn_wait_read(cn_conn_t *c, cn_waiter_t *wt, size_t want,
                       const char *dlim, size_t dlen) {
  c->reader = wt;
  c->want = want;
  c->dlen = (uint8_t)(dlen <= sizeof c->dlim ? dlen : 0);
  if (c->dlen > 0) /* dlim may be NULL when dlen is 0 */
    memcpy(c->dlim, dlim, c->dlen);
  update_reading(c);
}


/* cn_conn_wait_write parks wt as c's writer until the write chain drains
** below its low-water mark, an error or close. */
void cn_conn_wait_write(cn_conn_t *c, cn_waiter_t *wt) { c->writer = wt; }


/* cn_conn_unwait forgets wt wherever it waits on conn (a cn_cancel_cb). */
void cn_conn_unwait(void *conn, cn_waiter_t *wt) {
  cn_conn_t *c = conn;
  if (c->writer == wt)
    c->writer = NULL;
  if (c->reader == wt) {
    c->reader = NULL;
    update_reading(c);
  }
}


/* cn_conn_kick wakes c's parked reader and writer, and the tasks waiting
** on pumps from or to c, so that they look again at what they wait for (a
** deadline changed). */
void cn_conn_kick(cn_conn_t *c) {
  wake(&c->reader);
  wake(&c->writer);
  if (c->pump_out != NULL)
    wake(&c->pump_out->waiter);
  if (c->pump_in != NULL)
    wake(&c->pump_in->waiter);
}


/* cn_conn_consumed tells c that bytes left its read chain, so reading may
** resume. */
void cn_conn_consumed(cn_conn_t *c) { update_reading(c); }


/* -- Writing ----------------------------------------------------------- */


static void write_failed(cn_conn_t *c, int err) {
  cn_buf_t *out = wire(c);
  if (c->werr == 0)
    c->werr = err;
  cn_buf_consume(&c->out, queued(c));
  cn_buf_consume(out, out->len - inflight(c)); /* TLS records */
  wake(&c->writer);
  if (c->pump_in != NULL)
    pump_end(c->pump_in, err);
  if (c->flags & CN_CONN_DRAIN)
    cn_conn_abort(c);
}


static void shutdown_cb(uv_shutdown_t *req, int status) {
  (void)status;
  free(req);
}


static void write_cb(uv_write_t *req, int status) {
  cn_conn_t *c = req->data;
  size_t n = c->wreq->inflight;
  free(c->wreq);
  c->wreq = NULL;
  cn_buf_consume(wire(c), n);
  if (status >= 0)
    c->w->counters.bytes_out += n;
  if (status < 0) {
    if (status != UV_ECANCELED)
      write_failed(c, status);
    return;
  }
  cn_conn_flush(c);
}


/* cn_conn_flush sends the write chain (sealed first on a TLS
** connection): try_write first, then one uv_write (writev) for the rest.
** At most one uv_write is in flight. */
void cn_conn_flush(cn_conn_t *c) {
  uv_buf_t iov[MAX_IOV];
  cn_buf_t *out = wire(c);
  size_t total = 0;
  int i, n, rc;
  if (c->wreq != NULL || (c->flags & CN_CONN_CLOSING) || c->werr != 0)
    return;
  while ((rc = c->tls != NULL ? cn__tls_seal(c) : 0) == 0 && out->len > 0) {
    n = cn_buf_iov(out, 0, iov, MAX_IOV);
    for (total = 0, i = 0; i < n; i++)
      total += iov[i].len;
    rc = uv_try_write(&c->h.stream, iov, (unsigned)n);
    if (rc == UV_EAGAIN || rc == UV_ENOSYS)
      rc = 0;
    if (rc < 0)
      break;
    c->w->counters.bytes_out += (size_t)rc;
    cn_buf_consume(out, (size_t)rc);
    if ((size_t)rc < total)
      break;
  }
  if (rc < 0) {
    write_failed(c, rc);
    return;
  }
  if (out->len > 0) {
    n = cn_buf_iov(out, 0, iov, MAX_IOV);
    for (total = 0, i = 0; i < n; i++)
      total += iov[i].len;
    if ((c->wreq = malloc(sizeof *c->wreq)) == NULL) {
      write_failed(c, CN_ENOMEM);
      return;
    }
    c->wreq->req.data = c;
    c->wreq->inflight = total;
    rc = uv_write(&c->wreq->req, &c->h.stream, iov, (unsigned)n, write_cb);
    if (rc < 0) {
      free(c->wreq);
      c->wreq = NULL;
      write_failed(c, rc);
      return;
    }
  }
  write_progress(c);
}


/* notify tells c's watchers of event (CN_CONN_EV_*). */
static void notify(cn_conn_t *c, int event) {
  cn_conn_watch_t *w, *next;
  for (w = c->watchers; w != NULL; w = next) {
    next = w->next;
    if (event == CN_CONN_EV_CLOSED)
      cn_conn_unwatch(c, w);
    w->fn(w, c, event);
  }
}


/* write_progress runs after the write chain shrank: it wakes a parked
** writer, lets a pump's source read again, and finishes a half-close or a
** draining close once everything is sent. */
static void write_progress(cn_conn_t *c) {
  if (c->out.len <= write_lwm(c)) {
    wake(&c->writer);
    if (c->watchers != NULL)
      notify(c, CN_CONN_EV_DRAINED);
  }
  if (c->pump_in != NULL)
    update_reading(c->pump_in->src);
  if (unsent(c) > 0)
    return;
  if (c->flags & CN_CONN_DRAIN) {
    cn_conn_abort(c);
  } else if ((c->flags & (CN_CONN_WSHUT | CN_CONN_SHUT)) == CN_CONN_WSHUT) {
    uv_shutdown_t *req = malloc(sizeof *req);
    c->flags |= CN_CONN_SHUT;
    if (req != NULL && uv_shutdown(req, &c->h.stream, shutdown_cb) < 0)
      free(req);
  }
}


static void mark_dirty(cn_conn_t *c) {
  if (c->flags & CN_CONN_DIRTY)
    return;
  c->flags |= CN_CONN_DIRTY;
  c->next_dirty = c->w->dirty;
  c->w->dirty = c;
}


/* cn__conn_flush_dirty flushes every connection written to since the last
** call; the scheduler calls it each time a task parks or ends. */
void cn__conn_flush_dirty(cn_worker_t *w) {
  cn_conn_t *c;
  while ((c = w->dirty) != NULL) {
    w->dirty = c->next_dirty;
    c->flags &= ~CN_CONN_DIRTY;
    cn_conn_flush(c);
  }
}


static int write_error(const cn_conn_t *c) {
  if (c->flags & (CN_CONN_CLOSED | CN_CONN_WSHUT))
    return CN_ECLOSED;
  return c->werr;
}


/* written sends c's write chain at once when a block's worth waits, else
** when the task parks. */
static void written(cn_conn_t *c) {
  if (queued(c) >= CN_BLOCK_DATA)
    cn_conn_flush(c);
  else
    mark_dirty(c);
}


/* cn_conn_write appends n bytes to c's write chain. They leave when the
** task parks, or at once when a block's worth is waiting. Returns 0, or
** CN_ECLOSED or the connection's write error. */
int cn_conn_write(cn_conn_t *c, const char *p, size_t n) {
  int err = write_error(c);
  if (err < 0 || (err = cn_buf_append(&c->out, p, n)) < 0)
    return err;
  written(c);
  return 0;
}


/* cn_conn_write_shared appends shared block s to c's write chain by
** reference, as cn_conn_write appends bytes. */
int cn_conn_write_shared(cn_conn_t *c, cn_sblock_t *s) {
  int err = write_error(c);
  if (err < 0 || (err = cn_buf_append_shared(&c->out, s, 0, s->len)) < 0)
    return err;
  written(c);
  return 0;
}


/* cn_conn_watch adds w to c's watchers (see cn_conn_watch_t). */
void cn_conn_watch(cn_conn_t *c, cn_conn_watch_t *w) {
  w->prev = NULL;
  w->next = c->watchers;
  if (c->watchers != NULL)
    c->watchers->prev = w;
  c->watchers = w;
}


void cn_conn_unwatch(cn_conn_t *c, cn_conn_watch_t *w) {
  if (w->prev != NULL)
    w->prev->next = w->next;
  else
    c->watchers = w->next;
  if (w->next != NULL)
    w->next->prev = w->prev;
  w->prev = w->next = NULL;
}


/* cn_conn_writable returns how many bytes c's write chain takes before
** reaching its high-water mark (0: the writer should park). */
int cn_conn_writable(const cn_conn_t *c) {
  size_t hwm = c->w->cfg->write_hwm;
  return c->out.len < hwm ? (int)(hwm - c->out.len) : 0;
}


/* -- Closing ----------------------------------------------------------- */


/* cn_conn_close_write sends FIN once the write chain drains; reading goes
** on. Returns 0 or CN_ECLOSED. */
int cn_conn_close_write(cn_conn_t *c) {
  if (c->flags & (CN_CONN_CLOSED | CN_CONN_WSHUT))
    return CN_ECLOSED;
  c->flags |= CN_CONN_WSHUT;
  wake(&c->writer);
  cn_conn_flush(c);
  if (c->out.len == 0 && c->werr == 0)
    write_progress(c);
  return 0;
}


static void close_cb(uv_handle_t *h) {
  cn_conn_t *c = h->data;
  cn_worker_t *w = c->w;
  cn_buf_reset(&c->in);
  cn_buf_reset(&c->out);
  if (c->tls != NULL)
    cn__tls_free(c);
  if (c->data != NULL && w->conn_closed != NULL)
    w->conn_closed(c);
  if (c->prev != NULL)
    c->prev->next = c->next;
  else
    w->conns = c->next;
  if (c->next != NULL)
    c->next->prev = c->prev;
  w->nconns--;
  w->counters.closed++;
  if (c->flags & CN_CONN_ACCEPTED)
    w->naccepted--;
  free(c);
  cn__worker_conn_closed(w);
}


static void linger_cb(uv_timer_t *t) {
  cn_conn_t *c = t->data;
  cn_log(CN_LOG_DEBUG, "conn %llu: closed with %zu bytes unsent",
         (unsigned long long)c->id, c->out.len);
  cn_conn_abort(c);
}


static void free_handle(uv_handle_t *h) { free(h); }


static void mark_closed(cn_conn_t *c) {
  c->flags |= CN_CONN_CLOSED;
  notify(c, CN_CONN_EV_CLOSED);
  if (c->pump_out != NULL)
    pump_end(c->pump_out, CN_ECLOSED);
  if (c->pump_in != NULL)
    pump_end(c->pump_in, CN_ECLOSED);
  wake(&c->reader);
  wake(&c->writer);
  cn_buf_reset(&c->in);
  update_reading(c);
}


/* cn_conn_abort closes c now, dropping unsent bytes. */
void cn_conn_abort(cn_conn_t *c) {
  if (c->flags & CN_CONN_CLOSING)
    return;
  if (!(c->flags & CN_CONN_CLOSED))
    mark_closed(c);
  c->flags |= CN_CONN_CLOSING;
  if (c->linger != NULL) {
    uv_close((uv_handle_t *)c->linger, free_handle);
    c->linger = NULL;
  }
  uv_close(&c->h.handle, close_cb);
}


/* cn_conn_close closes c: parked readers and writers wake with "closed",
** and bytes already written still leave (for at most LINGER_MS) before the
** socket closes. Idempotent. */
void cn_conn_close(cn_conn_t *c) {
  if (c->flags & (CN_CONN_CLOSED | CN_CONN_CLOSING))
    return;
  mark_closed(c);
  if (c->tls != NULL)
    cn_conn_flush(c); /* the rest sealed, then close_notify */
  if (unsent(c) == 0 || c->werr != 0) {
    cn_conn_abort(c);
    return;
  }
  c->flags |= CN_CONN_DRAIN;
  c->linger = malloc(sizeof *c->linger);
  if (c->linger != NULL) {
    uv_timer_init(&c->w->loop, c->linger);
    c->linger->data = c;
    uv_timer_start(c->linger, linger_cb, LINGER_MS, 0);
  }
  cn_conn_flush(c);
}


/* cn_conn_addr writes c's local or remote address into buf. */
int cn_conn_addr(cn_conn_t *c, int local, char *buf, size_t size) {
  struct sockaddr_storage ss;
  int len = sizeof ss, rc;
  if (c->flags & CN_CONN_CLOSING)
    return CN_ECLOSED;
  if (!local && c->peer.sin6_family != 0) {
    cn_addr_format((struct sockaddr *)&c->peer, buf, size);
    return 0;
  }
  if (c->flags & CN_CONN_PIPE) {
    size_t n = size > 5 ? size - 5 : 0;
    memcpy(buf, "unix:", size > 5 ? 5 : 0);
    rc = local ? uv_pipe_getsockname(&c->h.pipe, buf + 5, &n)
               : uv_pipe_getpeername(&c->h.pipe, buf + 5, &n);
    if (rc == 0 && n < size - 5)
      buf[5 + n] = '\0';
    return rc;
  }
  rc = local ? uv_tcp_getsockname(&c->h.tcp, (struct sockaddr *)&ss, &len)
             : uv_tcp_getpeername(&c->h.tcp, (struct sockaddr *)&ss, &len);
  if (rc == 0)
    cn_addr_format((struct sockaddr *)&ss, buf, size);
  return rc;
}


/* -- Pumps ------------------------------------------------------------- */


/* cn_pump_start moves what src has buffered to dst and keeps moving
** whatever arrives, until src reaches EOF, an error, p->limit bytes, or
** either side closes; then it wakes p->waiter. */
void cn_pump_start(cn_pump_t *p) {
  p->moved = 0;
  p->err = 0;
  p->done = 0;
  p->src->pump_out = p;
  p->dst->pump_in = p;
  pump_run(p);
}


/* cn_pump_owned returns a new pump from src to dst (not started; NULL
** without memory) that needs no task: when it ends it closes src and dst,
** gracefully, as the end of a handler task closes its connection, and
** frees itself. Start it with cn_pump_start; nothing stops it but the
** connections' end. */
cn_pump_t *cn_pump_owned(cn_conn_t *dst, cn_conn_t *src) {
  cn_pump_t *p = calloc(1, sizeof *p);
  if (p == NULL)
    return NULL;
  p->src = src;
  p->dst = dst;
  p->limit = -1;
  p->owned = 1;
  return p;
}


/* cn_pump_stop ends p without waking its waiter. */
void cn_pump_stop(cn_pump_t *p) {
  p->waiter = NULL;
  pump_end(p, 0);
}


static void pump_end(cn_pump_t *p, int err) {
  cn_conn_t *src = p->src, *dst = p->dst;
  if (p->done)
    return;
  p->done = 1;
  p->err = err;
  src->pump_out = NULL;
  dst->pump_in = NULL;
  update_reading(src);
  if (!p->owned) {
    wake(&p->waiter);
    return;
  }
  free(p);
  cn_conn_close(src);
  if (dst != src)
    cn_conn_close(dst);
}


static void pump_run(cn_pump_t *p) {
  cn_conn_t *src = p->src, *dst = p->dst;
  size_t n = src->in.len;
  if (dst->flags & (CN_CONN_CLOSED | CN_CONN_WSHUT)) {
    pump_end(p, CN_ECLOSED);
    return;
  }
  if (dst->werr != 0) {
    pump_end(p, dst->werr);
    return;
  }
  if (p->limit >= 0 && (uint64_t)n > (uint64_t)p->limit - p->moved)
    n = (size_t)((uint64_t)p->limit - p->moved);
  if (n > 0) {
    n = cn_buf_move(&dst->out, &src->in, n);
    p->moved += n;
    cn_conn_flush(dst);
    if (dst->pump_in != p)
      return; /* the flush failed and ended p (an owned one is freed) */
  }
  if (p->limit >= 0 && p->moved == (uint64_t)p->limit)
    pump_end(p, 0);
  else if (src->in.len == 0 && src->rerr != 0)
    pump_end(p, src->rerr == CN_EOF ? 0 : src->rerr);
  else if (n == 0 && src->in.len > 0)
    pump_end(p, CN_ENOMEM);
  else
    update_reading(src);
}
