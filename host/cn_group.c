/* cn_group.c: groups of connections (of one worker) that one call writes
** to: the bytes become one shared block appended by reference to every
** member's write chain. A member whose unsent bytes would pass its limit
** is closed and leaves; a member that closes, or whose peer went away,
** leaves by itself. A member whose chain passed its high-water mark is
** behind until it drains to its low-water mark; tasks can wait until no
** member is behind (the pace of a sender that must not outrun its
** readers). A batch hands out several messages as one block: a member
** takes it by reference whole, or, when some part is not for it, as
** copies of the rest. Lua binding in lcn_group.c. */
#include <stdlib.h>
#include <string.h>

#include "cn.h"

typedef struct cn_member_s {
  cn_conn_watch_t watch; /* first: the watcher is the member */
  cn_group_t *g;
  cn_conn_t *c;
  size_t limit;
  size_t index; /* in g->members */
  int behind;
  uint32_t skip; /* in a batch: 1 + its first part not for it, or 0 */
} member_t;

static void member_event(cn_conn_watch_t *w, cn_conn_t *c, int event);

/* The process's groups, members and members dropped (cn_group_counts). */
static cn_group_counts_t counts;

#define COUNT(field, op) __atomic_##op##_fetch(&counts.field, 1, __ATOMIC_RELAXED)


/* cn_group_new returns an empty group, or NULL when memory runs out. */
cn_group_t *cn_group_new(void) {
  cn_group_t *g = calloc(1, sizeof(cn_group_t));
  if (g != NULL)
    COUNT(groups, add);
  return g;
}


/* cn_group_counts tells how many groups and members the process has, and
** how many members were closed at their limit since it started. */
void cn_group_counts(cn_group_counts_t *out) {
  out->groups = __atomic_load_n(&counts.groups, __ATOMIC_RELAXED);
  out->members = __atomic_load_n(&counts.members, __ATOMIC_RELAXED);
  out->dropped = __atomic_load_n(&counts.dropped, __ATOMIC_RELAXED);
}


static void wake_all(cn_group_t *g) {
  while (g->nwait > 0) {
    cn_waiter_t *w = g->waiters[--g->nwait];
    w->wake(w);
  }
}


static void set_behind(member_t *m, int behind) {
  cn_group_t *g = m->g;
  if (m->behind == behind)
    return;
  m->behind = behind;
  if (behind) {
    g->behind++;
  } else if (--g->behind == 0) {
    wake_all(g);
  }
}


/* drop takes m out of its group. */
static void drop(member_t *m) {
  cn_group_t *g = m->g;
  member_t *last = g->members[--g->n];
  last->index = m->index;
  g->members[m->index] = last;
  set_behind(m, 0);
  free(m);
  COUNT(members, sub);
}


static void member_event(cn_conn_watch_t *w, cn_conn_t *c, int event) {
  member_t *m = (member_t *)w;
  (void)c;
  if (event == CN_CONN_EV_CLOSED)
    drop(m); /* the connection already unlinked the watcher */
  else if (event == CN_CONN_EV_DRAINED)
    set_behind(m, 0);
}


static member_t *find(cn_group_t *g, cn_conn_t *c) {
  cn_conn_watch_t *w;
  for (w = c->watchers; w != NULL; w = w->next)
    if (w->fn == member_event && ((member_t *)w)->g == g)
      return (member_t *)w;
  return NULL;
}


/* cn_group_add makes c a member of g whose unsent bytes may reach limit
** (a member already there gets the new limit). Returns 0, CN_ECLOSED or
** CN_ENOMEM. */
int cn_group_add(cn_group_t *g, cn_conn_t *c, size_t limit) {
  member_t *m;
  if (c->flags & (CN_CONN_CLOSED | CN_CONN_CLOSING))
    return CN_ECLOSED;
  if ((m = find(g, c)) != NULL) {
    m->limit = limit;
    return 0;
  }
  if (g->n == g->size) {
    size_t size = g->size ? g->size * 2 : 16;
    member_t **p = realloc(g->members, size * sizeof *p);
    if (p == NULL)
      return CN_ENOMEM;
    g->members = p;
    g->size = size;
  }
  if ((m = calloc(1, sizeof *m)) == NULL)
    return CN_ENOMEM;
  m->watch.fn = member_event;
  m->g = g;
  m->c = c;
  m->limit = limit;
  m->index = g->n;
  g->members[g->n++] = m;
  cn_conn_watch(c, &m->watch);
  COUNT(members, add);
  return 0;
}


/* cn_group_remove takes c out of g. Returns whether it was a member. */
int cn_group_remove(cn_group_t *g, cn_conn_t *c) {
  member_t *m = find(g, c);
  if (m == NULL)
    return 0;
  cn_conn_unwatch(c, &m->watch);
  drop(m);
  return 1;
}


/* kick_out closes m's connection (why: for the log); it leaves. */
static void kick_out(member_t *m, const char *why) {
  cn_conn_t *c = m->c;
  cn_log(CN_LOG_DEBUG, "conn %llu: %zu bytes unsent, %s: closed",
         (unsigned long long)c->id, c->out.len, why);
  m->g->dropped++;
  COUNT(dropped, add);
  cn_group_remove(m->g, c);
  cn_conn_abort(c);
}


/* admit says whether n more bytes fit under m's limit; a member over it
** is kicked out. */
static int admit(member_t *m, size_t n) {
  if (m->c->out.len + n > m->limit) {
    kick_out(m, "over its group limit");
    return 0;
  }
  return 1;
}


