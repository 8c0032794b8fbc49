/* cn_busredis.c: coronet.bus across processes through Redis pub/sub
** (--bus). One thread with a loop of its own holds, for the whole process,
** two connections to Redis: a subscriber, subscribed to the topics some
** worker of this process wants (from the bus's first-interest and
** last-interest hooks), and a publisher that sends the messages workers
** publish, pipelined, one batch per turn of its loop. A bounded outbox
** sits between the workers and the publisher, so a publish never waits
** for Redis; past its bound the oldest messages go, counted. Messages
** carry their origin process, so none comes back to where local delivery
** already took it. When Redis goes away (an error, EOF, or no answer to a
** PING), both connections are dropped and made again with backoff, every
** topic subscribed again, and the log says when the bus went down, came
** back and how many messages were lost. Lua binding (status) in
** lcn_busredis.c.
**
** On Redis, topic T of a bus on database D is channel "coronet:bus:D:T"
** (Redis pub/sub ignores databases: this keeps buses on different ones
** apart), and a message is "\0cb1", the 8-byte origin, then its bytes. A
** message without that head (PUBLISH from elsewhere) is delivered whole. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cn.h"

#define MAGIC "\0cb1"
#define MAGIC_ECHO "\0cb2" /* delivered to the origin too */
#define MAGIC_LEN 4
#define ORIGIN_LEN 8
#define HEAD_LEN (MAGIC_LEN + ORIGIN_LEN)
#define OUTBOX_MSGS 65536       /* messages waiting for Redis, at most */
#define OUTBOX_BYTES (64u << 20) /* and their bytes */
#define OUT_HWM (1u << 20) /* encoded bytes waiting on the publisher link */
#define TICK_MS 250
#define PING_MS 1000 /* a link quiet this long is sent a PING */
#define DEAD_MS 3000 /* a PING unanswered this long: Redis is gone */
#define BACKOFF_MIN_MS 50
#define BACKOFF_MAX_MS 1000
#define STOP_MS 1000 /* at exit, how long the outbox may take to leave */
#define SUB_CHUNK 256 /* channels per SUBSCRIBE when subscribing again */
#define BATCH 256

enum { L_SUB, L_PUB };

typedef struct topic_s {
  struct topic_s *next;
  uint32_t hash;
  size_t len;
  char name[];
} topic_t;

/* A message waiting in the outbox; echo: it goes to the origin's
** subscribers too, through Redis (cn_busredis_publish). */
typedef struct {
  cn_bus_msg_t *m;
  uint64_t seq; /* its number among what the process queued */
  int echo;
} out_t;

typedef struct change_s {
  struct change_s *next;
  int on;
  size_t len;
  char name[];
} change_t;

/* One connection to Redis, driven by the bridge's loop. */
typedef struct {
  cn_stream_t h;
  uv_connect_t creq;
  uv_write_t wreq;
  int kind;
  int open;      /* the handle is initialized and not closed yet */
  int connected; /* connect succeeded */
  int ready;     /* Redis answered the first PING */
  int writing;   /* wreq is in flight */
  int auth_pending; /* the next reply answers AUTH */
  int oom;       /* encoding ran out of memory */
  cn_buf_t in, out;
  size_t inflight; /* leading bytes of out owned by wreq */
  cn_resp_t p;     /* frames replies as they arrive */
  size_t fed;
  uint64_t last_rx;  /* loop time of the last byte received */
  uint64_t ping_at;  /* loop time of the unanswered PING, or 0 */
} link_t;

static struct {
  /* set at start, read-only after */
  cn_addr_t addr;
  char where[sizeof(((cn_addr_t *)0)->host) + 8]; /* for logs */
  char user[CN_REDIS_USER], password[CN_REDIS_PASSWORD];
  char url[512]; /* as --bus gave it */
  char prefix[40];
  size_t plen;
  char origin[ORIGIN_LEN];
  /* the bridge thread's */
  uv_thread_t thread;
  uv_loop_t loop;
  uv_async_t async;
  uv_timer_t tick, retry;
  cn_pool_t pool;
  link_t link[2];
  int started, up, resetting, nopen, closing;
  int stop_begun;
  uint64_t stop_at;
  uint64_t backoff;
  uint64_t down_at, dropped0, lost0; /* when the outage began; counts then */
  int warned;                        /* the outage was logged */
  uint64_t dropped_logged;
  topic_t **buckets; /* the topics this process wants */
  size_t nbuckets, ntopics;
  char *scratch;
  size_t scratch_size;
  cn_resp_t dec; /* decodes whole replies */
  /* shared with the workers: under lock */
  uv_mutex_t lock;
  out_t *ring; /* the outbox */
  size_t rcap, rhead, rcount, rbytes;
  change_t *changes, *changes_tail;
  uint64_t seq;  /* messages queued so far: the last one's number */
  uint64_t *fly; /* the numbers of those in flight to Redis, oldest first */
  size_t fly_cap, fly_head, fly_n;
  int stopping;
  /* counters: atomic */
  uint64_t published, received, dropped, lost, outages;
  int status_up;
} br;


