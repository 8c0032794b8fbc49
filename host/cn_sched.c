/* cn_sched.c: the scheduler. A task is a Lua coroutine plus this record;
** a parked task waits for one wake (from an engine, another task or its
** deadline); woken tasks join the run queue, which the worker runs after
** each poll (see run_cb for the rule). Deadlines live in the worker's
** timing wheel (cn_timer.c) through a node each task embeds. Engines and
** bindings reach a task's owner only through the hooks they set (end,
** data, the worker's after_run). Lua binding in lcn_sched.c. */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "cn.h"

struct cn_task_s {
  cn_waiter_t waiter; /* engines wake the task through it */
  cn_timer_t timer;   /* its deadline */
  lua_State *co;
  cn_task_t *next; /* run queue, or the free records */
  cn_cancel_cb cancel;
  void *cancel_obj;
  void *data; /* the owner's */
  uint64_t id;
  uint64_t conn_id;  /* the connection it serves, for logs (0: none) */
  uint64_t op_start; /* loop ms at which the running operation began */
  uint64_t since;    /* ns: when it parked or became ready */
  uint32_t parks;    /* counts its parks: names the current one */
  uint32_t tag;      /* the owner's number (coronet.lifecycle: version) */
  uint32_t slot;     /* the record's place in the worker's anchors */
  uint16_t nargs;    /* values on co's stack for the next resume */
  uint8_t state;     /* CN_TASK_* */
  uint8_t kind;      /* CN_TASK_SPAWNED, ... */
  uint8_t wait;      /* CN_WAIT_* of the current or last park */
  uint8_t timed_out; /* the last park ended by its deadline */
  uint8_t in_op;     /* a blocking operation spans several parks */
  uint8_t end;       /* its end hook: ends[end - 1], 0: the default */
};

/* Task records come in slabs of SLAB_TASKS (no allocator header, no
** rounding) and are reused, never freed while the worker runs. A task's
** worker is the running thread's (cn_worker_self): tasks stay on theirs. */
#define SLAB_TASKS 64

typedef struct slab_s {
  struct slab_s *next;
  cn_task_t tasks[SLAB_TASKS];
} slab_t;

/* The end hooks tasks have (cn_sched_set_end), per worker: a byte each. */
#define MAX_ENDS 8
static __thread cn_end_cb ends[MAX_ENDS];
static __thread unsigned nends;
static __thread uint32_t nrecords; /* task records made by this worker */

#define RESUMES_PER_CLOCK 8 /* resumes between two reads of the clock */
#define T_FREE 3 /* a record in the free list, not a task */

static void run_cb(uv_check_t *h);
static void idle_cb(uv_idle_t *h) { (void)h; }


/* clock_ns returns the scheduler's idea of now: the clock read a few
** resumes ago inside a turn, the real one outside. */
static uint64_t clock_ns(cn_worker_t *w) {
  return w->in_turn ? w->clock : uv_hrtime();
}


static void push(cn_task_t **head, cn_task_t **tail, cn_task_t *t) {
  t->next = NULL;
  if (*tail != NULL)
    (*tail)->next = t;
  else
    *head = t;
  *tail = t;
}


static void enqueue(cn_task_t *t) {
  cn_worker_t *w = cn_worker_self();
  t->state = CN_TASK_READY;
  t->since = clock_ns(w);
  push(&w->runq_head, &w->runq_tail, t);
  if (w->runq_len++ == 0)
    uv_idle_start(&w->idle, idle_cb); /* keep the poll from blocking */
}


static void stop_timer(cn_task_t *t) {
  if (t->timer.on)
    cn_timer_stop(&cn_worker_self()->timers, &t->timer);
}


/* ready moves a parked task to the run queue after dropping whatever it
** waited on. Returns 0 if t was not parked. */
static int ready(cn_task_t *t) {
  cn_cancel_cb cancel = t->cancel;
  if (t->state != CN_TASK_PARKED)
    return 0;
  t->cancel = NULL;
  if (cancel != NULL)
    cancel(t->cancel_obj, &t->waiter);
  enqueue(t);
  return 1;
}


static void waiter_wake(cn_waiter_t *wt) {
  ready((cn_task_t *)wt); /* the waiter is the first member */
}


