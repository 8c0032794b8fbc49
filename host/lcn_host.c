/* lcn_host.c: the Lua side of a worker: the state with coronet's modules,
** the script's main chunk run as the first task, the handler given to each
** accepted connection, and helpers the other bindings share (lcn.h). */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "cn.h"
#include "lcn.h"


/* lcn_fail pushes nil and err's message; returns 2. */
int lcn_fail(lua_State *L, int err) {
  lua_pushnil(L);
  lua_pushstring(L, cn_strerror(err));
  return 2;
}


/* lcn_ok pushes true when rc is not negative, else nil and rc's message;
** returns how many values it pushed. */
int lcn_ok(lua_State *L, int rc) {
  if (rc < 0)
    return lcn_fail(L, rc);
  lua_pushboolean(L, 1);
  return 1;
}


/* lcn_argerror raises "bad argument #narg to 'fname' (msg)" from a binding
** that a Lua function of coronet wraps (a method made by coronet.blocking,
** or a module function that calls it, not as a tail call), which LuaJIT
** would name after the wrapper's local: fname names the Lua function (a
** "conn:" or "fs." before it is dropped), narg counts the arguments it
** takes (a method's after self), and the position is that of the code
** that called it, not the wrapper's. */
int lcn_argerror(lua_State *L, int narg, const char *fname, const char *msg) {
  const char *dot = strpbrk(fname, ":.");
  luaL_where(L, 2);
  lua_pushfstring(L, "bad argument #%d to '%s' (%s)", narg,
                  dot != NULL ? dot + 1 : fname, msg);
  lua_concat(L, 2);
  return lua_error(L);
}


/* lcn_option returns the index in names (NULL-terminated) of the string
** at idx, or of def when idx is nil or none; anything else raises as
** lcn_argerror(L, narg, fname, ...) does. */
int lcn_option(lua_State *L, int idx, const char *def,
               const char *const names[], int narg, const char *fname) {
  const char *s = lua_isnoneornil(L, idx) ? def : lua_tostring(L, idx);
  int i;
  if (s == NULL)
    return lcn_argerror(L, narg, fname,
                        lua_pushfstring(L, "string expected, got %s",
                                        luaL_typename(L, idx)));
  for (i = 0; names[i] != NULL; i++)
    if (strcmp(s, names[i]) == 0)
      return i;
  return lcn_argerror(L, narg, fname,
                      lua_pushfstring(L, "invalid option '%s'", s));
}


/* lcn_open_conn returns the connection at idx (raising if idx holds none),
** or NULL after pushing nil, "closed" when this side has closed it. */
cn_conn_t *lcn_open_conn(lua_State *L, int idx) {
  cn_conn_t *c = lcn_to_conn(L, idx);
  if (c == NULL || (c->flags & CN_CONN_CLOSED)) {
    lcn_fail(L, CN_ECLOSED);
    return NULL;
  }
  return c;
}


/* lcn_reader_conn is lcn_open_conn for a read: NULL after pushing nil,
** "busy reading" also when another task reads the connection or a pump
** takes its input. */
cn_conn_t *lcn_reader_conn(lua_State *L, int idx) {
  cn_conn_t *c = lcn_open_conn(L, idx);
  if (c != NULL && cn_conn_reading(c)) {
    lcn_fail(L, CN_EBUSYR);
    return NULL;
  }
  return c;
}


/* lcn_op_done ends the running task's blocking operation, if any: its
** deadline timer stops. Every blocking call does it when it returns a
** result rather than parking. */
void lcn_op_done(void) {
  cn_worker_t *w = cn_worker_self();
  if (w->current != NULL)
    cn_sched_op_done(w->current);
}


/* lcn_class makes the metatable tname of a kind of userdata, with __gc and
** __tostring (either may be NULL) and, when methods is not NULL, __index a
** table of them. Pushes the metatable and the methods table (or nil). */
void lcn_class(lua_State *L, const char *tname, const luaL_Reg *methods,
               lua_CFunction gc, lua_CFunction tostring) {
  luaL_newmetatable(L, tname);
  if (gc != NULL) {
    lua_pushcfunction(L, gc);
    lua_setfield(L, -2, "__gc");
  }
  if (tostring != NULL) {
    lua_pushcfunction(L, tostring);
    lua_setfield(L, -2, "__tostring");
  }
  if (methods == NULL) {
    lua_pushnil(L);
    return;
  }
  lua_newtable(L);
  luaL_register(L, NULL, methods);
  lua_pushvalue(L, -1);
  lua_setfield(L, -3, "__index");
}


/* lcn_lib is the whole of most luaopen_ functions: it makes the metatable
** tname (unless NULL) of a kind of userdata without methods, with __gc gc
** (unless NULL), and pushes a new table of funcs, the module; returns 1. */
int lcn_lib(lua_State *L, const luaL_Reg *funcs, const char *tname,
            lua_CFunction gc) {
  if (tname != NULL) {
    lcn_class(L, tname, NULL, gc, NULL);
    lua_pop(L, 2);
  }
  lua_newtable(L);
  luaL_register(L, NULL, funcs);
  return 1;
}