static uint64_t now_ms(void) { return uv_now(&br.loop); }


/* -- The outbox (any thread, under the lock) -------------------------- */


static void outbox_drop_oldest(void) {
  cn_bus_msg_t *m = br.ring[br.rhead].m;
  br.rhead = (br.rhead + 1) % br.rcap;
  br.rcount--;
  br.rbytes -= m->len;
  cn_bus_msg_unref(m);
  __atomic_add_fetch(&br.dropped, 1, __ATOMIC_RELAXED);
}


/* ring_grow doubles (first: from none) the ring *ring of n elements of
** elem bytes, its oldest at *head, into a new array, oldest first.
** Returns 0, or -1 without memory (the ring stays as it was). */
static int ring_grow(void **ring, size_t *cap, size_t *head, size_t n,
                     size_t elem, size_t first) {
  size_t size = *cap ? *cap * 2 : first, i;
  char *r = malloc(size * elem);
  const char *old = *ring;
  if (r == NULL)
    return -1;
  for (i = 0; i < n; i++)
    memcpy(r + i * elem, old + (*head + i) % *cap * elem, elem);
  free(*ring);
  *ring = r;
  *cap = size;
  *head = 0;
  return 0;
}


/* outbox_push queues a reference to m, dropping the oldest messages past
** the bounds; returns 0, or -1 if m itself could not be kept. */
static int outbox_push(cn_bus_msg_t *m, int echo) {
  void *ring = br.ring;
  if (m->len > OUTBOX_BYTES)
    return -1;
  if (br.rcount == br.rcap && br.rcap < OUTBOX_MSGS &&
      ring_grow(&ring, &br.rcap, &br.rhead, br.rcount, sizeof *br.ring,
                256) == 0)
    br.ring = ring;
  if (br.rcap == 0)
    return -1;
  while (br.rcount > 0 &&
         (br.rcount == br.rcap || br.rbytes + m->len > OUTBOX_BYTES))
    outbox_drop_oldest();
  cn_bus_msg_ref(m);
  br.ring[(br.rhead + br.rcount) % br.rcap].m = m;
  br.ring[(br.rhead + br.rcount) % br.rcap].seq = br.seq;
  br.ring[(br.rhead + br.rcount) % br.rcap].echo = echo;
  br.rcount++;
  br.rbytes += m->len;
  return 0;
}


/* fly_push notes that message seq is in flight; returns -1 without
** memory. */
static int fly_push(uint64_t seq) {
  void *fly = br.fly;
  if (br.fly_n == br.fly_cap) {
    if (ring_grow(&fly, &br.fly_cap, &br.fly_head, br.fly_n, sizeof *br.fly,
                  1024) < 0)
      return -1;
    br.fly = fly;
  }
  br.fly[(br.fly_head + br.fly_n++) % br.fly_cap] = seq;
  return 0;
}


/* outbox_take moves up to max waiting messages into out, in flight from
** now on; returns the count. */
static size_t outbox_take(out_t *out, size_t max) {
  size_t n = 0;
  uv_mutex_lock(&br.lock);
  while (n < max && br.rcount > 0 && fly_push(br.ring[br.rhead].seq) == 0) {
    out[n] = br.ring[br.rhead];
    br.rbytes -= out[n].m->len;
    br.rhead = (br.rhead + 1) % br.rcap;
    br.rcount--;
    n++;
  }
  uv_mutex_unlock(&br.lock);
  return n;
}


/* landed takes the oldest message in flight off: Redis answered it. */
static void landed(void) {
  uv_mutex_lock(&br.lock);
  if (br.fly_n > 0) {
    br.fly_head = (br.fly_head + 1) % br.fly_cap;
    br.fly_n--;
  }
  uv_mutex_unlock(&br.lock);
}


/* grounded forgets every message in flight (the link failed); returns
** how many there were. */
static uint64_t grounded(void) {
  uint64_t n;
  uv_mutex_lock(&br.lock);
  n = br.fly_n;
  br.fly_n = 0;
  uv_mutex_unlock(&br.lock);
  return n;
}


/* -- Hooks the bus calls (workers' threads, under the bus lock) ------- */


/* queue puts m in the outbox and wakes the bridge. */
static void queue(cn_bus_msg_t *m, int echo) {
  uv_mutex_lock(&br.lock);
  br.seq++;
  if (outbox_push(m, echo) < 0)
    __atomic_add_fetch(&br.dropped, 1, __ATOMIC_RELAXED);
  uv_mutex_unlock(&br.lock);
  uv_async_send(&br.async); /* libuv coalesces these */
}


