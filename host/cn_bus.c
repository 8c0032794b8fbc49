/* cn_bus.c: the message bus between the workers of a process. A message
** is one immutable, reference-counted block (topic and bytes) that every
** interested worker gets by reference. Each worker that has subscribers
** keeps, per topic, a bounded ring of waiting messages (drop-oldest, the
** loss counted), filled by publishers on any thread under that worker's
** lock and drained by the worker in batches: one uv_async per batch wakes
** its waiter. A bridge (Redis, later) can see every local publish and the
** process's first and last interest in each topic, and inject messages
** from outside. Lua binding in lcn_bus.c. */
#include <stdlib.h>
#include <string.h>

#include "cn.h"

typedef struct topic_s topic_t;
typedef struct wt_s wt_t;
typedef struct bw_s bw_t;

/* A worker's interest in one topic: its waiting messages. Ring and
** ready-list fields are guarded by the worker's lock; the rest by the bus
** lock. */
struct wt_s {
  wt_t *next;       /* the topic's interested workers */
  wt_t *next_ready; /* the worker's topics with messages waiting */
  wt_t *next_own;   /* the worker's topics */
  bw_t *bw;
  topic_t *topic;
  cn_bus_msg_t **ring;
  uint32_t cap, size, head, count; /* size: slots allocated (<= cap) */
  uint64_t lost;
  int ready;
};

struct topic_s {
  topic_t *next; /* hash chain */
  wt_t *wts;
  uint32_t hash;
  size_t len;
  char name[];
};

typedef struct {
  cn_bus_msg_t *msg;
  uint64_t lost;
} entry_t;

/* A worker's side of the bus, made on its thread at its first interest. */
struct bw_s {
  bw_t *next;
  cn_worker_t *w;
  uv_async_t async;
  uv_mutex_t lock;
  wt_t *ready_head, *ready_tail;
  int signalled; /* async sent, batch not taken yet (atomic) */
  wt_t *own;
  cn_waiter_t *waiter;
  entry_t *batch; /* taken from the rings, handed out one by one */
  size_t nbatch, ibatch, batch_size;
};

static struct {
  uv_rwlock_t lock; /* topics, wts, workers, the bridge */
  topic_t **buckets;
  size_t nbuckets, ntopics;
  bw_t *workers;
  cn_bus_bridge_t bridge;
  uint64_t published, delivered, dropped; /* atomic */
} bus;

static uv_once_t bus_once = UV_ONCE_INIT;
static __thread bw_t *self;

#define RING_MIN 16


static void bus_init(void) { uv_rwlock_init(&bus.lock); }


/* -- Messages ---------------------------------------------------------- */


/* cn_bus_msg_new returns a message of topic with bytes p[0..n), holding
** one reference, or NULL when memory runs out. */
cn_bus_msg_t *cn_bus_msg_new(const char *topic, size_t tlen, const void *p,
                             size_t n) {
  cn_bus_msg_t *m = malloc(sizeof *m + tlen + 1 + n);
  if (m == NULL)
    return NULL;
  m->refs = 1;
  m->tlen = (uint32_t)tlen;
  m->len = n;
  memcpy(m->bytes, topic, tlen);
  m->bytes[tlen] = '\0';
  if (n > 0)
    memcpy(m->bytes + tlen + 1, p, n);
  return m;
}


void cn_bus_msg_ref(cn_bus_msg_t *m) {
  __atomic_add_fetch(&m->refs, 1, __ATOMIC_RELAXED);
}


void cn_bus_msg_unref(cn_bus_msg_t *m) {
  if (__atomic_sub_fetch(&m->refs, 1, __ATOMIC_ACQ_REL) == 0)
    free(m);
}


/* -- Topics (under the bus lock) ----------------------------------------- */


static topic_t **topic_slot(const char *name, size_t len, uint32_t h) {
  topic_t **p;
  if (bus.nbuckets == 0)
    return NULL;
  for (p = &bus.buckets[h & (bus.nbuckets - 1)]; *p != NULL;
       p = &(*p)->next)
    if ((*p)->hash == h && (*p)->len == len && memcmp((*p)->name, name, len) == 0)
      return p;
  return p;
}