/* lcn_data_len returns the byte length of the string, or table of strings
** (a writev's fragments), at idx; raises on any other fragment (for the
** write methods: see lcn_argerror). */
size_t lcn_data_len(lua_State *L, int idx) {
  size_t total = 0, len, i, n;
  if (lua_type(L, idx) != LUA_TTABLE) {
    luaL_checklstring(L, idx, &total);
    return total;
  }
  n = lua_objlen(L, idx);
  for (i = 1; i <= n; i++) {
    lua_rawgeti(L, idx, (int)i);
    if (lua_tolstring(L, -1, &len) == NULL)
      lcn_argerror(L, 1, "write", lua_pushfstring(L, "fragment %d is a %s",
                                                  (int)i,
                                                  luaL_typename(L, -1)));
    total += len;
    lua_pop(L, 1);
  }
  return total;
}


/* lcn_data_spans calls fn(ud, p, k) for each contiguous piece of bytes
** [off, off+n) of the string or fragment table at idx, stopping at the
** first negative return, which it returns; else 0. */
int lcn_data_spans(lua_State *L, int idx, size_t off, size_t n,
                   int (*fn)(void *ud, const char *p, size_t k), void *ud) {
  size_t i, len;
  const char *s;
  int err;
  if (lua_type(L, idx) != LUA_TTABLE) {
    s = lua_tolstring(L, idx, &len);
    return n > 0 ? fn(ud, s + off, n) : 0;
  }
  for (i = 1; n > 0; i++) {
    lua_rawgeti(L, idx, (int)i);
    s = lua_tolstring(L, -1, &len);
    lua_pop(L, 1); /* the table keeps s alive */
    if (off >= len) {
      off -= len;
      continue;
    }
    len -= off;
    if (len > n)
      len = n;
    if ((err = fn(ud, s + off, len)) < 0)
      return err;
    n -= len;
    off = 0;
  }
  return 0;
}


/* lcn_deadline_in returns the first loop time (ms) at least seconds from
** now. The loop's time is uv_hrtime() in whole ms, rounded down: rounding
** the deadline up from the precise clock keeps it from firing early, and
** late by less than a millisecond. */
uint64_t lcn_deadline_in(lua_State *L, double seconds) {
  uint64_t now = uv_hrtime();
  (void)L;
  if (!(seconds > 0))
    return now / 1000000;
  if (seconds > 1e9)
    seconds = 1e9;
  return (now + (uint64_t)ceil(seconds * 1e9) + 999999) / 1000000;
}


/* lcn_deadline_at returns the loop time (ms) of t, a time in now() units. */
uint64_t lcn_deadline_at(lua_State *L, double t) {
  return lcn_deadline_in(L, t - (double)uv_hrtime() / 1e9);
}


/* -- The host module (coronet.c.host) ---------------------------------- */


/* log(level, message): level is "error", "warn", "info" or "debug". */
static int host_log(lua_State *L) {
  int level = cn_log_parse_level(luaL_checkstring(L, 1));
  const char *msg = luaL_checkstring(L, 2);
  luaL_argcheck(L, level >= 0, 1, "expected error, warn, info or debug");
  cn_log(level, "%s", msg);
  return 0;
}


/* log_enabled(level) -> bool */
static int host_log_enabled(lua_State *L) {
  int level = cn_log_parse_level(luaL_checkstring(L, 1));
  lua_pushboolean(L, level >= 0 && level <= cn_log_level);
  return 1;
}


/* lcn_set_number sets field k of the table on top of L to the number v. */
void lcn_set_number(lua_State *L, const char *k, double v) {
  lua_pushnumber(L, v);
  lua_setfield(L, -2, k);
}


/* info() -> {script=, worker=, workers=, run=, read_hwm=, write_hwm=,
** task_slice=, lua_memory=, keepalive=, admin=} */
static int host_info(lua_State *L) {
  cn_worker_t *w = cn_worker_self();
  const cn_config_t *cfg = w->cfg;
  lua_createtable(L, 0, 9);
  lua_pushstring(L, cfg->script);
  lua_setfield(L, -2, "script");
  lua_pushboolean(L, cfg->run);
  lua_setfield(L, -2, "run");
  lcn_set_number(L, "worker", w->id);
  lcn_set_number(L, "workers", cfg->workers);
  lcn_set_number(L, "read_hwm", (double)cfg->read_hwm);
  lcn_set_number(L, "write_hwm", (double)cfg->write_hwm);
  lcn_set_number(L, "task_slice", cfg->task_slice);
  lcn_set_number(L, "lua_memory", (double)cfg->lua_memory);
  lcn_set_number(L, "keepalive", cfg->keepalive);
  lua_pushstring(L, cfg->admin);
  lua_setfield(L, -2, "admin");
  return 1;
}


