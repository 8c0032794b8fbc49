/* cn_timer.c: a worker's timers. Their owners embed the nodes (a task's
** deadline, a Lua timer), so a timer costs no allocation; one uv_timer_t
** drives them all. They sit in a hierarchical timing wheel: level 0 has a
** slot per millisecond of the next 64, level k a slot per 64^k ms of the
** next 64^(k+1); as time reaches a level-k slot its timers move down
** ("cascade"), so each timer moves at most once per level. Starting and
** stopping cost O(1); timers fire in the order of their deadlines (those
** of the same millisecond in about the order they were started), at most
** CN_TIMER_BATCH per loop turn, so that the loop polls I/O between the
** batches of a burst. No Lua: tasks embed a node in cn_sched.c, Lua
** timers in lcn_sched.c. */
#include "cn.h"

#define MASK (CN_WHEEL_SIZE - 1)
#define SPAN(k) ((uint64_t)1 << (CN_WHEEL_BITS * (k)))
#define MAX_DELTA (SPAN(CN_WHEEL_LEVELS) - 1)

static void link_tail(cn_tlink_t *head, cn_tlink_t *l) {
  l->prev = head->prev;
  l->next = head;
  head->prev->next = l;
  head->prev = l;
}


static void unlink_node(cn_timers_t *ts, cn_timer_t *t) {
  cn_tlink_t *l = &t->link;
  l->prev->next = l->next;
  l->next->prev = l->prev;
  if (ts->slots[t->slot].next == &ts->slots[t->slot])
    ts->used[t->slot / CN_WHEEL_SIZE] &= ~((uint64_t)1 << (t->slot & MASK));
}


/* place puts t in the slot its deadline falls in, as seen from ts->now;
** a deadline already passed goes to the current millisecond's slot. */
static void place(cn_timers_t *ts, cn_timer_t *t) {
  uint64_t delta = t->when > ts->now ? t->when - ts->now : 0, at;
  int k = 0;
  if (delta > MAX_DELTA)
    delta = MAX_DELTA; /* waits at the top level, moves again later */
  at = ts->now + delta;
  while (k < CN_WHEEL_LEVELS - 1 && delta >= SPAN(k + 1))
    k++;
  t->slot = (uint16_t)(k * CN_WHEEL_SIZE +
                        ((at >> (CN_WHEEL_BITS * k)) & MASK));
  ts->used[k] |= (uint64_t)1 << (t->slot & MASK);
  link_tail(&ts->slots[t->slot], &t->link);
}


/* cascade moves down the timers of the slots that time reached: level 1's
** current slot each 64 ms, level 2's when level 1 wraps, and so on. */
static void cascade(cn_timers_t *ts) {
  int k;
  for (k = 1; k < CN_WHEEL_LEVELS; k++) {
    int idx = (int)((ts->now >> (CN_WHEEL_BITS * k)) & MASK);
    cn_tlink_t *head = &ts->slots[k * CN_WHEEL_SIZE + idx], list;
    if (head->next != head) { /* take the whole list, then place each */
      list.next = head->next;
      list.prev = head->prev;
      list.next->prev = list.prev->next = &list;
      head->next = head->prev = head;
      ts->used[k] &= ~((uint64_t)1 << idx);
      while (list.next != &list) {
        cn_timer_t *t = (cn_timer_t *)list.next;
        list.next = t->link.next;
        list.next->prev = &list;
        place(ts, t);
      }
    }
    if (idx != 0)
      break;
  }
}


/* next_stop returns the first millisecond after ts->now at which level 0
** has timers or a cascade is due, at most target. */
static uint64_t next_stop(cn_timers_t *ts, uint64_t target) {
  uint64_t stop = (ts->now | MASK) + 1; /* the next cascade */
  int pos = (int)(ts->now & MASK);
  uint64_t later = pos == MASK ? 0 : ts->used[0] >> (pos + 1);
  if (later != 0)
    stop = ts->now + 1 + (uint64_t)__builtin_ctzll(later);
  return stop < target ? stop : target;
}


/* advance fires, in order, the timers due up to target (loop ms), at most
** CN_TIMER_BATCH; ts->now stays at the first millisecond not done. */
static void advance(cn_timers_t *ts, uint64_t target) {
  int n = 0;
  for (;;) {
    cn_tlink_t *head = &ts->slots[ts->now & MASK];
    while (head->next != head) {
      cn_timer_t *t = (cn_timer_t *)head->next;
      if (n++ >= CN_TIMER_BATCH)
        return;
      unlink_node(ts, t);
      t->on = 0;
      ts->n--;
      t->cb(t); /* may start or stop timers, this one too */
    }
    if (ts->now >= target)
      return;
    ts->now = next_stop(ts, target);
    if ((ts->now & MASK) == 0)
      cascade(ts);
  }
}