static topic_t *topic_find(const char *name, size_t len) {
  topic_t **p = topic_slot(name, len, cn_hash_bytes(name, len));
  return p != NULL ? *p : NULL;
}


static int topics_grow(void) {
  size_t n = bus.nbuckets ? bus.nbuckets * 2 : 64, i;
  topic_t **b = calloc(n, sizeof *b);
  if (b == NULL)
    return CN_ENOMEM;
  for (i = 0; i < bus.nbuckets; i++) {
    topic_t *t = bus.buckets[i], *next;
    for (; t != NULL; t = next) {
      next = t->next;
      t->next = b[t->hash & (n - 1)];
      b[t->hash & (n - 1)] = t;
    }
  }
  free(bus.buckets);
  bus.buckets = b;
  bus.nbuckets = n;
  return 0;
}


static topic_t *topic_get(const char *name, size_t len) {
  uint32_t h = cn_hash_bytes(name, len);
  topic_t **p = topic_slot(name, len, h), *t;
  if (p != NULL && *p != NULL)
    return *p;
  if (bus.ntopics >= bus.nbuckets && topics_grow() < 0)
    return NULL;
  if ((t = malloc(sizeof *t + len + 1)) == NULL)
    return NULL;
  t->wts = NULL;
  t->hash = h;
  t->len = len;
  memcpy(t->name, name, len);
  t->name[len] = '\0';
  p = topic_slot(name, len, h);
  t->next = NULL;
  *p = t;
  bus.ntopics++;
  return t;
}


static void topic_drop(topic_t *t) {
  topic_t **p = topic_slot(t->name, t->len, t->hash);
  *p = t->next;
  bus.ntopics--;
  free(t);
}


/* -- A worker's rings (under its lock) ----------------------------------- */


/* ring_push appends m to wt's ring, dropping the oldest message when the
** ring is full. Returns 0 or CN_ENOMEM (m not taken). */
static int ring_push(wt_t *wt, cn_bus_msg_t *m) {
  if (wt->count == wt->cap) {
    cn_bus_msg_unref(wt->ring[wt->head]);
    wt->head = (wt->head + 1) % wt->size;
    wt->count--;
    wt->lost++;
  } else if (wt->count == wt->size) {
    uint32_t size = wt->size ? wt->size * 2 : RING_MIN, i;
    cn_bus_msg_t **r;
    if (size > wt->cap)
      size = wt->cap;
    if ((r = malloc(size * sizeof *r)) == NULL)
      return CN_ENOMEM;
    for (i = 0; i < wt->count; i++)
      r[i] = wt->ring[(wt->head + i) % wt->size];
    free(wt->ring);
    wt->ring = r;
    wt->size = size;
    wt->head = 0;
  }
  wt->ring[(wt->head + wt->count) % wt->size] = m;
  wt->count++;
  return 0;
}


static void ring_clear(wt_t *wt) {
  while (wt->count > 0) {
    cn_bus_msg_unref(wt->ring[wt->head]);
    wt->head = (wt->head + 1) % wt->size;
    wt->count--;
  }
}


static void ready_unlink(bw_t *bw, wt_t *wt) {
  wt_t **p, *prev = NULL;
  if (!wt->ready)
    return;
  for (p = &bw->ready_head; *p != wt; p = &(*p)->next_ready)
    prev = *p;
  *p = wt->next_ready;
  if (bw->ready_tail == wt)
    bw->ready_tail = prev;
  wt->ready = 0;
}


/* deliver queues m for the worker of wt. Returns whether the worker must
** be signalled (its first batch since it last took one). */
static int deliver(wt_t *wt, cn_bus_msg_t *m) {
  bw_t *bw = wt->bw;
  int signal = 0;
  cn_bus_msg_ref(m);
  uv_mutex_lock(&bw->lock);
  if (ring_push(wt, m) < 0) {
    cn_bus_msg_unref(m);
    wt->lost++;
  }
  if (!wt->ready) {
    wt->ready = 1;
    wt->next_ready = NULL;
    if (bw->ready_tail != NULL)
      bw->ready_tail->next_ready = wt;
    else
      bw->ready_head = wt;
    bw->ready_tail = wt;
  }
  if (!bw->signalled) {
    signal = 1;
    __atomic_store_n(&bw->signalled, 1, __ATOMIC_RELEASE);
  }
  uv_mutex_unlock(&bw->lock);
  return signal;
}


