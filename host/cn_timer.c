/* cn_timer.c: a worker's timers: one binary min-heap of nodes that their
** owners embed (a task's deadline, a Lua timer), driven by one uv_timer_t.
** Inserting and removing cost O(log n) and no allocation; due timers fire
** in the order of their deadlines, at most CN_TIMER_BATCH per loop turn so
** that the loop polls I/O between the batches of a burst. The heap is
** linked through the nodes (parent and two children): position k of a
** complete binary tree is reached from the root by the bits of k after the
** leading one (0: left, 1: right). No Lua; tasks embed a node in cn_sched.c,
** Lua timers in lcn_sched.c. */
#include "cn.h"

static int before(const cn_timer_t *a, const cn_timer_t *b) {
  return a->when < b->when ||
         (a->when == b->when && (int32_t)(a->seq - b->seq) < 0);
}


/* slot returns the link that holds (or will hold) the node at position pos
** (1-based) and sets *parent to the node above it. */
static cn_timer_t **slot(cn_timers_t *ts, size_t pos, cn_timer_t **parent) {
  cn_timer_t **link = &ts->root, *p = NULL;
  int k = 0;
  while ((pos >> k) > 1)
    k++;
  while (k-- > 0) {
    p = *link;
    link = (pos >> k) & 1 ? &p->right : &p->left;
  }
  *parent = p;
  return link;
}


/* relink makes whatever pointed at old point at node (old's place in the
** tree is now node's). */
static void relink(cn_timers_t *ts, cn_timer_t *old, cn_timer_t *node) {
  cn_timer_t *p = node->parent;
  if (p == NULL)
    ts->root = node;
  else if (p->left == old)
    p->left = node;
  else
    p->right = node;
  if (node->left != NULL)
    node->left->parent = node;
  if (node->right != NULL)
    node->right->parent = node;
}


/* swap_up exchanges c with its parent. */
static void swap_up(cn_timers_t *ts, cn_timer_t *c) {
  cn_timer_t *p = c->parent, *cl = c->left, *cr = c->right;
  c->parent = p->parent;
  if (p->left == c) {
    c->left = p;
    c->right = p->right;
  } else {
    c->left = p->left;
    c->right = p;
  }
  p->left = cl;
  p->right = cr;
  p->parent = c;
  relink(ts, p, c);
  if (cl != NULL)
    cl->parent = p;
  if (cr != NULL)
    cr->parent = p;
}


static void sift_up(cn_timers_t *ts, cn_timer_t *t) {
  while (t->parent != NULL && before(t, t->parent))
    swap_up(ts, t);
}


static void sift_down(cn_timers_t *ts, cn_timer_t *t) {
  for (;;) {
    cn_timer_t *m = t->left;
    if (m == NULL)
      return;
    if (t->right != NULL && before(t->right, m))
      m = t->right;
    if (!before(m, t))
      return;
    swap_up(ts, m);
  }
}


static void heap_remove(cn_timers_t *ts, cn_timer_t *t) {
  cn_timer_t *parent, **link = slot(ts, ts->n, &parent), *last = *link;
  *link = NULL; /* the last position empties */
  ts->n--;
  t->on = 0;
  if (last == t)
    return;
  last->parent = t->parent;
  last->left = t->left;
  last->right = t->right;
  relink(ts, t, last);
  sift_down(ts, last);
  sift_up(ts, last);
}


static void timer_cb(uv_timer_t *h) {
  cn_timers_t *ts = h->data;
  uint64_t now = uv_now(h->loop);
  int n = 0;
  ts->armed = 0;
  while (ts->root != NULL && ts->root->when <= now && n++ < CN_TIMER_BATCH) {
    cn_timer_t *t = ts->root;
    heap_remove(ts, t);
    t->cb(t); /* may start or stop timers, this one too */
  }
}


/* arm points the uv_timer_t at the earliest deadline. It runs before each
** poll (never inside timer_cb, where a due timer would run again at once
** and starve the poll), so a burst left over from timer_cb's batch fires
** in the next turn, after the poll. */
static void arm(cn_timers_t *ts) {
  cn_timer_t *t = ts->root;
  uv_loop_t *loop = ts->h.loop;
  if (t == NULL) {
    if (ts->armed) {
      uv_timer_stop(&ts->h);
      ts->armed = 0;
    }
    return;
  }
  if (ts->armed && ts->armed_when == t->when)
    return;
  ts->armed = 1;
  ts->armed_when = t->when;
  uv_timer_start(&ts->h, timer_cb,
                 t->when > uv_now(loop) ? t->when - uv_now(loop) : 0, 0);
}


static void prepare_cb(uv_prepare_t *h) { arm(h->data); }


void cn_timers_init(cn_timers_t *ts, uv_loop_t *loop) {
  ts->root = NULL;
  ts->n = 0;
  ts->seq = 0;
  ts->armed = 0;
  ts->armed_when = 0;
  uv_timer_init(loop, &ts->h);
  ts->h.data = ts;
  uv_prepare_init(loop, &ts->prepare);
  ts->prepare.data = ts;
  uv_prepare_start(&ts->prepare, prepare_cb);
  uv_unref((uv_handle_t *)&ts->prepare);
}


/* cn_timers_close closes the handles; nodes still in the heap are
** forgotten (their owners are being freed). */
void cn_timers_close(cn_timers_t *ts) {
  ts->root = NULL;
  ts->n = 0;
  uv_close((uv_handle_t *)&ts->h, NULL);
  uv_close((uv_handle_t *)&ts->prepare, NULL);
}


/* cn_timer_start makes t fire at loop time when (ms), calling t->cb once;
** a pending t is moved. Timers with the same deadline fire in the order
** they were started. */
void cn_timer_start(cn_timers_t *ts, cn_timer_t *t, uint64_t when) {
  cn_timer_t *parent, **link;
  if (t->on)
    heap_remove(ts, t);
  t->when = when;
  t->seq = ts->seq++;
  t->on = 1;
  t->left = t->right = NULL;
  link = slot(ts, ++ts->n, &parent);
  *link = t;
  t->parent = parent;
  sift_up(ts, t);
}


/* cn_timer_stop keeps t from firing. Returns 1 if it was pending. */
int cn_timer_stop(cn_timers_t *ts, cn_timer_t *t) {
  if (!t->on)
    return 0;
  heap_remove(ts, t);
  return 1;
}