/* loop_stats() -> {lag_max=, lag_last=, busy=, stalls=, stopped=,
** lua_bytes=, lua_peak=} of this worker: the longest and the last turn
** of its loop and the time spent in turns (seconds), turns longer than
** the task slice, tasks the slice stopped, and its Lua heap (bytes). */
static int host_loop_stats(lua_State *L) {
  cn_worker_t *w = cn_worker_self();
  const cn_loopwatch_t *lw = &w->watch;
  lua_createtable(L, 0, 7);
  lcn_set_number(L, "lag_max", (double)lw->lag_max_ns / 1e9);
  lcn_set_number(L, "lag_last", (double)lw->lag_last_ns / 1e9);
  lcn_set_number(L, "busy", (double)lw->busy_ns / 1e9);
  lcn_set_number(L, "stalls", (double)__atomic_load_n(&lw->stalls, 0));
  lcn_set_number(L, "stopped", (double)lw->stopped);
  lcn_set_number(L, "lua_bytes", (double)w->lua_bytes);
  lcn_set_number(L, "lua_peak", (double)w->lua_peak);
  return 1;
}


/* stamp(path) -> string that changes when the file changes, or nil. */
static int host_stamp(lua_State *L) {
  struct stat st;
  if (stat(luaL_checkstring(L, 1), &st) < 0)
    return 0;
  lua_pushfstring(L, "%d.%d:%d:%d", (int)st.st_mtim.tv_sec,
                  (int)st.st_mtim.tv_nsec, (int)st.st_size, (int)st.st_ino);
  return 1;
}


static const luaL_Reg host_funcs[] = {{"log", host_log},
                                      {"stamp", host_stamp},
                                      {"log_enabled", host_log_enabled},
                                      {"info", host_info},
                                      {"loop_stats", host_loop_stats},
                                      {NULL, NULL}};


int luaopen_coronet_host(lua_State *L) {
  lua_newtable(L);
  luaL_register(L, NULL, host_funcs);
  return 1;
}


/* -- Setting up the state ---------------------------------------------- */

/* What the host keeps per worker, besides cn_worker_t. */
typedef struct {
  int life_ref;     /* registry: coronet.lifecycle */
  int describe_ref; /* registry: coronet._describe */
  int reload_deferred; /* a reload was asked while the main chunk ran */
  char note[256];   /* what a reload loads again, for its log line */
} host_t;

static __thread host_t host;


static void preload(lua_State *L, const char *name, lua_CFunction f) {
  lua_getfield(L, LUA_GLOBALSINDEX, "package");
  lua_getfield(L, -1, "preload");
  lua_pushcfunction(L, f);
  lua_setfield(L, -2, name);
  lua_pop(L, 2);
}


/* set_path puts the script's directory, then coronet's modules, before
** Lua's default package.path. */
static void set_path(lua_State *L, const cn_config_t *cfg) {
  const char *slash = strrchr(cfg->script, '/');
  int dlen = slash != NULL ? (int)(slash - cfg->script) : 1;
  const char *dir = slash != NULL ? cfg->script : ".";
  lua_getfield(L, LUA_GLOBALSINDEX, "package");
  lua_getfield(L, -1, "path");
  lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;", cfg->moddir, cfg->moddir);
  lua_pushlstring(L, dir, (size_t)dlen);
  lua_pushliteral(L, "/?.lua;");
  lua_pushlstring(L, dir, (size_t)dlen);
  lua_pushliteral(L, "/?/init.lua;");
  lua_pushvalue(L, -6);
  lua_concat(L, 6);
  lua_setfield(L, -3, "path");
  lua_pop(L, 2);
}


/* set_args makes the global arg table: arg[0] the script, arg[1..] its
** arguments. */
static void set_args(lua_State *L, const cn_config_t *cfg) {
  int i;
  lua_createtable(L, cfg->argc, 1);
  lua_pushstring(L, cfg->script);
  lua_rawseti(L, -2, 0);
  for (i = 0; i < cfg->argc; i++) {
    lua_pushstring(L, cfg->argv[i]);
    lua_rawseti(L, -2, i + 1);
  }
  lua_setfield(L, LUA_GLOBALSINDEX, "arg");
}


static int require_boot(lua_State *L) {
  lua_getfield(L, LUA_GLOBALSINDEX, "require");
  lua_pushliteral(L, "coronet.boot");
  lua_call(L, 1, 0);
  return 0;
}


/* ref_loaded makes a registry ref of package.loaded[mod][field] (or of
** the module itself when field is NULL). */
static int ref_loaded(lua_State *L, const char *mod, const char *field) {
  int ref;
  lua_getfield(L, LUA_REGISTRYINDEX, "_LOADED");
  lua_getfield(L, -1, mod);
  if (field != NULL)
    lua_getfield(L, -1, field);
  ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_settop(L, 0);
  return ref;
}