static void hook_publish(void *ud, cn_bus_msg_t *m) {
  (void)ud;
  queue(m, 0);
}


static void hook_interest(void *ud, const char *topic, size_t tlen, int on) {
  change_t *c = malloc(sizeof *c + tlen);
  (void)ud;
  if (c == NULL) {
    cn_log(CN_LOG_ERROR, "bus: redis: out of memory: topic %.*s not %s",
           (int)tlen, topic, on ? "subscribed" : "unsubscribed");
    return;
  }
  c->next = NULL;
  c->on = on;
  c->len = tlen;
  memcpy(c->name, topic, tlen);
  uv_mutex_lock(&br.lock);
  if (br.changes_tail != NULL)
    br.changes_tail->next = c;
  else
    br.changes = c;
  br.changes_tail = c;
  uv_mutex_unlock(&br.lock);
  uv_async_send(&br.async);
}


static const cn_bus_bridge_t hooks = {hook_publish, hook_interest, NULL};


/* -- The topics this process wants (bridge thread) -------------------- */


static topic_t **topic_slot(const char *name, size_t len, uint32_t h) {
  topic_t **p = &br.buckets[h & (br.nbuckets - 1)];
  for (; *p != NULL; p = &(*p)->next)
    if ((*p)->hash == h && (*p)->len == len &&
        memcmp((*p)->name, name, len) == 0)
      break;
  return p;
}


static void topics_grow(void) {
  size_t n = br.nbuckets ? br.nbuckets * 2 : 64, i;
  topic_t **b = calloc(n, sizeof *b), *t;
  if (b == NULL)
    return;
  for (i = 0; i < br.nbuckets; i++)
    while ((t = br.buckets[i]) != NULL) {
      br.buckets[i] = t->next;
      t->next = b[t->hash & (n - 1)];
      b[t->hash & (n - 1)] = t;
    }
  free(br.buckets);
  br.buckets = b;
  br.nbuckets = n;
}


/* topic_set records that the process wants topic (on) or not; returns
** whether that changed anything. */
static int topic_set(const char *name, size_t len, int on) {
  uint32_t h = cn_hash_bytes(name, len);
  topic_t **p, *t;
  if (br.ntopics >= br.nbuckets)
    topics_grow();
  if (br.nbuckets == 0)
    return 0;
  p = topic_slot(name, len, h);
  if ((*p != NULL) == on)
    return 0;
  if (!on) {
    t = *p;
    *p = t->next;
    free(t);
    br.ntopics--;
    return 1;
  }
  if ((t = malloc(sizeof *t + len)) == NULL)
    return 0;
  t->next = NULL;
  t->hash = h;
  t->len = len;
  memcpy(t->name, name, len);
  *p = t;
  br.ntopics++;
  return 1;
}


/* -- Encoding commands ---------------------------------------------------- */


static void put(link_t *l, const void *p, size_t n) {
  if (cn_buf_append(&l->out, p, n) < 0)
    l->oom = 1;
}


static void put_head(link_t *l, int type, size_t n) {
  char h[24];
  put(l, h, cn_resp_header(h, type, n));
}


static void put_bulk(link_t *l, const char *p, size_t n) {
  put_head(l, CN_RESP_BULK, n);
  put(l, p, n);
  put(l, "\r\n", 2);
}


static void put_channel(link_t *l, const char *topic, size_t n) {
  put_head(l, CN_RESP_BULK, br.plen + n);
  put(l, br.prefix, br.plen);
  put(l, topic, n);
  put(l, "\r\n", 2);
}


/* put_command starts a command of n words, the first being name. */
static void put_command(link_t *l, const char *name, size_t n) {
  put_head(l, CN_RESP_ARRAY, n);
  put_bulk(l, name, strlen(name));
}


static void put_publish(link_t *l, const cn_bus_msg_t *m, int echo) {
  put_command(l, "PUBLISH", 3);
  put_channel(l, m->bytes, m->tlen);
  put_head(l, CN_RESP_BULK, HEAD_LEN + m->len);
  put(l, echo ? MAGIC_ECHO : MAGIC, MAGIC_LEN);
  put(l, br.origin, ORIGIN_LEN);
  put(l, cn_bus_msg_data(m), m->len);
  put(l, "\r\n", 2);
}


/* -- Links ---------------------------------------------------------------- */

static void fail(const char *fmt, ...)
#ifdef __GNUC__
  __attribute__((format(printf, 1, 2)))
#endif
  ;
static void pump(void);
static void shut_down(void);


static void write_cb(uv_write_t *req, int status);