static void deadline_cb(cn_timer_t *tm) {
  cn_task_t *t = (cn_task_t *)((char *)tm - offsetof(cn_task_t, timer));
  if (t->state != CN_TASK_PARKED)
    return;
  t->timed_out = 1;
  lua_settop(t->co, 0);
  lua_pushboolean(t->co, 0); /* a Lua-level park sees false */
  t->nargs = 1;
  ready(t);
}


void cn_sched_init(cn_worker_t *w) {
  lua_State *L = w->L;
  w->runq_head = w->runq_tail = NULL;
  w->yielded_head = w->yielded_tail = NULL;
  w->runq_len = 0;
  w->in_turn = 0;
  w->clock = uv_hrtime();
  w->current = NULL;
  w->task_slabs = NULL;
  w->free_tasks = NULL;
  w->ntasks = 0;
  w->task_index = NULL;
  w->task_index_cap = 0;
  nends = 0;
  nrecords = 0;
  w->after_run = NULL;
  memset(&w->stats, 0, sizeof w->stats);
  cn_timers_init(&w->timers, &w->loop);
  uv_check_init(&w->loop, &w->check);
  w->check.data = w;
  uv_check_start(&w->check, run_cb);
  uv_idle_init(&w->loop, &w->idle);
  lua_newtable(L);
  w->tasks_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  w->describe_ref = LUA_NOREF;
}


/* cn_sched_close frees every task record; the Lua state is already gone. */
void cn_sched_close(cn_worker_t *w) {
  slab_t *s;
  cn_timers_close(&w->timers);
  while ((s = w->task_slabs) != NULL) {
    w->task_slabs = s->next;
    free(s);
  }
  w->free_tasks = NULL;
  free(w->task_index);
  w->task_index = NULL;
  uv_close((uv_handle_t *)&w->check, NULL);
  uv_close((uv_handle_t *)&w->idle, NULL);
}


/* add_slab puts a new slab's records on w's free list; -1 if out of
** memory. */
static int add_slab(cn_worker_t *w) {
  slab_t *s = calloc(1, sizeof *s);
  int i;
  if (s == NULL)
    return -1;
  s->next = w->task_slabs;
  w->task_slabs = s;
  for (i = SLAB_TASKS - 1; i >= 0; i--) {
    s->tasks[i].state = T_FREE;
    s->tasks[i].slot = nrecords + (uint32_t)i + 1;
    s->tasks[i].next = w->free_tasks;
    w->free_tasks = &s->tasks[i];
  }
  nrecords += SLAB_TASKS;
  return 0;
}


static cn_task_t *task_alloc(cn_worker_t *w) {
  static uint64_t next_id; /* per process; only read in logs */
  cn_task_t *t;
  uint32_t parks, slot;
  if (w->free_tasks == NULL && add_slab(w) < 0)
    return NULL;
  t = w->free_tasks;
  w->free_tasks = t->next;
  parks = t->parks; /* goes on counting: tokens stay unique per record */
  slot = t->slot;
  memset(t, 0, sizeof *t);
  t->parks = parks;
  t->slot = slot;
  t->waiter.wake = waiter_wake;
  t->timer.cb = deadline_cb;
  t->id = __atomic_add_fetch(&next_id, 1, __ATOMIC_RELAXED);
  w->ntasks++;
  return t;
}


static void task_free(cn_worker_t *w, cn_task_t *t) {
  stop_timer(t);
  w->ntasks--;
  t->state = T_FREE;
  t->next = w->free_tasks;
  w->free_tasks = t;
}


/* -- Tasks by coroutine ---------------------------------------------------- */

/* A worker finds a task by its coroutine in an open-addressing table of
** task records (linear probing, at most half full): no Lua table keyed by
** coroutines, which the garbage collector would walk in hash order (see
** cn_sched_spawn). */


static size_t index_home(cn_worker_t *w, const lua_State *co) {
  uint64_t h = (uint64_t)(uintptr_t)co * 0x9e3779b97f4a7c15ull;
  return (size_t)(h >> 32) & (w->task_index_cap - 1);
}


static cn_task_t *index_find(cn_worker_t *w, const lua_State *co) {
  size_t i, mask = w->task_index_cap - 1;
  if (w->task_index_cap == 0)
    return NULL;
  for (i = index_home(w, co); w->task_index[i] != NULL; i = (i + 1) & mask)
    if (w->task_index[i]->co == co)
      return w->task_index[i];
  return NULL;
}