/* describe pushes on L a one-line description of the error value on top
** of co (which may be dead): the string itself, or what coronet._describe
** makes of any other value (a table's fields, a __tostring that fails). */
static const char *describe(cn_worker_t *w, lua_State *co) {
  lua_State *L = w->L;
  const char *s;
  if (lua_type(co, -1) == LUA_TSTRING) {
    lua_pushstring(L, lua_tostring(co, -1));
    return lua_tostring(L, -1);
  }
  lua_rawgeti(L, LUA_REGISTRYINDEX, host.describe_ref);
  lua_pushvalue(co, -1);
  lua_xmove(co, L, 1);
  if (lua_pcall(L, 1, 1, 0) == 0 && (s = lua_tostring(L, -1)) != NULL)
    return s;
  lua_pop(L, 1);
  return lua_pushfstring(L, "(error object is a %s value)",
                         luaL_typename(co, -1));
}


/* one_line copies msg to buf with its newlines folded into spaces. */
static void one_line(char *buf, size_t size, const char *msg) {
  size_t i, j;
  for (i = j = 0; msg[i] != '\0' && j + 1 < size; i++) {
    if (msg[i] == '\t' && j > 0 && buf[j - 1] == ' ')
      continue;
    buf[j++] = msg[i] == '\n' || msg[i] == '\t' ? ' ' : msg[i];
  }
  buf[j] = '\0';
}


/* -- Versions of the script ---------------------------------------------- */

/* Each run of the script's main chunk (at start and at each reload) is a
** version; coronet.lifecycle (lua/coronet/lifecycle.lua) keeps which task
** belongs to which, and closes coronet.superseded() channels. */


/* life_call calls coronet.lifecycle[name] with the nargs values on top of
** L, leaving nres results (nils if it failed: logged). */
static void life_call(lua_State *L, const char *name, int nargs, int nres) {
  lua_rawgeti(L, LUA_REGISTRYINDEX, host.life_ref);
  lua_getfield(L, -1, name);
  lua_replace(L, -2);
  lua_insert(L, -(nargs + 1));
  if (lua_pcall(L, nargs, nres, 0) != 0) {
    cn_log(CN_LOG_WARN, "lifecycle.%s: %s", name, lua_tostring(L, -1));
    lua_pop(L, 1);
    while (nres-- > 0)
      lua_pushnil(L);
  }
}


/* spawn_main starts the script's main chunk, loaded on top of L, as the
** first task of a new version; on_end receives its end. */
static cn_task_t *spawn_main(cn_worker_t *w, cn_end_cb on_end) {
  lua_State *L = w->L;
  cn_task_t *t;
  int i;
  for (i = 0; i < w->cfg->argc; i++)
    lua_pushstring(L, w->cfg->argv[i]);
  t = cn_sched_spawn(L, w->cfg->argc); /* pushes its coroutine */
  cn_sched_set_kind(t, CN_TASK_MAIN);
  life_call(L, "begin", 1, 0);
  cn_sched_set_end(t, on_end);
  return t;
}


/* end_version tells coronet.lifecycle that the main chunk run by co ended,
** ok if it gave its handler (on co's stack at 1): the version then takes
** over (older ones are superseded; the listeners it asked for are handed
** over to it), else it is dropped with its listeners. Returns whether it
** took over; if not, why is in msg (a listen of it that failed), or "". */
static int end_version(cn_worker_t *w, lua_State *co, int ok, char *msg,
                       size_t size) {
  lua_State *L = w->L;
  int top = lua_gettop(L), version;
  lua_pushthread(co);
  lua_xmove(co, L, 1);
  lua_pushboolean(L, ok);
  if (ok) {
    lua_pushvalue(co, 1);
    lua_xmove(co, L, 1);
  } else {
    lua_pushnil(L);
  }
  life_call(L, "finish", 3, 3);
  version = (int)lua_tointeger(L, -3);
  ok = lua_toboolean(L, -2);
  one_line(msg, size, !ok && lua_isstring(L, -1) ? lua_tostring(L, -1) : "");
  lcn_net_version_end(L, version, ok);
  lua_settop(L, top);
  return ok;
}


/* bad_handler says, in msg, why the ended main chunk of co gave no handler
** function; returns 0 when it did. */
static int bad_handler(cn_worker_t *w, lua_State *co, char *msg,
                       size_t size) {
  if (lua_gettop(co) >= 1 && lua_isfunction(co, 1))
    return 0;
  snprintf(msg, size, "%s: the script must return a handler function (got "
           "%s)", w->cfg->script,
           lua_gettop(co) < 1 ? "nothing" : luaL_typename(co, 1));
  return 1;
}


/* take_handler makes the function on co's stack at 1 the handler for new
** connections. */
static void take_handler(cn_worker_t *w, lua_State *co) {
  lua_State *L = w->L;
  lua_pushvalue(co, 1);
  lua_xmove(co, L, 1);
  luaL_unref(L, LUA_REGISTRYINDEX, w->handler_ref);
  w->handler_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}