/* link_write sends what waits in l's write chain, one uv_write at a time. */
static void link_write(link_t *l) {
  uv_buf_t iov[64];
  size_t total = 0;
  int n, i, rc;
  if (l->oom) {
    fail("out of memory");
    return;
  }
  if (l->writing || !l->connected || l->out.len == 0)
    return;
  n = cn_buf_iov(&l->out, 0, iov, 64);
  for (i = 0; i < n; i++)
    total += iov[i].len;
  l->wreq.data = l;
  if ((rc = uv_write(&l->wreq, &l->h.stream, iov, (unsigned)n, write_cb)) < 0) {
    fail("write: %s", uv_strerror(rc));
    return;
  }
  l->writing = 1;
  l->inflight = total;
}


static void write_cb(uv_write_t *req, int status) {
  link_t *l = req->data;
  l->writing = 0;
  if (status < 0) {
    if (status != UV_ECANCELED)
      fail("write: %s", uv_strerror(status));
    return;
  }
  cn_buf_consume(&l->out, l->inflight);
  l->inflight = 0;
  if (l->kind == L_PUB)
    pump();
  else
    link_write(l);
}


static void send_ping(link_t *l) {
  put_command(l, "PING", 1);
  l->ping_at = now_ms();
  link_write(l);
}


/* subscribe_all subscribes the subscriber link to every wanted topic. */
static void subscribe_all(link_t *l) {
  size_t i, k = 0, n = br.ntopics;
  topic_t *t;
  for (i = 0; i < br.nbuckets; i++)
    for (t = br.buckets[i]; t != NULL; t = t->next) {
      if (k % SUB_CHUNK == 0)
        put_command(l, "SUBSCRIBE",
                    1 + (n - k < SUB_CHUNK ? n - k : SUB_CHUNK));
      put_channel(l, t->name, t->len);
      k++;
    }
}


static void go_up(void) {
  uint64_t dropped, lost;
  br.up = 1;
  br.backoff = BACKOFF_MIN_MS;
  __atomic_store_n(&br.status_up, 1, __ATOMIC_RELAXED);
  dropped = __atomic_load_n(&br.dropped, __ATOMIC_RELAXED) - br.dropped0;
  lost = __atomic_load_n(&br.lost, __ATOMIC_RELAXED) - br.lost0;
  if (br.warned)
    cn_log(CN_LOG_WARN,
           "bus: redis %s back after %.1f s: %llu messages lost (%llu "
           "dropped from the outbox, %llu unconfirmed)",
           br.where, (double)(now_ms() - br.down_at) / 1000,
           (unsigned long long)(dropped + lost),
           (unsigned long long)dropped, (unsigned long long)lost);
  else
    cn_log(CN_LOG_INFO, "bus: redis %s up", br.where);
  br.warned = 0;
  br.dropped_logged = __atomic_load_n(&br.dropped, __ATOMIC_RELAXED);
  pump();
}


static void on_ready(link_t *l) {
  l->ready = 1;
  if (br.link[L_SUB].ready && br.link[L_PUB].ready && !br.up)
    go_up();
}


/* -- Replies ------------------------------------------------------------- */

/* A reply as its hooks see it: its type, and its first strings (the
** reply's own, or its elements') as spans of the flat bytes. */
typedef struct {
  int type, depth, elems;
  const char *s[4];
  size_t sl[4];
} reply_t;


static int is_aggregate(int type) {
  return type == CN_RESP_ARRAY || type == CN_RESP_MAP ||
         type == CN_RESP_SET || type == CN_RESP_PUSH || type == CN_RESP_ATTR;
}


static int rv_value(void *ud, int type, int64_t n) {
  reply_t *r = ud;
  (void)n;
  if (r->depth == 0)
    r->type = type;
  else if (r->depth == 1)
    r->elems++;
  if (is_aggregate(type))
    r->depth++;
  return 0;
}


static int rv_data(void *ud, const char *p, size_t n) {
  reply_t *r = ud;
  int i = r->depth == 0 ? 0 : r->elems - 1;
  if (r->depth <= 1 && i >= 0 && i < 4) {
    if (r->s[i] == NULL)
      r->s[i] = p; /* the bytes are flat: later pieces follow on */
    r->sl[i] += n;
  }
  return 0;
}


static int rv_end(void *ud, int type) {
  reply_t *r = ud;
  if (is_aggregate(type))
    r->depth--;
  return 0;
}


static const cn_resp_hooks_t reply_hooks = {rv_value, rv_data, rv_end};


static int is(const reply_t *r, int i, const char *word) {
  size_t n = strlen(word);
  return r->sl[i] == n && memcmp(r->s[i], word, n) == 0;
}