static void index_put(cn_worker_t *w, cn_task_t *t) {
  size_t i, mask = w->task_index_cap - 1;
  for (i = index_home(w, t->co); w->task_index[i] != NULL; i = (i + 1) & mask)
    ;
  w->task_index[i] = t;
}


/* index_add files t under its coroutine; -1 if out of memory. */
static int index_add(cn_worker_t *w, cn_task_t *t) {
  if (w->ntasks * 2 > w->task_index_cap) {
    size_t cap = w->task_index_cap, i;
    cn_task_t **old = w->task_index;
    cn_task_t **idx = calloc(cap ? cap * 2 : 64, sizeof *idx);
    if (idx == NULL)
      return -1;
    w->task_index = idx;
    w->task_index_cap = cap ? cap * 2 : 64;
    for (i = 0; i < cap; i++)
      if (old[i] != NULL)
        index_put(w, old[i]);
    free(old);
  }
  index_put(w, t);
  return 0;
}


/* index_remove takes t out, moving back the entries that probed past it. */
static void index_remove(cn_worker_t *w, cn_task_t *t) {
  cn_task_t **idx = w->task_index;
  size_t i, j, home, mask = w->task_index_cap - 1;
  for (i = index_home(w, t->co); idx[i] != t; i = (i + 1) & mask)
    ;
  for (j = (i + 1) & mask; idx[j] != NULL; j = (j + 1) & mask) {
    home = index_home(w, idx[j]->co);
    if ((j > i && (home <= i || home > j)) || (j < i && home <= i &&
                                               home > j)) {
      idx[i] = idx[j]; /* idx[j] may move back to the hole at i */
      i = j;
    }
  }
  idx[i] = NULL;
}


/* anchor keeps t's coroutine (on top of L) alive from the registry's
** anchors at t's record place, or lets it go (keep 0). The anchors are
** arrays of ANCHOR_CHUNK in the order of the records, so that the
** collector visits the coroutines in the order they were made, not
** scattered over the heap as a table keyed by them would; and in chunks,
** so that a cycle walks again (LuaJIT's atomic phase, for a table written
** to during the cycle) only the chunks of the tasks that began or ended
** meanwhile. */
#define ANCHOR_CHUNK 4096

static void anchor(cn_worker_t *w, lua_State *L, cn_task_t *t, int keep) {
  int chunk = (int)((t->slot - 1) / ANCHOR_CHUNK) + 1;
  lua_rawgeti(L, LUA_REGISTRYINDEX, w->tasks_ref);
  lua_rawgeti(L, -1, chunk);
  if (lua_isnil(L, -1)) {
    lua_pop(L, 1);
    lua_createtable(L, ANCHOR_CHUNK, 0);
    lua_pushvalue(L, -1);
    lua_rawseti(L, -3, chunk);
  }
  if (keep)
    lua_pushvalue(L, -3);
  else
    lua_pushnil(L);
  lua_rawseti(L, -2, (int)((t->slot - 1) % ANCHOR_CHUNK) + 1);
  lua_pop(L, 2);
}


/* cn_sched_spawn makes a task (kind CN_TASK_SPAWNED) of the function and
** nargs arguments on top of L (popping them) and queues it. Pushes the
** task's coroutine on L. */
cn_task_t *cn_sched_spawn(lua_State *L, int nargs) {
  cn_worker_t *w = cn_worker_self();
  cn_task_t *t = task_alloc(w);
  lua_State *co;
  if (t == NULL)
    luaL_error(L, "out of memory");
  co = lua_newthread(L);
  t->co = co;
  if (index_add(w, t) < 0) {
    task_free(w, t);
    luaL_error(L, "out of memory");
  }
  lua_insert(L, -(nargs + 2)); /* thread below function and arguments */
  lua_xmove(L, co, nargs + 1);
  t->nargs = (uint16_t)nargs;
  anchor(w, L, t, 1);
  enqueue(t);
  return t;
}


void cn_sched_set_kind(cn_task_t *t, int kind) { t->kind = (uint8_t)kind; }

/* cn_sched_set_end makes cb(t, status) run when t ends (status 0, or the
** error of lua_resume with its message on t's stack) instead of the
** default, which logs an error with cn_sched_log_error. */
void cn_sched_set_end(cn_task_t *t, cn_end_cb cb) {
  unsigned i;
  for (i = 0; i < nends && ends[i] != cb; i++)
    ;
  if (i == nends) {
    if (nends == MAX_ENDS) {
      cn_log(CN_LOG_ERROR, "cn_sched_set_end: more than %d end hooks",
             MAX_ENDS);
      abort();
    }
    ends[nends++] = cb;
  }
  t->end = (uint8_t)(i + 1);
}
void cn_sched_set_data(cn_task_t *t, void *data) { t->data = data; }