static void host_reload(cn_worker_t *w);


/* main_end receives the end of the script's main chunk at start. */
static void main_end(cn_task_t *t, int status) {
  cn_worker_t *w = cn_worker_self();
  lua_State *L = w->L, *co = cn_sched_thread(t);
  char msg[1024];
  int ok;
  if (status != 0) {
    luaL_traceback(L, co, describe(w, co), 0);
    cn_log(CN_LOG_ERROR, "%s", lua_tostring(L, -1));
    lua_pop(L, 2);
    if (w->cfg->run)
      cn_worker_exit(w, 1);
    else
      cn__worker_started(w, 0);
    return;
  }
  if (w->cfg->run) {
    cn_worker_exit(w, 0);
    return;
  }
  ok = !bad_handler(w, co, msg, sizeof msg) &&
       end_version(w, co, 1, msg, sizeof msg);
  if (ok)
    take_handler(w, co);
  else
    cn_log(CN_LOG_ERROR, "%s", msg);
  cn__worker_started(w, ok);
  if (ok && host.reload_deferred && !w->stopping) {
    host.reload_deferred = 0;
    host_reload(w); /* the file may have changed since it was read */
  }
}


/* -- Reloading --------------------------------------------------------- */


/* reload_end receives the end of a reloaded main chunk. */
static void reload_end(cn_task_t *t, int status) {
  cn_worker_t *w = cn_worker_self();
  lua_State *co = cn_sched_thread(t);
  char msg[1024], why[1024];
  if (t != w->reload_task) { /* a newer reload replaced it */
    end_version(w, co, 0, why, sizeof why);
    return;
  }
  w->reload_task = NULL;
  if (status != 0) {
    one_line(msg, sizeof msg, describe(w, co));
    lua_pop(w->L, 1);
    end_version(w, co, 0, why, sizeof why);
  } else if (bad_handler(w, co, msg, sizeof msg)) {
    end_version(w, co, 0, why, sizeof why);
  } else if (end_version(w, co, 1, msg, sizeof msg)) {
    take_handler(w, co);
    cn_worker_reloaded(w, 1, host.note);
    return;
  }
  cn_worker_reloaded(w, 0, msg);
}


/* before_reload has coronet.boot forget the modules whose file changed;
** host.note names them for the log. */
static void before_reload(lua_State *L) {
  host.note[0] = '\0';
  lua_getfield(L, LUA_REGISTRYINDEX, "_LOADED");
  lua_getfield(L, -1, "coronet.boot");
  lua_getfield(L, -1, "before_reload");
  if (lua_pcall(L, 0, 1, 0) != 0)
    cn_log(CN_LOG_WARN, "before_reload: %s", lua_tostring(L, -1));
  else if (lua_isstring(L, -1))
    snprintf(host.note, sizeof host.note, "%s", lua_tostring(L, -1));
  lua_settop(L, 0);
}


/* host_reload compiles and runs the script again as a task: a new version.
** New connections get the handler it returns; open ones keep theirs. If
** it fails, the old version stays whole; cn_worker_reloaded says how it
** went. */
static void host_reload(cn_worker_t *w) {
  lua_State *L = w->L;
  char msg[1024];
  if (w->handler_ref == LUA_NOREF) {
    host.reload_deferred = 1; /* still starting: main_end reloads */
    return;
  }
  w->reload_t0 = uv_hrtime();
  before_reload(L);
  if (luaL_loadfile(L, w->cfg->script) != 0) {
    one_line(msg, sizeof msg, lua_tostring(L, -1));
    lua_pop(L, 1);
    cn_worker_reloaded(w, 0, msg);
    return;
  }
  w->reload_task = spawn_main(w, reload_end);
}


/* lcn_serve_conn starts the handler at registry ref handler for new
** connection c, as a task that owns c (it closes c when it ends). The task
** runs coronet's handler trampoline, which logs an error with its
** traceback and the connection's id and peer. */
void lcn_serve_conn(cn_worker_t *w, int handler, cn_conn_t *c) {
  lua_State *L = w->L;
  cn_task_t *t;
  lua_rawgeti(L, LUA_REGISTRYINDEX, w->trampoline_ref);
  lua_rawgeti(L, LUA_REGISTRYINDEX, handler);
  lcn_push_conn(L, c);
  t = cn_sched_spawn(L, 2);
  lua_pop(L, 1);
  cn_sched_set_kind(t, CN_TASK_HANDLER);
  lcn_conn_own(t, c);
  cn_conn_start(c);
  if (cn_log_level >= CN_LOG_DEBUG) {
    char peer[CN_ADDRSTRLEN] = "?";
    cn_conn_addr(c, 0, peer, sizeof peer);
    cn_log(CN_LOG_DEBUG, "conn %llu from %s", (unsigned long long)c->id,
           peer);
  }
}



/* -- The runaway and memory guards -------------------------------------- */

