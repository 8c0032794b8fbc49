/* lcn_host.c: the Lua side of a worker: the state with coronet's modules,
** the script's main chunk run as the first task, the handler given to each
** accepted connection, and helpers the other bindings share (lcn.h). */
#include <math.h>
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


/* lcn_data_len returns the byte length of the string, or table of strings
** (a writev's fragments), at idx; raises on any other fragment. */
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
      luaL_error(L, "bad argument #1 to 'write' (fragment %d is a %s)",
                 (int)i, luaL_typename(L, -1));
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


/* lcn_deadline_in returns the loop time (ms) seconds from now. */
uint64_t lcn_deadline_in(lua_State *L, double seconds) {
  uv_loop_t *loop = &cn_worker_self()->loop;
  (void)L;
  uv_update_time(loop);
  if (!(seconds > 0))
    return uv_now(loop);
  if (seconds > 1e9)
    seconds = 1e9;
  return uv_now(loop) + (uint64_t)ceil(seconds * 1000) + 1; /* ms floor */
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


/* info() -> {script=, worker=, workers=, run=, read_hwm=, write_hwm=} */
static int host_info(lua_State *L) {
  cn_worker_t *w = cn_worker_self();
  lua_createtable(L, 0, 6);
  lua_pushstring(L, w->cfg->script);
  lua_setfield(L, -2, "script");
  lua_pushinteger(L, w->id);
  lua_setfield(L, -2, "worker");
  lua_pushinteger(L, w->cfg->workers);
  lua_setfield(L, -2, "workers");
  lua_pushboolean(L, w->cfg->run);
  lua_setfield(L, -2, "run");
  lua_pushnumber(L, (double)w->cfg->read_hwm);
  lua_setfield(L, -2, "read_hwm");
  lua_pushnumber(L, (double)w->cfg->write_hwm);
  lua_setfield(L, -2, "write_hwm");
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
                                      {NULL, NULL}};


int luaopen_coronet_host(lua_State *L) {
  lua_newtable(L);
  luaL_register(L, NULL, host_funcs);
  return 1;
}


/* -- Setting up the state ---------------------------------------------- */


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


/* take_handler checks that the ended main chunk of t returned a function
** and makes it the handler for new connections. Logs why not otherwise. */
static int take_handler(cn_worker_t *w, lua_State *co, const char *failed) {
  lua_State *L = w->L;
  if (lua_gettop(co) < 1 || !lua_isfunction(co, 1)) {
    cn_log(CN_LOG_ERROR,
           "%s%s: the script must return a handler function (got %s)",
           failed, w->cfg->script,
           lua_gettop(co) < 1 ? "nothing" : luaL_typename(co, 1));
    return 0;
  }
  lua_pushvalue(co, 1);
  lua_xmove(co, L, 1);
  luaL_unref(L, LUA_REGISTRYINDEX, w->handler_ref);
  w->handler_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  return 1;
}


static void log_chunk_error(cn_worker_t *w, lua_State *co, const char *pre) {
  lua_State *L = w->L;
  luaL_traceback(L, co, lua_tostring(co, -1), 0);
  cn_log(CN_LOG_ERROR, "%s%s", pre, lua_tostring(L, -1));
  lua_pop(L, 1);
}


/* reload_deferred says a reload was asked for while the script's main
** chunk still ran: main_end starts it. Per worker. */
static __thread int reload_deferred;


/* main_end receives the end of the script's main chunk. */
static void main_end(cn_task_t *t, int status) {
  cn_worker_t *w = cn_worker_self();
  lua_State *co = cn_sched_thread(t);
  if (status != 0) {
    log_chunk_error(w, co, "");
    if (w->cfg->run)
      cn_worker_exit(w, 1);
    else
      cn__worker_started(w, 0);
    return;
  }
  if (w->cfg->run)
    cn_worker_exit(w, 0);
  else
    cn__worker_started(w, take_handler(w, co, ""));
  if (reload_deferred && w->handler_ref != LUA_NOREF && !w->stopping) {
    reload_deferred = 0;
    cn__host_reload(w); /* the file may have changed since it was read */
  }
}


/* -- Reloading --------------------------------------------------------- */


static char reload_failed[] = "reload failed, the old handler stays: ";


/* log_reload_error logs the error a reloaded main chunk raised as one
** line: the message (which names file:line), its newlines folded, and no
** traceback. */
static void log_reload_error(cn_worker_t *w, lua_State *co) {
  lua_State *L = w->L;
  int top = lua_gettop(L);
  const char *msg = lua_tostring(co, -1);
  if (msg == NULL)
    msg = lua_pushfstring(L, "(error object is a %s value)",
                          luaL_typename(co, -1));
  msg = luaL_gsub(L, luaL_gsub(L, msg, "\n\t", " "), "\n", " ");
  cn_log(CN_LOG_ERROR, "%s%s", reload_failed, msg);
  lua_settop(L, top);
}


/* reload_end receives the end of a reloaded main chunk. */
static void reload_end(cn_task_t *t, int status) {
  cn_worker_t *w = cn_worker_self();
  lua_State *co = cn_sched_thread(t);
  if (t != w->reload_task) {
    cn_log(CN_LOG_INFO, "%s: reload superseded by a newer one",
           w->cfg->script);
    return;
  }
  w->reload_task = NULL;
  if (status != 0) {
    log_reload_error(w, co);
    return;
  }
  if (take_handler(w, co, reload_failed))
    cn_log(CN_LOG_INFO, "reloaded %s in %.1f ms%s", w->cfg->script,
           (double)(uv_hrtime() - w->reload_t0) / 1e6,
           w->cfg->workers > 1 ? " (one worker)" : "");
}


/* call_boot calls coronet.boot's function name, if any, under pcall. */
static void call_boot(lua_State *L, const char *name) {
  lua_getfield(L, LUA_REGISTRYINDEX, "_LOADED");
  lua_getfield(L, -1, "coronet.boot");
  if (lua_istable(L, -1)) {
    lua_getfield(L, -1, name);
    if (lua_isfunction(L, -1) && lua_pcall(L, 0, 0, 0) != 0) {
      cn_log(CN_LOG_WARN, "%s: %s", name, lua_tostring(L, -1));
      lua_pop(L, 1);
    }
  }
  lua_settop(L, 0);
}


/* cn__host_reload compiles and runs the script again as a task. New
** connections get the handler it returns; open ones keep theirs. If it
** fails, the old handler stays and the log says why, with file:line. */
void cn__host_reload(cn_worker_t *w) {
  lua_State *L = w->L;
  int i;
  if (w->handler_ref == LUA_NOREF) {
    reload_deferred = 1; /* still starting: main_end reloads */
    return;
  }
  w->reload_t0 = uv_hrtime();
  call_boot(L, "before_reload"); /* forget changed modules */
  if (luaL_loadfile(L, w->cfg->script) != 0) {
    cn_log(CN_LOG_ERROR, "%s%s", reload_failed, lua_tostring(L, -1));
    lua_pop(L, 1);
    return;
  }
  for (i = 0; i < w->cfg->argc; i++)
    lua_pushstring(L, w->cfg->argv[i]);
  w->reload_task = cn_sched_spawn(L, w->cfg->argc);
  lua_pop(L, 1);
  cn_sched_set_kind(w->reload_task, CN_TASK_MAIN);
  cn_sched_set_end(w->reload_task, reload_end);
}


/* cn__host_start makes the worker's Lua state and starts the script's main
** chunk as the first task. Returns 0, or -1 after logging why not. */
int cn__host_start(cn_worker_t *w) {
  const cn_config_t *cfg = w->cfg;
  lua_State *L = luaL_newstate();
  cn_task_t *t;
  int i;
  if (L == NULL) {
    cn_log(CN_LOG_ERROR, "cannot create a Lua state: out of memory");
    return -1;
  }
  w->L = L;
  w->handler_ref = LUA_NOREF;
  luaL_openlibs(L);
  cn_sched_init(w);
  w->after_run = cn__conn_flush_dirty; /* what a task wrote leaves */
  preload(L, "coronet.c.sched", luaopen_coronet_sched);
  preload(L, "coronet.c.conn", luaopen_coronet_conn);
  preload(L, "coronet.c.host", luaopen_coronet_host);
  preload(L, "coronet.c.net", luaopen_coronet_net);
  preload(L, "coronet.c.proc", luaopen_coronet_proc);
  preload(L, "coronet.c.fs", luaopen_coronet_fs);
  preload(L, "coronet.c.http", luaopen_coronet_http);
  preload(L, "coronet.c.ws", luaopen_coronet_ws);
  preload(L, "coronet.c.bus", luaopen_coronet_bus);
  preload(L, "coronet.c.shared", luaopen_coronet_shared);
  set_path(L, cfg);
  set_args(L, cfg);
  lua_pushcfunction(L, require_boot);
  if (lua_pcall(L, 0, 0, 0) != 0) {
    cn_log(CN_LOG_ERROR, "cannot load coronet's Lua modules from %s: %s",
           cfg->moddir, lua_tostring(L, -1));
    return -1;
  }
  lua_getfield(L, LUA_REGISTRYINDEX, "_LOADED");
  lua_getfield(L, -1, "coronet");
  lua_getfield(L, -1, "_run_handler");
  w->trampoline_ref = luaL_ref(L, LUA_REGISTRYINDEX);
  lua_settop(L, 0);
  if (luaL_loadfile(L, cfg->script) != 0) {
    cn_log(CN_LOG_ERROR, "%s", lua_tostring(L, -1));
    return -1;
  }
  for (i = 0; i < cfg->argc; i++)
    lua_pushstring(L, cfg->argv[i]);
  t = cn_sched_spawn(L, cfg->argc);
  lua_pop(L, 1);
  cn_sched_set_kind(t, CN_TASK_MAIN);
  cn_sched_set_end(t, main_end);
  return 0;
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


static void on_accept(cn_listener_t *l, cn_conn_t *c) {
  lcn_serve_conn(l->w, l->w->handler_ref, c);
}


/* cn__host_serve gives listener l's connections to the script's handler. */
void cn__host_serve(cn_worker_t *w, cn_listener_t *l) {
  (void)w;
  l->on_conn = on_accept;
}


void cn__host_close(cn_worker_t *w) {
  if (w->L != NULL)
    lua_close(w->L);
  w->L = NULL;
}
