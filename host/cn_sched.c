/* cn_sched.c: the scheduler. A task is a Lua coroutine plus this record;
** a parked task waits for one wake (from an engine, another task or its
** timer); woken tasks join the run queue, which the worker resumes once
** per loop turn, in order. Lua binding in lcn_sched.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "cn.h"

enum { T_READY, T_RUNNING, T_PARKED };

struct cn_task_s {
  cn_waiter_t waiter; /* engines wake the task through it */
  lua_State *co;
  cn_worker_t *w;
  cn_task_t *next;        /* run queue */
  cn_task_t *prev, *lnext; /* every live task */
  uint8_t state;
  uint8_t timed_out; /* the last park ended by its deadline */
  uint8_t in_op;     /* a blocking operation spans several parks */
  uint8_t timer_on;
  int nargs; /* values on co's stack for the next resume */
  uint64_t op_start, deadline;
  uv_timer_t *timer; /* made on the first park with a deadline */
  cn_cancel_cb cancel;
  void *cancel_obj;
  cn_conn_t *conn; /* closed when the task ends; NULL once freed */
  uint64_t conn_id;          /* of conn, for the log even once it is gone */
  struct sockaddr_in6 peer;  /* likewise */
  cn_end_cb on_end;
  uint64_t id;
  unsigned turn; /* the loop turn in which it last ran */
  uint32_t parks; /* counts its parks: names the current one */
};

static void run_cb(uv_check_t *h);
static void idle_cb(uv_idle_t *h) { (void)h; }


static void enqueue(cn_task_t *t) {
  cn_worker_t *w = t->w;
  t->state = T_READY;
  t->next = NULL;
  if (w->runq_tail != NULL)
    w->runq_tail->next = t;
  else
    w->runq_head = t;
  w->runq_tail = t;
  if (w->runq_len++ == 0)
    uv_idle_start(&w->idle, idle_cb); /* keep the poll from blocking */
}


static void stop_timer(cn_task_t *t) {
  if (t->timer_on) {
    uv_timer_stop(t->timer);
    t->timer_on = 0;
  }
  t->deadline = 0;
}