/* -- Publishing -------------------------------------------------------- */


/* cn_bus_publish hands a copy of topic's message p[0..n) to every worker
** with subscribers to topic except from, whose own subscribers got it
** already, and to the bridge. A message from outside (the bridge) has from
** NULL: every interested worker gets it, the bridge does not. Never
** blocks beyond short locks. Returns how many workers it was queued for,
** or CN_ENOMEM. */
int cn_bus_publish(cn_worker_t *from, const char *topic, size_t tlen,
                   const void *p, size_t n) {
  cn_bus_msg_t *m = NULL;
  topic_t *t;
  wt_t *wt;
  int count = 0;
  uv_once(&bus_once, bus_init);
  __atomic_add_fetch(&bus.published, 1, __ATOMIC_RELAXED);
  uv_rwlock_rdlock(&bus.lock);
  t = topic_find(topic, tlen);
  for (wt = t != NULL ? t->wts : NULL; wt != NULL; wt = wt->next) {
    if (wt->bw->w == from)
      continue;
    if (m == NULL && (m = cn_bus_msg_new(topic, tlen, p, n)) == NULL) {
      uv_rwlock_rdunlock(&bus.lock);
      return CN_ENOMEM;
    }
    if (deliver(wt, m))
      uv_async_send(&wt->bw->async); /* the bus lock keeps bw open */
    count++;
  }
  if (from != NULL && bus.bridge.publish != NULL) {
    if (m == NULL && (m = cn_bus_msg_new(topic, tlen, p, n)) == NULL) {
      uv_rwlock_rdunlock(&bus.lock);
      return CN_ENOMEM;
    }
    bus.bridge.publish(bus.bridge.ud, m);
  }
  uv_rwlock_rdunlock(&bus.lock);
  if (m != NULL)
    cn_bus_msg_unref(m);
  return count;
}


/* cn_bus_set_bridge attaches b (copied; NULL detaches): b->publish sees
** every message a worker publishes (m lives through the call; take a
** reference to keep it), b->interest hears when the process's first
** subscriber to a topic arrives (on = 1) and its last leaves (on = 0).
** Both run under the bus lock, on a worker's thread: they must only queue
** work and never call the bus. The bridge feeds messages from outside
** through cn_bus_publish(NULL, ...). */
void cn_bus_set_bridge(const cn_bus_bridge_t *b) {
  uv_once(&bus_once, bus_init);
  uv_rwlock_wrlock(&bus.lock);
  if (b != NULL)
    bus.bridge = *b;
  else
    memset(&bus.bridge, 0, sizeof bus.bridge);
  uv_rwlock_wrunlock(&bus.lock);
}


/* -- A worker's side ------------------------------------------------------ */


static void async_cb(uv_async_t *h) {
  bw_t *bw = h->data;
  cn_waiter_t *wt = bw->waiter;
  if (wt != NULL) {
    bw->waiter = NULL;
    wt->wake(wt);
  }
}


/* worker_side returns the calling worker's side of the bus, making it
** when make is set. */
static bw_t *worker_side(cn_worker_t *w, int make) {
  bw_t *bw = self;
  if (bw != NULL || !make)
    return bw;
  if ((bw = calloc(1, sizeof *bw)) == NULL)
    return NULL;
  bw->w = w;
  uv_mutex_init(&bw->lock);
  uv_async_init(&w->loop, &bw->async, async_cb);
  bw->async.data = bw;
  uv_unref((uv_handle_t *)&bw->async); /* waiting tasks keep the loop */
  uv_rwlock_wrlock(&bus.lock);
  bw->next = bus.workers;
  bus.workers = bw;
  uv_rwlock_wrunlock(&bus.lock);
  self = bw;
  return bw;
}