/* next_due returns the loop time of the earliest thing to do: a level-0
** timer or the next cascade of a non-empty higher slot. ts->n > 0. */
static uint64_t next_due(const cn_timers_t *ts) {
  uint64_t best = UINT64_MAX;
  int k;
  for (k = 0; k < CN_WHEEL_LEVELS; k++) {
    int shift = CN_WHEEL_BITS * k;
    int pos = (int)((ts->now >> shift) & MASK);
    uint64_t used = ts->used[k], rot, at;
    if (used == 0)
      continue;
    if (k == 0) { /* slots pos..63 then 0..pos-1: the next 64 ms */
      rot = pos == 0 ? used : (used >> pos) | (used << (CN_WHEEL_SIZE - pos));
      at = ts->now + (uint64_t)__builtin_ctzll(rot);
    } else { /* slot pos + d (d = 1..64) cascades when level k reaches it */
      pos = (pos + 1) & MASK;
      rot = pos == 0 ? used : (used >> pos) | (used << (CN_WHEEL_SIZE - pos));
      at = ((ts->now >> shift) + 1 + (uint64_t)__builtin_ctzll(rot)) << shift;
    }
    if (at < best)
      best = at;
  }
  return best;
}


static void timer_cb(uv_timer_t *h) {
  cn_timers_t *ts = h->data;
  ts->armed = 0;
  advance(ts, uv_now(h->loop));
}


/* arm points the uv_timer_t at the next thing to do. It runs before each
** poll (never inside timer_cb, where a due timer would run again at once
** and starve the poll), so a burst left over from timer_cb's batch fires
** in the next turn, after the poll. */
static void arm(cn_timers_t *ts) {
  uv_loop_t *loop = ts->h.loop;
  uint64_t due, now;
  if (ts->n == 0) {
    if (ts->armed) {
      uv_timer_stop(&ts->h);
      ts->armed = 0;
    }
    return;
  }
  due = next_due(ts);
  if (ts->armed && ts->armed_when == due)
    return;
  now = uv_now(loop);
  ts->armed = 1;
  ts->armed_when = due;
  uv_timer_start(&ts->h, timer_cb, due > now ? due - now : 0, 0);
}


static void prepare_cb(uv_prepare_t *h) { arm(h->data); }


void cn_timers_init(cn_timers_t *ts, uv_loop_t *loop) {
  int i;
  for (i = 0; i < CN_WHEEL_LEVELS * CN_WHEEL_SIZE; i++)
    ts->slots[i].next = ts->slots[i].prev = &ts->slots[i];
  for (i = 0; i < CN_WHEEL_LEVELS; i++)
    ts->used[i] = 0;
  ts->now = uv_now(loop);
  ts->n = 0;
  ts->armed = 0;
  ts->armed_when = 0;
  uv_timer_init(loop, &ts->h);
  ts->h.data = ts;
  uv_prepare_init(loop, &ts->prepare);
  ts->prepare.data = ts;
  uv_prepare_start(&ts->prepare, prepare_cb);
  uv_unref((uv_handle_t *)&ts->prepare);
}


/* cn_timers_close closes the handles; nodes still pending are forgotten
** (their owners are being freed). */
void cn_timers_close(cn_timers_t *ts) {
  ts->n = 0;
  uv_close((uv_handle_t *)&ts->h, NULL);
  uv_close((uv_handle_t *)&ts->prepare, NULL);
}


/* cn_timer_start makes t fire at loop time when (ms), calling t->cb once;
** a pending t is moved. A deadline already passed fires in the next turn
** of the loop. */
void cn_timer_start(cn_timers_t *ts, cn_timer_t *t, uint64_t when) {
  if (t->on)
    unlink_node(ts, t);
  else if (ts->n++ == 0)
    ts->now = uv_now(ts->h.loop); /* an empty wheel need not catch up */
  t->when = when;
  t->on = 1;
  place(ts, t);
}


/* cn_timer_stop keeps t from firing. Returns 1 if it was pending. */
int cn_timer_stop(cn_timers_t *ts, cn_timer_t *t) {
  if (!t->on)
    return 0;
  unlink_node(ts, t);
  t->on = 0;
  ts->n--;
  return 1;
}