#define LATE_NS 50000000 /* the hook came this late: the task was not in Lua */


/* slice_hook runs in the worker once the control thread found its turn
** past the task slice (host_stalled). Right away means the task runs
** interpreted Lua: it is stopped with an error (its traceback shows where
** it spun). Late means it was in a blocking C call that has now returned:
** that is logged, once, with where it was. */
static void slice_hook(lua_State *L, lua_Debug *ar) {
  cn_worker_t *w = cn_worker_self();
  cn_loopwatch_t *lw = &w->watch;
  uint64_t since = __atomic_load_n(&lw->busy_since, __ATOMIC_RELAXED);
  uint64_t armed_at = __atomic_load_n(&lw->armed_at, __ATOMIC_RELAXED);
  uint64_t ran = uv_hrtime() - since;
  char msg[256];
  lua_sethook(L, NULL, 0, 0);
  if (since == 0 || since != __atomic_load_n(&lw->armed, __ATOMIC_RELAXED))
    return; /* the loop turned since */
  __atomic_store_n(&lw->fired, armed_at, __ATOMIC_RELAXED);
  if (w->current == NULL)
    return; /* host code, not a task: nothing to stop */
  if (uv_hrtime() - armed_at < LATE_NS) {
    __atomic_store_n(&lw->reported, since, __ATOMIC_RELAXED);
    lw->stopped++;
    lua_getinfo(L, "Sl", ar);
    snprintf(msg, sizeof msg, "%s:%d: task ran %.1f s without yielding: "
             "stopped (--task-slice %g)", ar->short_src, ar->currentline,
             (double)ran / 1e9, w->cfg->task_slice);
    lua_pushstring(L, msg);
    lua_error(L);
  }
  if (__atomic_exchange_n(&lw->reported, since, __ATOMIC_RELAXED) != since) {
    luaL_traceback(L, L, NULL, 0);
    cn_log(CN_LOG_WARN, "task %llu held the loop for %.1f s in a blocking "
           "call (nothing else ran meanwhile)\n%s",
           (unsigned long long)cn_sched_task_id(w->current),
           (double)ran / 1e9, lua_tostring(L, -1));
    lua_pop(L, 1);
  }
}


/* The hook is set on the worker's own thread, from a signal the control
** thread sends it: LuaJIT lets a signal handler set a hook on the Lua
** state its thread runs (the running interpreter sees it at its next
** instructions; compiled code does not), but lua_sethook from another
** thread races with that thread's interpreter and JIT, which rewrite the
** same dispatch table and trace state (under load, tasks were seen
** never to run again after a worker looked stalled). */
static int slice_signal(void) { return SIGRTMIN; }


static void on_slice_signal(int sig) {
  cn_worker_t *w = cn_worker_self();
  int saved = errno;
  (void)sig;
  if (w != NULL && w->L != NULL &&
      __atomic_load_n(&w->watch.closing, __ATOMIC_RELAXED) == 0)
    lua_sethook(w->L, slice_hook, LUA_MASKCOUNT, 1);
  errno = saved;
}


/* catch_slice_signal installs on_slice_signal (the same for every worker:
** it finds its worker by its thread). */
static void catch_slice_signal(void) {
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_slice_signal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(slice_signal(), &sa, NULL);
}


/* host_stalled has w arm slice_hook; called from the control thread. A
** thread blocked in a system call is not in the interpreter: its hook is
** set from here, so that the call is not cut short by a signal (EINTR)
** and is reported once it returns; a running thread sets it itself. */
static void host_stalled(cn_worker_t *w, int in_call) {
  if (in_call)
    lua_sethook(w->L, slice_hook, LUA_MASKCOUNT, 1);
  else
    pthread_kill(w->thread, slice_signal());
}


/* The allocator: LuaJIT's own, counted. Past --lua-memory it refuses to
** grow while a task runs, so that the task gets "not enough memory" (an
** error inside its resume, which ends only that task); host code outside
** tasks is never refused, as it could not catch the error. */
typedef struct {
  lua_Alloc f;
  void *ud;
  cn_worker_t *w;
} alloc_t;

static __thread alloc_t alloc;


static void *counted_alloc(void *ud, void *p, size_t osize, size_t nsize) {
  alloc_t *a = ud;
  cn_worker_t *w = a->w;
  void *q;
  if (nsize > osize && w->current != NULL &&
      w->lua_bytes + (nsize - osize) > w->cfg->lua_memory) {
    w->lua_refused = 1;
    return NULL;
  }
  q = a->f(a->ud, p, osize, nsize);
  if (q != NULL || nsize == 0) {
    w->lua_bytes += nsize - osize; /* wraps around correctly */
    if (w->lua_bytes > w->lua_peak)
      w->lua_peak = w->lua_bytes;
  }
  return q;
}