static wt_t *own_find(bw_t *bw, topic_t *t) {
  wt_t *wt;
  for (wt = bw->own; wt != NULL; wt = wt->next_own)
    if (wt->topic == t)
      return wt;
  return NULL;
}


/* wt_free takes wt out of its topic (dropping the topic with its last
** worker) and frees it; under the bus lock. */
static void wt_free(wt_t *wt) {
  topic_t *t = wt->topic;
  bw_t *bw = wt->bw;
  wt_t **p;
  for (p = &t->wts; *p != wt; p = &(*p)->next) {
  }
  *p = wt->next;
  for (p = &bw->own; *p != wt; p = &(*p)->next_own) {
  }
  *p = wt->next_own;
  uv_mutex_lock(&bw->lock);
  ready_unlink(bw, wt);
  ring_clear(wt);
  uv_mutex_unlock(&bw->lock);
  free(wt->ring);
  free(wt);
  if (t->wts == NULL) {
    if (bus.bridge.interest != NULL)
      bus.bridge.interest(bus.bridge.ud, t->name, t->len, 0);
    topic_drop(t);
  }
}


static int wt_new(bw_t *bw, topic_t *t, uint32_t cap) {
  wt_t *wt = calloc(1, sizeof *wt);
  if (wt == NULL)
    return CN_ENOMEM;
  wt->bw = bw;
  wt->topic = t;
  wt->cap = cap;
  if (t->wts == NULL && bus.bridge.interest != NULL)
    bus.bridge.interest(bus.bridge.ud, t->name, t->len, 1);
  wt->next = t->wts;
  t->wts = wt;
  wt->next_own = bw->own;
  bw->own = wt;
  return 0;
}


/* cn_bus_interest says that worker w (the caller's) keeps up to cap
** messages of topic waiting for its subscribers; cap 0 ends its interest
** and drops what waits. Returns 0 or CN_ENOMEM. */
int cn_bus_interest(cn_worker_t *w, const char *topic, size_t tlen,
                    size_t cap) {
  bw_t *bw;
  topic_t *t;
  wt_t *wt;
  int rc = 0;
  uv_once(&bus_once, bus_init);
  if ((bw = worker_side(w, cap > 0)) == NULL)
    return cap > 0 ? CN_ENOMEM : 0;
  if (cap > UINT32_MAX)
    cap = UINT32_MAX;
  uv_rwlock_wrlock(&bus.lock);
  t = cap > 0 ? topic_get(topic, tlen) : topic_find(topic, tlen);
  wt = t != NULL ? own_find(bw, t) : NULL;
  if (cap > 0 && t == NULL) {
    rc = CN_ENOMEM;
  } else if (wt == NULL && cap > 0) {
    rc = wt_new(bw, t, (uint32_t)cap);
    if (rc < 0 && t->wts == NULL)
      topic_drop(t);
  } else if (wt != NULL && cap == 0) {
    wt_free(wt);
  } else if (wt != NULL) {
    uv_mutex_lock(&bw->lock);
    while (wt->count > cap) { /* shrinking: the oldest go */
      cn_bus_msg_unref(wt->ring[wt->head]);
      wt->head = (wt->head + 1) % wt->size;
      wt->count--;
      wt->lost++;
    }
    wt->cap = (uint32_t)cap;
    uv_mutex_unlock(&bw->lock);
  }
  uv_rwlock_wrunlock(&bus.lock);
  return rc;
}


/* refill moves every waiting message of bw into its batch. Returns the
** count. */
static size_t refill(bw_t *bw) {
  size_t need = 0;
  wt_t *wt;
  bw->nbatch = bw->ibatch = 0;
  uv_mutex_lock(&bw->lock);
  __atomic_store_n(&bw->signalled, 0, __ATOMIC_RELAXED);
  for (wt = bw->ready_head; wt != NULL; wt = wt->next_ready)
    need += wt->count;
  if (need > bw->batch_size) {
    entry_t *b = realloc(bw->batch, need * sizeof *b);
    if (b != NULL) {
      bw->batch = b;
      bw->batch_size = need;
    }
  }
  while ((wt = bw->ready_head) != NULL && bw->nbatch + wt->count <=
                                             bw->batch_size) {
    uint64_t lost = wt->lost;
    bw->ready_head = wt->next_ready;
    wt->ready = 0;
    wt->lost = 0;
    while (wt->count > 0) {
      entry_t *e = &bw->batch[bw->nbatch++];
      e->msg = wt->ring[wt->head];
      e->lost = lost;
      lost = 0;
      wt->head = (wt->head + 1) % wt->size;
      wt->count--;
    }
  }
  if (bw->ready_head == NULL)
    bw->ready_tail = NULL;
  uv_mutex_unlock(&bw->lock);
  return bw->nbatch;
}