/* deliver hands a message from Redis to the bus, unless it came from this
** process. */
static void deliver(const char *chan, size_t clen, const char *p, size_t n) {
  if (clen < br.plen || memcmp(chan, br.prefix, br.plen) != 0)
    return;
  if (n >= HEAD_LEN && memcmp(p, MAGIC_ECHO, MAGIC_LEN) == 0) {
    p += HEAD_LEN; /* for every process, its origin too */
    n -= HEAD_LEN;
  } else if (n >= HEAD_LEN && memcmp(p, MAGIC, MAGIC_LEN) == 0) {
    if (memcmp(p + MAGIC_LEN, br.origin, ORIGIN_LEN) == 0)
      return; /* ours: local subscribers had it at once */
    p += HEAD_LEN;
    n -= HEAD_LEN;
  }
  __atomic_add_fetch(&br.received, 1, __ATOMIC_RELAXED);
  if (cn_bus_publish(NULL, chan + br.plen, clen - br.plen, p, n) < 0)
    __atomic_add_fetch(&br.lost, 1, __ATOMIC_RELAXED);
}


/* on_reply acts on a whole reply; returns -1 when the link failed. */
static int on_reply(link_t *l, const reply_t *r) {
  const char *what = l->kind == L_SUB ? "subscriber" : "publisher";
  if (r->type == CN_RESP_ERROR || r->type == CN_RESP_BLOBERR) {
    if (l->auth_pending || !l->ready || l->kind == L_SUB) {
      fail("%s: %.*s", what, (int)r->sl[0], r->s[0]);
      return -1;
    }
    landed(); /* a PUBLISH refused */
    __atomic_add_fetch(&br.lost, 1, __ATOMIC_RELAXED);
    return 0;
  }
  if (l->auth_pending) {
    l->auth_pending = 0;
    return 0;
  }
  if (r->type == CN_RESP_INT && l->kind == L_PUB) {
    landed();
    __atomic_add_fetch(&br.published, 1, __ATOMIC_RELAXED);
  } else if (r->type == CN_RESP_STATUS && is(r, 0, "PONG") && !l->ready) {
    on_ready(l);
  } else if (r->type == CN_RESP_ARRAY && r->elems == 3 &&
             is(r, 0, "message")) {
    deliver(r->s[1], r->sl[1], r->s[2], r->sl[2]);
  }
  return 0;
}


/* take_reply decodes the whole reply of len bytes at the head of l's read
** chain and acts on it. Returns -1 when the link failed. */
static int take_reply(link_t *l, size_t len) {
  reply_t r;
  uv_buf_t iov;
  const char *flat;
  size_t used;
  if (cn_buf_iov(&l->in, 0, &iov, 1) == 1 && iov.len >= len) {
    flat = iov.base; /* all in the first block: no copy */
  } else {
    if (len > br.scratch_size) {
      char *s = realloc(br.scratch, len);
      if (s == NULL) {
        fail("out of memory");
        return -1;
      }
      br.scratch = s;
      br.scratch_size = len;
    }
    cn_buf_copyout(&l->in, 0, br.scratch, len);
    flat = br.scratch;
  }
  memset(&r, 0, sizeof r);
  cn_resp_reset(&br.dec);
  br.dec.ud = &r;
  if (cn_resp_feed(&br.dec, flat, len, &used) != CN_RESP_DONE) {
    fail("protocol error: %s", br.dec.err);
    return -1;
  }
  return on_reply(l, &r);
}


static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  link_t *l = h->data;
  char *p;
  size_t n;
  (void)suggested;
  if (cn_buf_reserve(&l->in, &p, &n) < 0)
    *buf = uv_buf_init(NULL, 0);
  else
    *buf = uv_buf_init(p, (unsigned)n);
}


static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf) {
  link_t *l = s->data;
  size_t used;
  int rc;
  (void)buf;
  if (n == 0 || n == UV_ECANCELED)
    return;
  if (n < 0) {
    fail("%s", n == UV_EOF ? "connection closed by the server"
                           : uv_strerror((int)n));
    return;
  }
  cn_buf_commit(&l->in, (size_t)n);
  l->last_rx = now_ms();
  l->ping_at = 0;
  for (;;) {
    rc = cn_resp_feed_buf(&l->p, &l->in, l->fed, &used);
    if (rc < 0) {
      fail("protocol error: %s", l->p.err);
      return;
    }
    if (rc == CN_RESP_MORE) {
      l->fed += used;
      return;
    }
    used += l->fed;
    l->fed = 0;
    if (take_reply(l, used) < 0)
      return;
    cn_buf_consume(&l->in, used);
  }
}


/* -- Connecting, failing, reconnecting ------------------------------------ */