/* ready moves a parked task to the run queue after dropping whatever it
** waited on. Returns 0 if t was not parked. */
static int ready(cn_task_t *t) {
  cn_cancel_cb cancel = t->cancel;
  if (t->state != T_PARKED)
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


static void timer_cb(uv_timer_t *h) {
  cn_task_t *t = h->data;
  t->timer_on = 0;
  if (t->state != T_PARKED)
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
  w->runq_len = 0;
  w->current = NULL;
  w->tasks = w->free_tasks = NULL;
  w->ntasks = 0;
  uv_check_init(&w->loop, &w->check);
  w->check.data = w;
  uv_check_start(&w->check, run_cb);
  uv_idle_init(&w->loop, &w->idle);
  lua_newtable(L);
  w->tasks_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}


static void free_handle(uv_handle_t *h) { free(h); }


static void free_task(cn_task_t *t) {
  if (t->timer != NULL)
    uv_close((uv_handle_t *)t->timer, free_handle);
  free(t);
}


/* cn_sched_close frees every task record; the Lua state is already gone. */
void cn_sched_close(cn_worker_t *w) {
  cn_task_t *t;
  while ((t = w->tasks) != NULL) {
    w->tasks = t->lnext;
    if (t->conn != NULL)
      t->conn->task = NULL; /* its close_cb runs after free_task */
    free_task(t);
  }
  while ((t = w->free_tasks) != NULL) {
    w->free_tasks = t->next;
    free_task(t);
  }
  uv_close((uv_handle_t *)&w->check, NULL);
  uv_close((uv_handle_t *)&w->idle, NULL);
}


static cn_task_t *task_alloc(cn_worker_t *w) {
  cn_task_t *t = w->free_tasks;
  static uint64_t next_id; /* per process; only read in logs */
  if (t != NULL) {
    w->free_tasks = t->next;
  } else {
    if ((t = malloc(sizeof *t)) == NULL)
      return NULL;
    t->timer = NULL;
  }
  t->waiter.wake = waiter_wake;
  t->w = w;
  t->next = NULL;
  t->timed_out = t->in_op = t->timer_on = 0;
  t->nargs = 0;
  t->op_start = t->deadline = 0;
  t->cancel = NULL;
  t->cancel_obj = NULL;
  t->conn = NULL;
  t->conn_id = 0;
  t->peer.sin6_family = 0;
  t->on_end = NULL;
  t->turn = w->turn - 1;
  t->parks = 0;
  t->id = __atomic_add_fetch(&next_id, 1, __ATOMIC_RELAXED);
  t->prev = NULL;
  t->lnext = w->tasks;
  if (w->tasks != NULL)
    w->tasks->prev = t;
  w->tasks = t;
  w->ntasks++;
  return t;
}


static void task_free(cn_task_t *t) {
  cn_worker_t *w = t->w;
  stop_timer(t);
  if (t->prev != NULL)
    t->prev->lnext = t->lnext;
  else
    w->tasks = t->lnext;
  if (t->lnext != NULL)
    t->lnext->prev = t->prev;
  w->ntasks--;
  t->next = w->free_tasks;
  w->free_tasks = t;
}


/* cn_sched_spawn makes a task of the function and nargs arguments on top
** of L (popping them) and queues it. Pushes the task's coroutine on L. */
cn_task_t *cn_sched_spawn(lua_State *L, int nargs) {
  cn_worker_t *w = cn_worker_self();
  cn_task_t *t = task_alloc(w);
  lua_State *co;
  if (t == NULL)
    luaL_error(L, "out of memory");
  co = lua_newthread(L);
  lua_insert(L, -(nargs + 2)); /* thread below function and arguments */
  lua_xmove(L, co, nargs + 1);
  t->co = co;
  t->nargs = nargs;
  lua_rawgeti(L, LUA_REGISTRYINDEX, w->tasks_ref);
  lua_pushvalue(L, -2);
  lua_pushlightuserdata(L, t);
  lua_rawset(L, -3); /* tasks[co] = t keeps co alive */
  lua_pop(L, 1);
  enqueue(t);
  return t;
}


/* cn_sched_set_conn makes c the task's connection: closed when t ends and
** named in its error log. */
void cn_sched_set_conn(cn_task_t *t, cn_conn_t *c) {
  t->conn = c;
  t->conn_id = c->id;
  memcpy(&t->peer, &c->peer, sizeof t->peer);
  c->task = t;
}


/* cn__sched_conn_gone tells t that its connection was freed (cn_conn.c's
** close_cb), so that t no longer touches it. */
void cn__sched_conn_gone(cn_task_t *t) { t->conn = NULL; }
void cn_sched_set_end(cn_task_t *t, cn_end_cb cb) { t->on_end = cb; }
lua_State *cn_sched_thread(cn_task_t *t) { return t->co; }
cn_waiter_t *cn_sched_waiter(cn_task_t *t) { return &t->waiter; }
uint64_t cn_sched_task_id(cn_task_t *t) { return t->id; }
uint64_t cn_sched_task_conn_id(cn_task_t *t) { return t->conn_id; }


/* cn_sched_parked_as returns the number of t's current park if t is
** parked, else 0: a wake meant for an earlier park can tell it is late. */
uint32_t cn_sched_parked_as(cn_task_t *t) {
  return t->state == T_PARKED ? t->parks : 0;
}


/* cn_sched_lookup returns the live task whose coroutine is at idx, or
** NULL. */
cn_task_t *cn_sched_lookup(lua_State *L, int idx) {
  cn_worker_t *w = cn_worker_self();
  cn_task_t *t;
  if (lua_type(L, idx) != LUA_TTHREAD)
    return NULL;
  lua_pushvalue(L, idx);
  lua_rawgeti(L, LUA_REGISTRYINDEX, w->tasks_ref);
  lua_insert(L, -2);
  lua_rawget(L, -2);
  t = lua_touserdata(L, -1);
  lua_pop(L, 2);
  return t;
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
    uv_update_time(&t->w->loop); /* the cached time lags behind this turn's
                                    work: timeouts would end early */
    t->op_start = uv_now(&t->w->loop);
  }
  return t->op_start;
}


void cn_sched_op_done(cn_task_t *t) {
  t->in_op = 0;
  t->timed_out = 0;
  stop_timer(t);
}


/* cn_sched_park marks running task t parked; the caller then yields (in
** Lua). It wakes on its waiter, on cn_sched_wake_with, or at deadline
** (loop ms, 0 = never). cancel(obj, waiter) runs when it wakes, to drop its
** registrations. A deadline set by an earlier park of the same operation
** keeps running. */
void cn_sched_park(cn_task_t *t, uint64_t deadline, cn_cancel_cb cancel,
                   void *obj) {
  uint64_t now = uv_now(&t->w->loop);
  t->state = T_PARKED;
  t->parks++;
  t->timed_out = 0;
  t->cancel = cancel;
  t->cancel_obj = obj;
  if (deadline == 0) {
    stop_timer(t);
    return;
  }
  if (t->timer_on && t->deadline == deadline)
    return;
  if (t->timer == NULL) {
    if ((t->timer = malloc(sizeof *t->timer)) == NULL)
      return; /* no memory: the deadline is lost, not the task */
    uv_timer_init(&t->w->loop, t->timer);
    t->timer->data = t;
  }
  t->deadline = deadline;
  t->timer_on = 1;
  uv_timer_start(t->timer, timer_cb, deadline > now ? deadline - now : 0, 0);
}


