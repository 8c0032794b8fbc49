/* lcn_admin.c: what coronet.admin (lua/coronet/admin.lua) reads of the
** engines for coronet.tasks(), coronet.stats(), /metrics and /tasks: this
** worker's tasks with their connections, its counters, and the process's
** bus, groups, shared dictionaries and file descriptors. Reads only; the
** engines keep the counts (cn_sched.c, cn_conn.c, cn_group.c, ...). */
#include <dirent.h>
#include <lauxlib.h>
#include <stdio.h>
#include <lua.h>
#include <sys/resource.h>

#include "cn.h"
#include "lcn.h"


static void set_string(lua_State *L, const char *k, const char *v) {
  lua_pushstring(L, v);
  lua_setfield(L, -2, k);
}


/* counters() -> this worker's connection counters: {opened=, accepted=,
** closed=, bytes_in=, bytes_out=, reloads=, reloads_failed=, lag_sum=}
** (lag_sum: seconds, the sum of the loop lag histogram's samples). */
static int admin_counters(lua_State *L) {
  cn_worker_t *w = cn_worker_self();
  const cn_counters_t *n = &w->counters;
  lua_createtable(L, 0, 8);
  lcn_set_number(L, "opened", (double)n->opened);
  lcn_set_number(L, "accepted", (double)n->accepted);
  lcn_set_number(L, "closed", (double)n->closed);
  lcn_set_number(L, "bytes_in", (double)n->bytes_in);
  lcn_set_number(L, "bytes_out", (double)n->bytes_out);
  lcn_set_number(L, "reloads", (double)n->reloads);
  lcn_set_number(L, "reloads_failed", (double)n->reloads_failed);
  lcn_set_number(L, "lag_sum", (double)w->stats.lag_ns / 1e9);
  return 1;
}


/* conn_index pushes a table: connection id -> the connection (a light
** userdata), for every open connection of w. */
static void conn_index(lua_State *L, cn_worker_t *w) {
  cn_conn_t *c;
  lua_createtable(L, 0, (int)w->nconns);
  for (c = w->conns; c != NULL; c = c->next) {
    lua_pushnumber(L, (double)c->id);
    lua_pushlightuserdata(L, c);
    lua_rawset(L, -3);
  }
}


/* set_conn adds what a task's connection c holds to the table on top. */
static void set_conn(lua_State *L, cn_conn_t *c) {
  char peer[CN_ADDRSTRLEN];
  peer[0] = '\0';
  if (c->peer.sin6_family != 0)
    cn_addr_format((const struct sockaddr *)&c->peer, peer, sizeof peer);
  else if (cn_conn_addr(c, 0, peer, sizeof peer) < 0)
    peer[0] = '\0';
  if (peer[0] != '\0')
    set_string(L, "peer", peer);
  lcn_set_number(L, "buffered_in", (double)cn_buf_len(&c->in));
  lcn_set_number(L, "buffered_out", (double)cn_buf_len(&c->out));
}


/* tasks() -> one table per live task of this worker: {id=, worker=,
** kind=, state=, wait=, since=, deadline=, conn=, peer=, buffered_in=,
** buffered_out=, co=}: kind "main", "handler" or "spawned"; state
** "ready", "running" or "parked"; wait what its park waits for; since the
** uv_hrtime() seconds at which it parked or became ready; deadline the
** seconds left before its park times out (if it has one); conn the id of
** the connection it serves and, while that is open, its peer and the
** bytes waiting in its read and write chains; co its coroutine. */
typedef struct {
  lua_State *L;
  cn_worker_t *w;
  uint64_t loop_now;
  int n;
} rows_t;


/* task_row appends task t's row to the list on top of r->L, above the
** connection index (cn_sched_walk's callback). */
static void task_row(cn_task_t *t, void *arg) {
  rows_t *r = arg;
  lua_State *L = r->L;
  cn_worker_t *w = r->w;
  uint64_t loop_now = r->loop_now;
  cn_task_info_t info;
  uint64_t conn = cn_sched_task_conn_id(t);
  lcn_push_task(L, t, &info, 7);
  lcn_set_number(L, "worker", w->id);
  if (info.deadline != 0)
    lcn_set_number(L, "deadline",
               ((double)info.deadline - (double)loop_now) / 1e3);
  if (conn != 0) {
    lcn_set_number(L, "conn", (double)conn);
    cn_conn_t *c;
    lua_pushnumber(L, (double)conn);
    lua_rawget(L, -4); /* the connection index */
    c = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (c != NULL)
      set_conn(L, c);
  }
  lua_pushthread(info.co);
  lua_xmove(info.co, L, 1);
  lua_setfield(L, -2, "co");
  lua_rawseti(L, -2, ++r->n);
}