static void handshake(link_t *l) {
  if (br.password[0] != '\0') {
    put_command(l, "AUTH", br.user[0] != '\0' ? 3 : 2);
    if (br.user[0] != '\0')
      put_bulk(l, br.user, strlen(br.user));
    put_bulk(l, br.password, strlen(br.password));
    l->auth_pending = 1;
  }
  send_ping(l);
  if (l->kind == L_SUB)
    subscribe_all(l);
  link_write(l);
}


static void connect_cb(uv_connect_t *req, int status) {
  link_t *l = req->data;
  int rc;
  if (status == UV_ECANCELED || !l->open)
    return;
  if (status < 0) {
    fail("connect: %s", uv_strerror(status));
    return;
  }
  l->connected = 1;
  l->last_rx = now_ms();
  if ((rc = uv_read_start(&l->h.stream, alloc_cb, read_cb)) < 0) {
    fail("read: %s", uv_strerror(rc));
    return;
  }
  handshake(l);
}


static int link_open(link_t *l) {
  int rc;
  memset(&l->h, 0, sizeof l->h);
  if (br.addr.family == AF_UNIX) {
    uv_pipe_init(&br.loop, &l->h.pipe, 0);
  } else {
    uv_tcp_init(&br.loop, &l->h.tcp);
    uv_tcp_nodelay(&l->h.tcp, 1);
  }
  l->h.handle.data = l;
  l->open = 1;
  br.nopen++;
  l->creq.data = l;
  if (br.addr.family == AF_UNIX) {
    uv_pipe_connect(&l->creq, &l->h.pipe, br.addr.path, connect_cb);
    return 0;
  }
  rc = uv_tcp_connect(&l->creq, &l->h.tcp, (struct sockaddr *)&br.addr.ss,
                      connect_cb);
  return rc;
}


static void connect_all(void) {
  int rc, i;
  br.resetting = 0;
  if (br.addr.family != AF_UNIX && (rc = cn_addr_resolve(&br.addr)) < 0) {
    br.addr.sslen = 0; /* look it up again next time */
    fail("lookup %s: %s", br.addr.host, uv_strerror(rc));
    return;
  }
  for (i = 0; i < 2; i++)
    if ((rc = link_open(&br.link[i])) < 0) {
      fail("connect: %s", uv_strerror(rc));
      return;
    }
}


static void retry_cb(uv_timer_t *t) {
  (void)t;
  if (!br.stop_begun)
    connect_all();
}


static void close_cb(uv_handle_t *h) {
  link_t *l = h->data;
  cn_buf_reset(&l->in);
  cn_buf_reset(&l->out);
  l->inflight = 0;
  l->fed = 0;
  cn_resp_reset(&l->p);
  if (--br.nopen > 0 || br.closing)
    return;
  if (br.stop_begun) {
    shut_down();
    return;
  }
  uv_timer_start(&br.retry, retry_cb, br.backoff, 0);
  br.backoff = br.backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS
                                                : br.backoff * 2;
}


static void close_links(void) {
  int i;
  for (i = 0; i < 2; i++) {
    link_t *l = &br.link[i];
    if (!l->open)
      continue;
    l->open = l->connected = l->ready = l->auth_pending = l->oom = 0;
    l->ping_at = 0;
    uv_close(&l->h.handle, close_cb);
  }
}


/* fail drops both links after one failed (why, for the log) and has them
** made again after the backoff. */
static void fail(const char *fmt, ...) {
  char why[256];
  va_list ap;
  uint64_t pending;
  if (br.resetting)
    return;
  br.resetting = 1;
  va_start(ap, fmt);
  vsnprintf(why, sizeof why, fmt, ap);
  va_end(ap);
  pending = grounded();
  if (br.up) {
    br.up = 0;
    __atomic_store_n(&br.status_up, 0, __ATOMIC_RELAXED);
    __atomic_add_fetch(&br.outages, 1, __ATOMIC_RELAXED);
  }
  if (!br.warned && !br.stop_begun) {
    br.warned = 1;
    br.down_at = now_ms();
    br.dropped0 = __atomic_load_n(&br.dropped, __ATOMIC_RELAXED);
    br.lost0 = __atomic_load_n(&br.lost, __ATOMIC_RELAXED);
    cn_log(CN_LOG_WARN,
           "bus: redis %s down (%s): local delivery goes on; reconnecting",
           br.where, why);
  } else {
    cn_log(CN_LOG_DEBUG, "bus: redis %s: %s", br.where, why);
  }
  __atomic_add_fetch(&br.lost, pending, __ATOMIC_RELAXED);
  if (br.nopen > 0)
    close_links();
  else if (!br.stop_begun)
    uv_timer_start(&br.retry, retry_cb, br.backoff, 0);
}


/* -- The bridge's loop --------------------------------------------------- */