/* cn_bus_take returns the next message waiting for worker w (the
** caller's), whose reference passes to the caller, and sets *lost to how
** many messages of its topic were dropped just before it; NULL when none
** waits. */
cn_bus_msg_t *cn_bus_take(cn_worker_t *w, uint64_t *lost) {
  bw_t *bw = worker_side(w, 0);
  entry_t *e;
  if (bw == NULL)
    return NULL;
  if (bw->ibatch == bw->nbatch &&
      (!__atomic_load_n(&bw->signalled, __ATOMIC_ACQUIRE) || refill(bw) == 0))
    return NULL;
  e = &bw->batch[bw->ibatch++];
  *lost = e->lost;
  return e->msg;
}


/* cn_bus_wait makes wt worker w's waiter: woken once messages wait. */
void cn_bus_wait(cn_worker_t *w, cn_waiter_t *wt) {
  bw_t *bw = worker_side(w, 1);
  if (bw != NULL)
    bw->waiter = wt;
}


/* cn_bus_unwait forgets wt (a cn_cancel_cb; obj is the worker). */
void cn_bus_unwait(void *w, cn_waiter_t *wt) {
  bw_t *bw = worker_side(w, 0);
  if (bw != NULL && bw->waiter == wt)
    bw->waiter = NULL;
}


/* cn_bus_kick wakes worker w's waiter, if any. */
void cn_bus_kick(cn_worker_t *w) {
  bw_t *bw = worker_side(w, 0);
  if (bw != NULL)
    async_cb(&bw->async);
}


static void free_side(uv_handle_t *h) {
  bw_t *bw = h->data;
  uv_mutex_destroy(&bw->lock);
  free(bw->batch);
  free(bw);
}


/* cn_bus_worker_close ends worker w's (the caller's) part in the bus: its
** interests end, waiting messages are dropped, and no publisher touches
** it any more. Its loop must still run to finish the close. */
void cn_bus_worker_close(cn_worker_t *w) {
  bw_t *bw = worker_side(w, 0), **p;
  if (bw == NULL)
    return;
  uv_rwlock_wrlock(&bus.lock);
  while (bw->own != NULL)
    wt_free(bw->own);
  for (p = &bus.workers; *p != bw; p = &(*p)->next) {
  }
  *p = bw->next;
  uv_rwlock_wrunlock(&bus.lock);
  while (bw->ibatch < bw->nbatch)
    cn_bus_msg_unref(bw->batch[bw->ibatch++].msg);
  bw->waiter = NULL;
  self = NULL;
  uv_close((uv_handle_t *)&bw->async, free_side);
}


/* -- Counters ------------------------------------------------------------ */


/* cn_bus_count adds to the process's delivered and dropped counters. */
void cn_bus_count(uint64_t delivered, uint64_t dropped) {
  if (delivered > 0)
    __atomic_add_fetch(&bus.delivered, delivered, __ATOMIC_RELAXED);
  if (dropped > 0)
    __atomic_add_fetch(&bus.dropped, dropped, __ATOMIC_RELAXED);
}


void cn_bus_stats(cn_bus_stats_t *st) {
  st->published = __atomic_load_n(&bus.published, __ATOMIC_RELAXED);
  st->delivered = __atomic_load_n(&bus.delivered, __ATOMIC_RELAXED);
  st->dropped = __atomic_load_n(&bus.dropped, __ATOMIC_RELAXED);
  uv_once(&bus_once, bus_init);
  uv_rwlock_rdlock(&bus.lock);
  st->topics = bus.ntopics;
  uv_rwlock_rdunlock(&bus.lock);
}