static int admin_tasks(lua_State *L) {
  cn_worker_t *w = cn_worker_self();
  rows_t r;
  r.L = L;
  r.w = w;
  r.loop_now = uv_now(&w->loop);
  r.n = 0;
  conn_index(L, w);
  lua_createtable(L, (int)w->ntasks, 0);
  cn_sched_walk(w, task_row, &r);
  return 1;
}


/* open_fds counts the process's open file descriptors, or -1. */
static int open_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  struct dirent *e;
  int n = 0;
  if (d == NULL)
    return -1;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.')
      n++;
  closedir(d);
  return n - 1; /* the directory's own */
}


/* The shared dictionaries are gathered without Lua (cn_shared_each holds
** a lock that a Lua error must not leave held): counted first, then
** copied into a userdata of that many. */
typedef struct {
  size_t used, capacity, count;
  char name[128];
} dict_t;

typedef struct {
  dict_t *v; /* NULL: only count */
  size_t n, max;
} dicts_t;


static void add_dict(void *ud, const char *name, size_t used,
                     size_t capacity, size_t count) {
  dicts_t *ds = ud;
  dict_t *d;
  if (ds->v == NULL) {
    ds->n++;
    return;
  }
  if (ds->n == ds->max)
    return; /* made since the count */
  d = &ds->v[ds->n++];
  d->used = used;
  d->capacity = capacity;
  d->count = count;
  snprintf(d->name, sizeof d->name, "%s", name);
}


static void push_dicts(lua_State *L) {
  dicts_t ds = {NULL, 0, 0};
  size_t i;
  cn_shared_each(add_dict, &ds);
  ds.max = ds.n;
  ds.n = 0;
  ds.v = lua_newuserdata(L, ds.max * sizeof *ds.v + 1);
  cn_shared_each(add_dict, &ds);
  lua_createtable(L, (int)ds.n, 0);
  for (i = 0; i < ds.n; i++) {
    lua_createtable(L, 0, 4);
    set_string(L, "name", ds.v[i].name);
    lcn_set_number(L, "used", (double)ds.v[i].used);
    lcn_set_number(L, "capacity", (double)ds.v[i].capacity);
    lcn_set_number(L, "count", (double)ds.v[i].count);
    lua_rawseti(L, -2, (int)i + 1);
  }
  lua_replace(L, -2); /* the userdata */
}


/* process() -> the whole process's {pid=, fds=, max_fds=, rss=, heap =
** {trims=, released=, in_use=}, bus = {published=, delivered=, dropped=,
** topics=}, groups = {groups=, members=, dropped=}, shared = {{name=,
** used=, capacity=, count=}, ...}}; fds is -1 where /proc/self/fd cannot
** be read, rss 0 where /proc/self/statm cannot, heap.in_use 0 where the
** C heap cannot tell. */
static int admin_process(lua_State *L) {
  cn_bus_stats_t bus;
  cn_group_counts_t groups;
  cn_heap_stats_t heap;
  struct rlimit rl;
  lua_createtable(L, 0, 8);
  lcn_set_number(L, "pid", (double)uv_os_getpid());
  lcn_set_number(L, "fds", open_fds());
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
    lcn_set_number(L, "max_fds", (double)rl.rlim_cur);
  cn_heap_stats(&heap);
  lcn_set_number(L, "rss", (double)heap.rss);
  lua_createtable(L, 0, 3);
  lcn_set_number(L, "trims", (double)heap.trims);
  lcn_set_number(L, "released", (double)heap.released);
  lcn_set_number(L, "in_use", (double)heap.in_use);
  lua_setfield(L, -2, "heap");
  cn_bus_stats(&bus);
  lua_createtable(L, 0, 4);
  lcn_set_number(L, "published", (double)bus.published);
  lcn_set_number(L, "delivered", (double)bus.delivered);
  lcn_set_number(L, "dropped", (double)bus.dropped);
  lcn_set_number(L, "topics", (double)bus.topics);
  lua_setfield(L, -2, "bus");
  cn_group_counts(&groups);
  lua_createtable(L, 0, 3);
  lcn_set_number(L, "groups", (double)groups.groups);
  lcn_set_number(L, "members", (double)groups.members);
  lcn_set_number(L, "dropped", (double)groups.dropped);
  lua_setfield(L, -2, "groups");
  push_dicts(L);
  lua_setfield(L, -2, "shared");
  return 1;
}


static const luaL_Reg funcs[] = {{"counters", admin_counters},
                                 {"tasks", admin_tasks},
                                 {"process", admin_process},
                                 {NULL, NULL}};


int luaopen_coronet_admin(lua_State *L) {
  return lcn_lib(L, funcs, NULL, NULL);
}