/* pump encodes waiting messages onto the publisher link while it is up
** and not too far behind. */
static void pump(void) {
  link_t *l = &br.link[L_PUB];
  out_t batch[BATCH];
  size_t n, i;
  while (br.up && l->out.len < OUT_HWM &&
         (n = outbox_take(batch, BATCH)) > 0) {
    for (i = 0; i < n; i++) {
      put_publish(l, batch[i].m, batch[i].echo);
      cn_bus_msg_unref(batch[i].m);
    }
  }
  link_write(l);
}


/* apply takes the interest changes the workers queued and (un)subscribes
** the subscriber link when it is connected (else connecting subscribes
** every wanted topic). */
static void apply(void) {
  change_t *c, *next;
  link_t *l = &br.link[L_SUB];
  uv_mutex_lock(&br.lock);
  c = br.changes;
  br.changes = br.changes_tail = NULL;
  uv_mutex_unlock(&br.lock);
  for (; c != NULL; c = next) {
    next = c->next;
    if (topic_set(c->name, c->len, c->on) && l->connected) {
      put_command(l, c->on ? "SUBSCRIBE" : "UNSUBSCRIBE", 2);
      put_channel(l, c->name, c->len);
    }
    free(c);
  }
  link_write(l);
}


static int drained(void) {
  size_t waiting;
  uv_mutex_lock(&br.lock);
  waiting = br.rcount + br.fly_n;
  uv_mutex_unlock(&br.lock);
  return waiting == 0;
}


/* shut_down closes the links, then every handle: the loop ends. */
static void shut_down(void) {
  if (br.closing)
    return;
  br.resetting = 1;
  if (br.nopen > 0) {
    close_links();
    return;
  }
  br.closing = 1;
  uv_close((uv_handle_t *)&br.async, NULL);
  uv_close((uv_handle_t *)&br.tick, NULL);
  uv_close((uv_handle_t *)&br.retry, NULL);
}


static void async_cb(uv_async_t *h) {
  int stopping;
  (void)h;
  uv_mutex_lock(&br.lock);
  stopping = br.stopping;
  uv_mutex_unlock(&br.lock);
  apply();
  pump();
  if (stopping && !br.stop_begun) {
    br.stop_begun = 1;
    br.stop_at = now_ms() + STOP_MS;
    if (!br.up || drained())
      shut_down();
  }
}


static void check_link(link_t *l) {
  uint64_t now = now_ms();
  if (!l->connected)
    return;
  if (l->ping_at != 0 && now - l->ping_at > DEAD_MS)
    fail("no answer to PING for %d s", DEAD_MS / 1000);
  else if (l->ping_at == 0 && now - l->last_rx >= PING_MS)
    send_ping(l);
}


static void tick_cb(uv_timer_t *t) {
  uint64_t dropped = __atomic_load_n(&br.dropped, __ATOMIC_RELAXED);
  (void)t;
  if (br.stop_begun) {
    if (!br.up || drained() || now_ms() >= br.stop_at)
      shut_down();
    return;
  }
  check_link(&br.link[L_SUB]);
  check_link(&br.link[L_PUB]);
  if (br.up && dropped > br.dropped_logged) {
    cn_log(CN_LOG_WARN, "bus: redis %s is too slow: %llu messages dropped "
           "from the outbox", br.where,
           (unsigned long long)(dropped - br.dropped_logged));
    br.dropped_logged = dropped;
  }
}


static void run(void *arg) {
  (void)arg;
  connect_all();
  uv_run(&br.loop, UV_RUN_DEFAULT);
}


/* -- Starting and stopping ------------------------------------------------- */


static void make_origin(void) {
  uint64_t x = uv_hrtime() ^ ((uint64_t)uv_os_getpid() << 32);
  if (uv_random(NULL, NULL, br.origin, ORIGIN_LEN, 0, NULL) == 0)
    return;
  memcpy(br.origin, &x, ORIGIN_LEN);
}