static void count_alloc(cn_worker_t *w, lua_State *L) {
  alloc.f = lua_getallocf(L, &alloc.ud);
  alloc.w = w;
  w->lua_bytes = (size_t)lua_gc(L, LUA_GCCOUNT, 0) * 1024 +
                 (size_t)lua_gc(L, LUA_GCCOUNTB, 0);
  lua_setallocf(L, counted_alloc, &alloc);
}


/* -- Driving the garbage collector ---------------------------------------- */

/* A whole cycle after a burst runs in slices of about GC_SLICE_NS, one per
** loop iteration, from an idle handle (the loop polls without blocking
** meanwhile), so that no turn waits long for it; only LuaJIT's atomic phase
** (see README, Limits) is one piece. Under memory pressure the cycle runs
** at once instead. */
#define GC_SLICE_NS 1000000
#define GC_SLICE_KB 64 /* work per lua_gc step: a few tens of us */

static __thread uv_idle_t gc_idle; /* runs the slices while it is active */
static __thread size_t gc_from; /* the heap when the sliced cycle began */
static __thread uint64_t gc_last_idle; /* loop ms of the last idle call */
static __thread int gc_resting;        /* the last cycle the host ran ended */
static __thread size_t gc_rest_heap;   /* the heap then */
static __thread unsigned gc_idle_run;  /* idle calls in a row */

#define GC_IDLE_GAP_MS 400 /* idle calls (every 250 ms) this close: a row */


static int gc_full(lua_State *L) {
  lua_gc(L, LUA_GCCOLLECT, 0);
  return 0;
}


/* gc_step takes a small step; sets *done (its light userdata argument)
** if that ended a cycle. */
static int gc_step(lua_State *L) {
  int *done = lua_touserdata(L, 1);
  *done = lua_gc(L, LUA_GCSTEP, 16);
  return 0;
}


/* gc_slice steps the collector for about GC_SLICE_NS; sets *done (its
** light userdata argument) once a cycle finished. */
static int gc_slice(lua_State *L) {
  int *done = lua_touserdata(L, 1);
  uint64_t end = uv_hrtime() + GC_SLICE_NS;
  do
    *done = lua_gc(L, LUA_GCSTEP, GC_SLICE_KB);
  while (!*done && uv_hrtime() < end);
  return 0;
}


/* gc_run runs f (gc_full, gc_step or gc_slice) protected: __gc
** metamethods run inside. */
static void gc_run(lua_State *L, lua_CFunction f, void *ud) {
  if (lua_cpcall(L, f, ud) != 0) {
    cn_log(CN_LOG_WARN, "garbage collection: %s", lua_tostring(L, -1));
    lua_pop(L, 1);
  }
}


/* rest notes that a cycle just ended: the collector rests until the heap
** grows (see host_idle). */
static void rest(cn_worker_t *w) {
  gc_resting = 1;
  gc_rest_heap = w->lua_bytes;
}


static void gc_idle_cb(uv_idle_t *h) {
  cn_worker_t *w = h->data;
  int done = 1;
  gc_run(w->L, gc_slice, &done);
  if (done) { /* a heap that grew meanwhile was marked mid-burst: the */
    uv_idle_stop(h); /* next idle tick may collect it again */
    w->lua_after_full = w->lua_bytes < gc_from ? w->lua_bytes : gc_from;
    rest(w);
  }
}


/* host_idle runs while the loop is mostly idle (every 250 ms), and at
** the end of a turn near the memory bound. Once the heap has doubled since
** the last whole cycle and the loop has been idle for two calls in a row
** (a burst is over) it starts a whole cycle in slices (gc_idle_cb),
** whether or not a timer is due soon (full_ok): a slice delays it by a
** millisecond at most. After the memory bound refused a task, or when the
** heap grew near the bound, it collects at once. Else it takes a small
** step, unless the last cycle it ran has ended and the heap has grown by
** less than half since: a step would begin a cycle that finds little,
** and each cycle pauses the loop in LuaJIT's atomic phase (36 ms with a
** million tasks parked; see README). */
static void host_idle(cn_worker_t *w, int full_ok) {
  lua_State *L = w->L;
  size_t used = w->lua_bytes, limit = w->cfg->lua_memory;
  uint64_t now = uv_now(&w->loop);
  int done = 0;
  (void)full_ok;
  gc_idle_run = now - gc_last_idle <= GC_IDLE_GAP_MS ? gc_idle_run + 1 : 1;
  gc_last_idle = now;
  if (w->lua_refused ||
      (used > limit / 4 * 3 && used > w->lua_after_full + limit / 8)) {
    uv_idle_stop(&gc_idle);
    gc_run(L, gc_full, NULL);
    w->lua_after_full = w->lua_bytes;
    rest(w);
  } else if (uv_is_active((uv_handle_t *)&gc_idle)) {
    return; /* a whole cycle is under way */
  } else if (gc_idle_run >= 2 && used > (1 << 20) &&
             used > 2 * w->lua_after_full) {
    gc_from = used;
    uv_idle_start(&gc_idle, gc_idle_cb);
  } else if (!gc_resting || used > gc_rest_heap + gc_rest_heap / 2) {
    gc_run(L, gc_step, &done);
    gc_resting = 0;
    if (done)
      rest(w);
  }
  w->lua_refused = 0;
}