/* cn_sched_set_conn_id names the connection t serves, for logs and for
** other threads (the watchdog), which may read it while t runs. */
void cn_sched_set_conn_id(cn_task_t *t, uint64_t id) {
  __atomic_store_n(&t->conn_id, id, __ATOMIC_RELAXED);
}


void *cn_sched_data(cn_task_t *t) { return t->data; }
uint32_t cn_sched_tag(cn_task_t *t) { return t->tag; }
void cn_sched_set_tag(cn_task_t *t, uint32_t tag) { t->tag = tag; }
lua_State *cn_sched_thread(cn_task_t *t) { return t->co; }
cn_waiter_t *cn_sched_waiter(cn_task_t *t) { return &t->waiter; }
uint64_t cn_sched_task_id(cn_task_t *t) { return t->id; }
uint64_t cn_sched_task_conn_id(cn_task_t *t) {
  return __atomic_load_n(&t->conn_id, __ATOMIC_RELAXED);
}


/* cn_sched_parked_as returns the number of t's current park if t is
** parked, else 0: a wake meant for an earlier park can tell it is late. */
uint32_t cn_sched_parked_as(cn_task_t *t) {
  return t->state == CN_TASK_PARKED ? t->parks : 0;
}


/* cn_sched_lookup returns the live task at idx, given as its coroutine
** or its handle (a light userdata of the record), or NULL. Task
** records are reused but never freed while the worker runs, so a handle
** stays safe to look at: it names a task that ended, or a later one
** (which the park tokens of cn_sched_parked_as tell apart). */
cn_task_t *cn_sched_lookup(lua_State *L, int idx) {
  cn_worker_t *w = cn_worker_self();
  cn_task_t *t;
  int type = lua_type(L, idx);
  if (type == LUA_TLIGHTUSERDATA) {
    t = lua_touserdata(L, idx);
    return t != NULL && t->state != T_FREE ? t : NULL;
  }
  if (type != LUA_TTHREAD)
    return NULL;
  return index_find(w, lua_tothread(L, idx));
}


/* cn_sched_task returns the running task, for an operation that may park.
** L is its coroutine or one the task resumed (lua/coronet/boot.lua passes
** such a park up to the task). Outside any task it raises an error. */
cn_task_t *cn_sched_task(lua_State *L, const char *what) {
  cn_task_t *t = cn_worker_self()->current;
  if (t == NULL)
    luaL_error(L, "%s: cannot wait here: no coronet task is running", what);
  return t;
}


/* cn_sched_op_start returns the loop time at which the running operation
** of t began, starting one now if none runs. An operation lasts across
** the parks of one blocking call, until cn_sched_op_done. */
uint64_t cn_sched_op_start(cn_task_t *t) {
  if (!t->in_op) {
    t->in_op = 1;
    uv_loop_t *loop = &cn_worker_self()->loop;
    uv_update_time(loop); /* the cached time lags behind this turn's work:
                             timeouts would end early */
    t->op_start = uv_now(loop);
  }
  return t->op_start;
}


void cn_sched_op_done(cn_task_t *t) {
  t->in_op = 0;
  t->timed_out = 0;
  stop_timer(t);
}


/* cn_sched_park marks running task t parked, waiting for what wait
** (CN_WAIT_*) names; the caller then yields (in Lua). It wakes on its
** waiter, on cn_sched_wake_with, or at deadline (loop ms, 0 = never).
** cancel(obj, waiter) runs when it wakes, to drop its registrations. A
** deadline set by an earlier park of the same operation keeps running. */
void cn_sched_park(cn_task_t *t, int wait, uint64_t deadline,
                   cn_cancel_cb cancel, void *obj) {
  cn_worker_t *w = cn_worker_self();
  t->state = CN_TASK_PARKED;
  t->parks++;
  t->wait = (uint8_t)wait;
  t->since = clock_ns(w);
  w->stats.parks[wait]++;
  t->timed_out = 0;
  t->cancel = cancel;
  t->cancel_obj = obj;
  if (deadline == 0)
    stop_timer(t);
  else if (!t->timer.on || t->timer.when != deadline)
    cn_timer_start(&w->timers, &t->timer, deadline);
}