/* cn_busredis_start makes coronet.bus span every process attached to the
** Redis at url ("redis://[[user]:password@]host[:port][/db]", "host:port"
** or "unix:PATH"): it starts the bridge thread and hooks it to the bus.
** It does not wait for Redis: the bridge connects (and reconnects) on its
** own. Returns 0 or CN_EADDR for a bad url (nothing started). */
int cn_busredis_start(const char *url) {
  cn_redis_url_t u;
  int i;
  memset(&br, 0, sizeof br);
  if (cn_redis_url_parse(url, &u) < 0 || cn_addr_parse(u.dial, &br.addr) < 0)
    return CN_EADDR;
  if (strlen(url) >= sizeof br.url)
    return CN_EADDR;
  strcpy(br.url, url);
  memcpy(br.user, u.user, sizeof br.user);
  memcpy(br.password, u.password, sizeof br.password);
  if (br.addr.family == AF_UNIX)
    snprintf(br.where, sizeof br.where, "unix:%s", br.addr.path);
  else
    snprintf(br.where, sizeof br.where, "%s:%d", br.addr.host, br.addr.port);
  br.plen = (size_t)snprintf(br.prefix, sizeof br.prefix, "coronet:bus:%d:",
                             u.db);
  make_origin();
  uv_loop_init(&br.loop);
  uv_mutex_init(&br.lock);
  uv_async_init(&br.loop, &br.async, async_cb);
  uv_timer_init(&br.loop, &br.tick);
  uv_timer_init(&br.loop, &br.retry);
  uv_timer_start(&br.tick, tick_cb, TICK_MS, TICK_MS);
  cn_pool_init(&br.pool, 16);
  for (i = 0; i < 2; i++) {
    br.link[i].kind = i;
    cn_buf_init(&br.link[i].in, &br.pool);
    cn_buf_init(&br.link[i].out, &br.pool);
    cn_resp_init(&br.link[i].p);
  }
  br.backoff = BACKOFF_MIN_MS;
  cn_resp_init(&br.dec);
  br.dec.hooks = &reply_hooks;
  cn_bus_set_bridge(&hooks);
  if (uv_thread_create(&br.thread, run, NULL) < 0) {
    cn_bus_set_bridge(NULL);
    return CN_ENOMEM;
  }
  br.started = 1;
  return 0;
}


/* cn_busredis_stop detaches the bridge from the bus, gives what waits in
** the outbox a moment (STOP_MS) to leave, and ends the bridge thread. */
void cn_busredis_stop(void) {
  topic_t *t;
  change_t *c;
  size_t i;
  if (!br.started)
    return;
  cn_bus_set_bridge(NULL);
  uv_mutex_lock(&br.lock);
  br.stopping = 1;
  uv_mutex_unlock(&br.lock);
  uv_async_send(&br.async);
  uv_thread_join(&br.thread);
  uv_loop_close(&br.loop);
  for (i = 0; i < br.rcount; i++)
    cn_bus_msg_unref(br.ring[(br.rhead + i) % br.rcap].m);
  free(br.ring);
  free(br.fly);
  while ((c = br.changes) != NULL) {
    br.changes = c->next;
    free(c);
  }
  for (i = 0; i < br.nbuckets; i++)
    while ((t = br.buckets[i]) != NULL) {
      br.buckets[i] = t->next;
      free(t);
    }
  free(br.buckets);
  free(br.scratch);
  cn_pool_close(&br.pool);
  uv_mutex_destroy(&br.lock);
  br.started = 0;
}


/* cn_busredis_publish sends topic's message p[0..n) to every subscriber
** of every process through Redis, this process's included (they get it
** in Redis's order, after what Redis had before it, not at once). Never
** blocks: it waits in the outbox like any other. Returns 0, CN_ECLOSED
** without --bus, or CN_ENOMEM. */
int cn_busredis_publish(const char *topic, size_t tlen, const void *p,
                        size_t n) {
  cn_bus_msg_t *m;
  if (!br.started)
    return CN_ECLOSED;
  if ((m = cn_bus_msg_new(topic, tlen, p, n)) == NULL)
    return CN_ENOMEM;
  queue(m, 1);
  cn_bus_msg_unref(m);
  return 0;
}


/* cn_busredis_url returns the URL --bus gave, or NULL without --bus. */
const char *cn_busredis_url(void) { return br.started ? br.url : NULL; }


/* cn_busredis_stats fills st; st->configured is 0 without --bus. */
void cn_busredis_stats(cn_busredis_stats_t *st) {
  memset(st, 0, sizeof *st);
  if (!br.started)
    return;
  st->configured = 1;
  st->up = __atomic_load_n(&br.status_up, __ATOMIC_RELAXED);
  st->published = __atomic_load_n(&br.published, __ATOMIC_RELAXED);
  st->received = __atomic_load_n(&br.received, __ATOMIC_RELAXED);
  st->dropped = __atomic_load_n(&br.dropped, __ATOMIC_RELAXED);
  st->lost = __atomic_load_n(&br.lost, __ATOMIC_RELAXED);
  st->outages = __atomic_load_n(&br.outages, __ATOMIC_RELAXED);
  uv_mutex_lock(&br.lock);
  st->unconfirmed = br.fly_n;
  st->outbox = br.rcount;
  st->queued = br.seq;
  if (br.fly_n > 0)
    st->settled = br.fly[br.fly_head] - 1;
  else if (br.rcount > 0)
    st->settled = br.ring[br.rhead].seq - 1;
  else
    st->settled = br.seq;
  uv_mutex_unlock(&br.lock);
  snprintf(st->where, sizeof st->where, "%s", br.where);
}