/* -- The hooks a worker is handed ---------------------------------------- */


/* start_admin(addr) runs coronet.admin.start(addr) in a task of its own:
** --admin. Called protected. */
static int start_admin(lua_State *L) {
  lua_getfield(L, LUA_GLOBALSINDEX, "require");
  lua_pushliteral(L, "coronet.admin");
  lua_call(L, 1, 1);
  lua_getfield(L, -1, "start");
  lua_pushvalue(L, 1);
  cn_sched_spawn(L, 1); /* pushes its coroutine */
  return 0;
}


/* host_start makes the worker's Lua state and starts the script's main
** chunk as the first task. Returns 0, or -1 after logging why not. */
static int host_start(cn_worker_t *w) {
  const cn_config_t *cfg = w->cfg;
  lua_State *L = luaL_newstate();
  if (L == NULL) {
    cn_log(CN_LOG_ERROR, "cannot create a Lua state: out of memory");
    return -1;
  }
  w->L = L;
  w->handler_ref = LUA_NOREF;
  catch_slice_signal();
  count_alloc(w, L);
  luaL_openlibs(L);
  cn_sched_init(w);
  w->after_run = cn__conn_flush_dirty; /* what a task wrote leaves */
  preload(L, "coronet.c.sched", luaopen_coronet_sched);
  preload(L, "coronet.c.conn", luaopen_coronet_conn);
  preload(L, "coronet.c.host", luaopen_coronet_host);
  preload(L, "coronet.c.net", luaopen_coronet_net);
  preload(L, "coronet.c.proc", luaopen_coronet_proc);
  preload(L, "coronet.c.fs", luaopen_coronet_fs);
  preload(L, "coronet.c.bus", luaopen_coronet_bus);
  preload(L, "coronet.c.shared", luaopen_coronet_shared);
  preload(L, "coronet.c.http", luaopen_coronet_http);
  preload(L, "coronet.c.ws", luaopen_coronet_ws);
  preload(L, "coronet.c.group", luaopen_coronet_group);
  preload(L, "coronet.c.tls", luaopen_coronet_tls);
  preload(L, "coronet.c.redis", luaopen_coronet_redis);
  preload(L, "coronet.c.busredis", luaopen_coronet_busredis);
  preload(L, "coronet.c.admin", luaopen_coronet_admin);
  set_path(L, cfg);
  set_args(L, cfg);
  lua_pushcfunction(L, require_boot);
  if (lua_pcall(L, 0, 0, 0) != 0) {
    cn_log(CN_LOG_ERROR, "cannot load coronet's Lua modules from %s: %s",
           cfg->moddir, lua_tostring(L, -1));
    return -1;
  }
  w->trampoline_ref = ref_loaded(L, "coronet", "_run_handler");
  host.describe_ref = ref_loaded(L, "coronet", "_describe");
  host.life_ref = ref_loaded(L, "coronet.lifecycle", NULL);
  if (luaL_loadfile(L, cfg->script) != 0) {
    cn_log(CN_LOG_ERROR, "%s", lua_tostring(L, -1));
    return -1;
  }
  if (cfg->admin != NULL) {
    lua_pushcfunction(L, start_admin);
    lua_pushstring(L, cfg->admin);
    if (lua_pcall(L, 1, 0, 0) != 0) {
      cn_log(CN_LOG_ERROR, "--admin: %s", lua_tostring(L, -1));
      return -1;
    }
  }
  spawn_main(w, main_end);
  w->lua_after_full = w->lua_bytes; /* the first cycle waits for twice that */
  uv_idle_init(&w->loop, &gc_idle);
  uv_unref((uv_handle_t *)&gc_idle); /* a cycle never keeps the loop up */
  gc_idle.data = w;
  return 0;
}


/* host_stopping closes coronet.stopping()'s channel: shutdown began. */
static void host_stopping(cn_worker_t *w) {
  life_call(w->L, "stop", 0, 0);
}


static void on_accept(cn_listener_t *l, cn_conn_t *c) {
  lcn_serve_conn(l->w, l->w->handler_ref, c);
}


/* host_serve gives listener l's connections to the script's handler. */
static void host_serve(cn_worker_t *w, cn_listener_t *l) {
  (void)w;
  l->on_conn = on_accept;
}


static void host_close(cn_worker_t *w) {
  if (gc_idle.data == w)
    uv_idle_stop(&gc_idle); /* the loop closes the handle */
  if (w->L != NULL)
    lua_close(w->L);
  w->L = NULL;
}


const cn_hooks_t lcn_host_hooks = {host_start, host_serve,  host_reload,
                                   host_stopping, host_idle, host_close,
                                   host_stalled};