/* cn_sched_unpark undoes cn_sched_park for a task that could not yield
** after all; it stays the running task. */
void cn_sched_unpark(cn_task_t *t) {
  cn_cancel_cb cancel = t->cancel;
  t->cancel = NULL;
  if (cancel != NULL)
    cancel(t->cancel_obj, &t->waiter);
  t->state = CN_TASK_RUNNING;
  t->in_op = 0;
  stop_timer(t);
}


/* cn_sched_timed_out reports (once) that the running operation's last park
** hit its deadline; a timeout left from an earlier park does not count. */
int cn_sched_timed_out(cn_task_t *t) {
  int r = t->timed_out && t->in_op;
  t->timed_out = 0;
  return r;
}


/* cn_sched_wake_with wakes parked task t, which resumes with true followed
** by the n values popped from the top of from. Returns 0 (popping
** nothing) if t was not parked. */
int cn_sched_wake_with(cn_task_t *t, lua_State *from, int n) {
  if (t->state != CN_TASK_PARKED)
    return 0;
  stop_timer(t);
  t->in_op = 0;
  lua_settop(t->co, 0);
  lua_pushboolean(t->co, 1);
  lua_xmove(from, t->co, n);
  t->nargs = (uint16_t)(n + 1);
  return ready(t);
}


/* -- Introspection ------------------------------------------------------ */


/* cn_sched_walk calls fn(t, arg) for each live task of w. Nothing may
** start or end a task meanwhile. */
void cn_sched_walk(cn_worker_t *w, void (*fn)(cn_task_t *t, void *arg),
                   void *arg) {
  slab_t *s;
  int i;
  for (s = w->task_slabs; s != NULL; s = s->next)
    for (i = 0; i < SLAB_TASKS; i++)
      if (s->tasks[i].state != T_FREE)
        fn(&s->tasks[i], arg);
}


void cn_sched_info(cn_task_t *t, cn_task_info_t *info) {
  info->id = t->id;
  info->kind = t->kind;
  info->state = t->state;
  info->wait = t->wait;
  info->since = t->since;
  info->deadline = t->timer.on ? t->timer.when : 0;
  info->co = t->co;
  info->data = t->data;
}


const char *cn_sched_kind_name(int kind) {
  static const char *const names[CN_TASK_NKINDS] = {"spawned", "main",
                                                     "handler"};
  return kind >= 0 && kind < CN_TASK_NKINDS ? names[kind] : "?";
}


const char *cn_sched_wait_name(int wait) {
  static const char *const names[CN_WAIT_NKINDS] = {
    "other", "read", "write", "sleep", "channel",
    "bus", "dial", "file", "process"};
  return wait >= 0 && wait < CN_WAIT_NKINDS ? names[wait] : "?";
}


/* -- Running ----------------------------------------------------------- */


/* cn_sched_set_describe makes the function on top of L (popped) what
** cn_sched_log_error calls to describe an error value that is not a
** string: describe(e) -> string, never raising. */
void cn_sched_set_describe(lua_State *L) {
  cn_worker_t *w = cn_worker_self();
  luaL_unref(L, LUA_REGISTRYINDEX, w->describe_ref);
  w->describe_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}


/* describe pushes on L a description of the value on top of co. */
static const char *describe(cn_worker_t *w, lua_State *L, lua_State *co) {
  const char *s;
  if (lua_type(co, -1) == LUA_TSTRING) {
    lua_pushstring(L, lua_tostring(co, -1));
    return lua_tostring(L, -1);
  }
  if (w->describe_ref != LUA_NOREF) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, w->describe_ref);
    lua_pushvalue(co, -1);
    lua_xmove(co, L, 1);
    if (lua_pcall(L, 1, 1, 0) == 0 && (s = lua_tostring(L, -1)) != NULL)
      return s;
    lua_pop(L, 1);
  }
  lua_pushstring(L, lua_isnil(co, -1) ? "nil" : luaL_typename(co, -1));
  return lua_tostring(L, -1);
}


