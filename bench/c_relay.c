/* c_relay.c: a plain C TCP relay on one libuv loop, the baseline that
** bench/io-bench.sh measures coronet's io.copy proxy (scripts/proxy.lua)
** against. Each client is joined to the upstream; bytes go through
** uv_try_write, then uv_write for what is left; a side stops reading while
** the other side has more than HWM bytes queued; EOF on one side becomes
** a shutdown of the other; a pair closes when both directions ended.
**
**   cc -O2 -o /tmp/c_relay bench/c_relay.c $(pkg-config --cflags --libs libuv)
**   /tmp/c_relay LISTEN_PORT UPSTREAM_PORT      (both on 127.0.0.1)
*/
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define BUF_SIZE 65536
#define HWM (256 * 1024)

typedef struct pair_s pair_t;

typedef struct {
  uv_tcp_t h;
  pair_t *p;
  int eof;     /* read EOF: the other side is shut down */
  int reading; /* uv_read_start is active */
} side_t;

struct pair_s {
  side_t a, b; /* a: client, b: upstream */
  uv_connect_t conn;
  int closing, handles;
};

static uv_loop_t *loop;
static struct sockaddr_in upstream;

static side_t *other(side_t *s) { return s == &s->p->a ? &s->p->b : &s->p->a; }

static void on_closed(uv_handle_t *h) {
  pair_t *p = ((side_t *)h->data)->p;
  if (--p->handles == 0)
    free(p);
}

static void pair_close(pair_t *p) {
  if (p->closing)
    return;
  p->closing = 1;
  uv_close((uv_handle_t *)&p->a.h, on_closed);
  uv_close((uv_handle_t *)&p->b.h, on_closed);
}

static void alloc_cb(uv_handle_t *h, size_t hint, uv_buf_t *buf) {
  (void)h;
  (void)hint;
  buf->base = malloc(BUF_SIZE);
  buf->len = buf->base != NULL ? BUF_SIZE : 0;
}

static void read_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *buf);

static void set_reading(side_t *s, int on) {
  if (s->p->closing || s->eof || s->reading == on)
    return;
  s->reading = on;
  if (on)
    uv_read_start((uv_stream_t *)&s->h, alloc_cb, read_cb);
  else
    uv_read_stop((uv_stream_t *)&s->h);
}

/* A write request that owns the bytes it sends. */
typedef struct {
  uv_write_t req;
  char *base;
  side_t *to;
} wreq_t;

static void write_cb(uv_write_t *req, int status) {
  wreq_t *w = (wreq_t *)req;
  side_t *to = w->to;
  free(w->base);
  free(w);
  if (status < 0) {
    pair_close(to->p);
    return;
  }
  if (!to->p->closing && to->h.write_queue_size < HWM / 2)
    set_reading(other(to), 1);
}

static void shutdown_cb(uv_shutdown_t *req, int status) {
  pair_t *p = ((side_t *)req->data)->p;
  free(req);
  if (status < 0 || (p->a.eof && p->b.eof))
    pair_close(p);
}

/* forward sends n bytes of base (malloc'd; forward owns it) to side to:
** try_write, then uv_write for the rest. */
static void forward(side_t *from, side_t *to, char *base, size_t n) {
  uv_buf_t b = uv_buf_init(base, (unsigned)n);
  int r = uv_try_write((uv_stream_t *)&to->h, &b, 1);
  wreq_t *w;
  if (r == UV_EAGAIN)
    r = 0;
  if ((size_t)r == n) {
    free(base);
    return;
  }
  if (r < 0 || (w = malloc(sizeof *w)) == NULL) {
    free(base);
    pair_close(from->p);
    return;
  }
  w->base = base;
  w->to = to;
  b = uv_buf_init(base + r, (unsigned)(n - (size_t)r));
  if (uv_write(&w->req, (uv_stream_t *)&to->h, &b, 1, write_cb) < 0) {
    free(base);
    free(w);
    pair_close(from->p);
    return;
  }
  if (to->h.write_queue_size > HWM)
    set_reading(from, 0);
}

static void read_cb(uv_stream_t *st, ssize_t n, const uv_buf_t *buf) {
  side_t *s = st->data, *o = other(st->data);
  if (n > 0) {
    forward(s, o, buf->base, (size_t)n);
    return;
  }
  free(buf->base);
  if (n == 0)
    return;
  if (n != UV_EOF) {
    pair_close(s->p);
    return;
  }
  s->eof = 1;
  s->reading = 0;
  uv_read_stop(st);
  {
    uv_shutdown_t *req = malloc(sizeof *req);
    req->data = o;
    if (uv_shutdown(req, (uv_stream_t *)&o->h, shutdown_cb) < 0) {
      free(req);
      pair_close(s->p);
    }
  }
}

static void connect_cb(uv_connect_t *req, int status) {
  pair_t *p = req->data;
  if (status < 0) {
    pair_close(p);
    return;
  }
  uv_tcp_nodelay(&p->b.h, 1);
  set_reading(&p->a, 1);
  set_reading(&p->b, 1);
}

static void accept_cb(uv_stream_t *server, int status) {
  pair_t *p;
  if (status < 0)
    return;
  p = calloc(1, sizeof *p);
  p->a.p = p->b.p = p;
  p->handles = 2;
  uv_tcp_init(loop, &p->a.h);
  uv_tcp_init(loop, &p->b.h);
  p->a.h.data = &p->a;
  p->b.h.data = &p->b;
  if (uv_accept(server, (uv_stream_t *)&p->a.h) < 0) {
    pair_close(p);
    return;
  }
  uv_tcp_nodelay(&p->a.h, 1);
  p->conn.data = p;
  if (uv_tcp_connect(&p->conn, &p->b.h, (struct sockaddr *)&upstream,
                     connect_cb) < 0)
    pair_close(p);
}

int main(int argc, char **argv) {
  uv_tcp_t server;
  struct sockaddr_in addr;
  int rc;
  if (argc != 3) {
    fprintf(stderr, "usage: c_relay LISTEN_PORT UPSTREAM_PORT\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  loop = uv_default_loop();
  uv_ip4_addr("127.0.0.1", atoi(argv[1]), &addr);
  uv_ip4_addr("127.0.0.1", atoi(argv[2]), &upstream);
  uv_tcp_init(loop, &server);
  if ((rc = uv_tcp_bind(&server, (struct sockaddr *)&addr, 0)) < 0 ||
      (rc = uv_listen((uv_stream_t *)&server, 1024, accept_cb)) < 0) {
    fprintf(stderr, "c_relay: listen %s: %s\n", argv[1], uv_strerror(rc));
    return 1;
  }
  fprintf(stderr, "c_relay: listening on 127.0.0.1:%s\n", argv[1]);
  return uv_run(loop, UV_RUN_DEFAULT);
}