/* cn_sched_unpark undoes cn_sched_park for a task that could not yield
** after all; it stays the running task. */
void cn_sched_unpark(cn_task_t *t) {
  cn_cancel_cb cancel = t->cancel;
  t->cancel = NULL;
  if (cancel != NULL)
    cancel(t->cancel_obj, &t->waiter);
  t->state = T_RUNNING;
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
  if (t->state != T_PARKED)
    return 0;
  stop_timer(t);
  t->in_op = 0;
  lua_settop(t->co, 0);
  lua_pushboolean(t->co, 1);
  lua_xmove(from, t->co, n);
  t->nargs = n + 1;
  return ready(t);
}


/* -- Running ----------------------------------------------------------- */


static void task_error(cn_task_t *t) {
  lua_State *co = t->co;
  const char *msg = lua_tostring(co, -1);
  char where[CN_ADDRSTRLEN + 48] = "";
  if (msg == NULL)
    msg = lua_isnil(co, -1) ? "nil" : luaL_typename(co, -1);
  if (t->conn_id != 0) {
    char peer[CN_ADDRSTRLEN];
    if (t->peer.sin6_family != 0)
      cn_addr_format((struct sockaddr *)&t->peer, peer, sizeof peer);
    else if (t->conn == NULL || cn_conn_addr(t->conn, 0, peer, sizeof peer) < 0)
      strcpy(peer, "?");
    snprintf(where, sizeof where, " (conn %llu from %s)",
             (unsigned long long)t->conn_id, peer);
  }
  luaL_traceback(co, co, NULL, 0);
  cn_log(CN_LOG_ERROR, "%s%s\n%s", msg, where, lua_tostring(co, -1));
}


static void task_end(cn_task_t *t, int rc) {
  cn_worker_t *w = t->w;
  lua_State *L = w->L;
  if (t->on_end != NULL)
    t->on_end(t, rc);
  else if (rc != 0)
    task_error(t);
  if (t->conn != NULL) {
    t->conn->task = NULL; /* t is reused before c's close_cb runs */
    cn_conn_close(t->conn);
    t->conn = NULL;
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, w->tasks_ref);
  lua_pushthread(t->co);
  lua_xmove(t->co, L, 1);
  lua_pushnil(L);
  lua_rawset(L, -3); /* tasks[co] = nil */
  lua_pop(L, 1);
  task_free(t);
}


static void resume(cn_task_t *t) {
  cn_worker_t *w = t->w;
  int nargs = t->nargs, rc;
  t->nargs = 0;
  t->state = T_RUNNING;
  w->current = t;
  rc = lua_resume(t->co, nargs);
  w->current = NULL;
  cn__conn_flush_dirty(w);
  if (rc != LUA_YIELD) {
    task_end(t, rc);
    return;
  }
  lua_settop(t->co, 0);
  if (t->state == T_RUNNING)
    enqueue(t); /* a bare coroutine.yield(): let the others run first */
}


/* run_cb resumes ready tasks in order, each at most once per loop turn:
** a task woken by one that runs now runs in this turn too, unless it ran
** already; then it waits for the next turn, after polling. */
static void run_cb(uv_check_t *h) {
  cn_worker_t *w = h->data;
  cn_task_t *later = NULL, *later_last = NULL, *t;
  size_t nlater = 0;
  unsigned turn = ++w->turn;
  while ((t = w->runq_head) != NULL) {
    w->runq_head = t->next;
    if (w->runq_head == NULL)
      w->runq_tail = NULL;
    w->runq_len--;
    if (t->turn != turn) {
      t->turn = turn;
      resume(t); /* may queue more tasks behind runq_head */
      continue;
    }
    t->next = NULL; /* ran this turn already: next turn */
    if (later_last != NULL)
      later_last->next = t;
    else
      later = t;
    later_last = t;
    nlater++;
  }
  w->runq_head = later;
  w->runq_tail = later_last;
  w->runq_len = nlater;
  if (nlater == 0)
    uv_idle_stop(&w->idle);
}