/* appended follows a write to m's chain (rc: its result): a member whose
** connection cannot be written to any more (the peer went away) leaves;
** one past the high-water mark is behind. Returns whether m got it. */
static int appended(member_t *m, int rc) {
  cn_conn_t *c = m->c;
  if (rc < 0) {
    cn_group_remove(m->g, c);
    return 0;
  }
  if (c->out.len > c->w->cfg->write_hwm)
    set_behind(m, 1);
  return 1;
}


/* deliver appends s to m's write chain, or kicks m out when that would
** pass its limit. */
static int deliver(member_t *m, cn_sblock_t *s) {
  return admit(m, s->len) && appended(m, cn_conn_write_shared(m->c, s));
}


/* cn_group_send appends s to the write chain of every member but except
** (may be NULL). Returns how many members got it. */
size_t cn_group_send(cn_group_t *g, cn_sblock_t *s, cn_conn_t *except) {
  size_t i = g->n, count = 0;
  while (i-- > 0) { /* from the end: a kicked out member takes the last's
                       place, which was done already */
    if (i >= g->n)
      continue;
    if (g->members[i]->c != except)
      count += (size_t)deliver(g->members[i], s);
  }
  return count;
}


static size_t part_start(const cn_group_part_t *parts, size_t i) {
  return i > 0 ? parts[i - 1].end : 0;
}


/* deliver_but appends the parts of batch s that are for m, copies of
** them (m->skip and next list the parts that are not), under m's limit;
** clears m->skip. */
static int deliver_but(member_t *m, cn_sblock_t *s,
                       const cn_group_part_t *parts, const uint32_t *next) {
  size_t n = s->len, off = 0, k;
  int rc = 0;
  for (k = m->skip; k != 0; k = next[k - 1])
    n -= parts[k - 1].end - part_start(parts, k - 1);
  k = m->skip;
  m->skip = 0;
  if (n == 0 || !admit(m, n))
    return 0;
  for (; k != 0 && rc == 0; k = next[k - 1]) {
    size_t start = part_start(parts, k - 1);
    if (start > off)
      rc = cn_conn_write(m->c, s->data + off, start - off);
    off = parts[k - 1].end;
  }
  if (rc == 0 && off < s->len)
    rc = cn_conn_write(m->c, s->data + off, s->len - off);
  return appended(m, rc);
}


/* cn_group_send_batch hands out batch s, whose n parts are listed in
** parts (the last ends at s->len): each member gets the parts that are
** for it, in order, in one append (by reference when all are). Returns
** how many members got some, or 0 when memory runs out (or n passes
** UINT32_MAX). */
size_t cn_group_send_batch(cn_group_t *g, cn_sblock_t *s,
                           const cn_group_part_t *parts, size_t n) {
  uint32_t *next = NULL;
  size_t i = n, count = 0;
  member_t *m;
  if (n >= UINT32_MAX)
    return 0;
  while (i-- > 0) { /* each member's parts to skip, in order */
    if (parts[i].except == NULL || (m = find(g, parts[i].except)) == NULL)
      continue;
    if (next == NULL && (next = malloc(n * sizeof *next)) == NULL) {
      for (i = 0; i < g->n; i++) /* forget what was marked */
        g->members[i]->skip = 0;
      return 0;
    }
    next[i] = m->skip;
    m->skip = (uint32_t)i + 1;
  }
  i = g->n;
  while (i-- > 0) { /* from the end, as in cn_group_send */
    if (i >= g->n)
      continue;
    m = g->members[i];
    count += (size_t)(m->skip != 0 ? deliver_but(m, s, parts, next)
                                    : deliver(m, s));
  }
  free(next);
  return count;
}


/* cn_group_send_to appends s to member c's write chain alone, under its
** limit. Returns 0, CN_ENOTFOUND (not a member) or CN_ECLOSED (it left:
** kicked out, or its connection failed). */
int cn_group_send_to(cn_group_t *g, cn_conn_t *c, cn_sblock_t *s) {
  member_t *m = find(g, c);
  if (m == NULL)
    return CN_ENOTFOUND;
  return deliver(m, s) ? 0 : CN_ECLOSED;
}


/* cn_group_drop_behind closes every member that is behind. Returns how
** many. */
size_t cn_group_drop_behind(cn_group_t *g) {
  size_t i = g->n, count = 0;
  while (i-- > 0) {
    if (i < g->n && g->members[i]->behind) {
      kick_out(g->members[i], "behind in its group");
      count++;
    }
  }
  return count;
}


/* cn_group_wait adds w to the waiters woken once no member is behind.
** Returns 0, or CN_ENOMEM. */
int cn_group_wait(cn_group_t *g, cn_waiter_t *w) {
  if (g->nwait == g->wsize) {
    size_t size = g->wsize ? g->wsize * 2 : 4;
    cn_waiter_t **p = realloc(g->waiters, size * sizeof *p);
    if (p == NULL)
      return CN_ENOMEM;
    g->waiters = p;
    g->wsize = size;
  }
  g->waiters[g->nwait++] = w;
  return 0;
}


/* cn_group_unwait forgets w (a cn_cancel_cb; obj is the group). */
void cn_group_unwait(void *group, cn_waiter_t *w) {
  cn_group_t *g = group;
  size_t i;
  for (i = 0; i < g->nwait; i++)
    if (g->waiters[i] == w) {
      g->waiters[i] = g->waiters[--g->nwait];
      return;
    }
}


/* cn_group_free takes every member out and frees g; nothing may wait on
** it. */
void cn_group_free(cn_group_t *g) {
  while (g->n > 0)
    cn_group_remove(g, g->members[0]->c);
  free(g->members);
  free(g->waiters);
  free(g);
  COUNT(groups, sub);
}