/* traceback pushes on L the traceback of co, which ended with msg. A
** task's frames outlive its error, but not where the top one stood when
** the VM itself raised (an arithmetic error, the task slice's hook): that
** frame's line is taken from msg ("src:line: ..."). */
static void traceback(lua_State *L, lua_State *co, const char *msg) {
  const char *all, *tb, *colon = strchr(msg, ':'), *end;
  size_t src;
  luaL_traceback(L, co, NULL, 0);
  all = lua_tostring(L, -1);
  if (colon == NULL || (tb = strchr(all, '\n')) == NULL || tb[1] != '\t')
    return;
  tb += 2; /* the top frame's line */
  src = (size_t)(colon - msg);
  end = colon + 1 + strspn(colon + 1, "0123456789");
  if (end == colon + 1 || *end != ':' || strncmp(tb, msg, src) != 0 ||
      strncmp(tb + src, ": in ", 5) != 0)
    return;
  lua_pushlstring(L, all, (size_t)(tb - all));
  lua_pushlstring(L, msg, (size_t)(end - msg)); /* src:line */
  lua_pushstring(L, tb + src);
  lua_concat(L, 3);
  lua_remove(L, -2);
}


/* cn_sched_log_error logs the error on top of ended task t's stack (as
** lua_resume left it: its frames are still there) with a traceback; where
** is added to the message. */
void cn_sched_log_error(cn_task_t *t, const char *where) {
  cn_worker_t *w = cn_worker_self();
  lua_State *co = t->co, *L = w->L;
  int top = lua_gettop(L);
  const char *msg = describe(w, L, co);
  traceback(L, co, msg);
  cn_log(CN_LOG_ERROR, "%s%s\n%s", msg, where, lua_tostring(L, -1));
  lua_settop(L, top);
}


static void task_end(cn_worker_t *w, cn_task_t *t, int rc) {
  lua_State *L = w->L;
  if (t->end != 0)
    ends[t->end - 1](t, rc);
  else if (rc != 0)
    cn_sched_log_error(t, "");
  index_remove(w, t);
  anchor(w, L, t, 0);
  task_free(w, t);
}


/* count_lag adds how long t waited since it became ready to the
** histogram. */
static void count_lag(cn_worker_t *w, const cn_task_t *t) {
  uint64_t us = w->clock > t->since ? (w->clock - t->since) / 1000 : 0;
  int b = 0;
  while (us > 0 && b < CN_LAG_BUCKETS - 1) {
    us >>= 1;
    b++;
  }
  w->stats.lag[b]++;
}


static void resume(cn_worker_t *w, cn_task_t *t) {
  int nargs = t->nargs, rc;
  count_lag(w, t);
  w->stats.resumes++;
  t->nargs = 0;
  t->state = CN_TASK_RUNNING;
  w->current = t;
  rc = lua_resume(t->co, nargs);
  w->current = NULL;
  if (w->after_run != NULL)
    w->after_run(w);
  if (rc != LUA_YIELD) {
    task_end(w, t, rc);
    return;
  }
  lua_settop(t->co, 0);
  if (t->state == CN_TASK_RUNNING) { /* a bare yield: the next turn */
    t->state = CN_TASK_READY;
    push(&w->yielded_head, &w->yielded_tail, t);
  }
}


/* run_cb is a loop turn. It runs after each poll and resumes ready tasks
** in the order they became ready: those that I/O and timers woke, and
** those that the tasks running now wake (a channel handover runs in the
** same turn, even a task that already ran in it). The turn ends when the
** queue is empty or after CN_TURN_NS; what is left runs from the next
** turn, after the loop has polled I/O and fired timers again. A task that
** yields without waiting (coronet.yield) waits for the next turn. */
static void run_cb(uv_check_t *h) {
  cn_worker_t *w = h->data;
  uint64_t end;
  unsigned n = 0;
  cn_task_t *t;
  w->clock = uv_hrtime();
  end = w->clock + CN_TURN_NS;
  w->in_turn = 1;
  w->stats.turns++;
  while ((t = w->runq_head) != NULL) {
    if ((w->runq_head = t->next) == NULL)
      w->runq_tail = NULL;
    w->runq_len--;
    resume(w, t);
    if (++n % RESUMES_PER_CLOCK == 0 && (w->clock = uv_hrtime()) >= end) {
      w->stats.long_turns++;
      break;
    }
  }
  w->in_turn = 0;
  while ((t = w->yielded_head) != NULL) {
    w->yielded_head = t->next;
    enqueue(t);
  }
  w->yielded_tail = NULL;
  if (w->runq_len == 0)
    uv_idle_stop(&w->idle);
}
