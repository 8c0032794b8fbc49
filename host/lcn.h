/* lcn.h: what the Lua bindings (lcn_*.c) share: metatable names, helpers
** defined in lcn_host.c, and the luaopen_ functions. */
#ifndef LCN_H
#define LCN_H

#include <lauxlib.h>
#include <lua.h>

#include "cn.h"

#define LCN_CONN_MT "coronet.conn"

int lcn_fail(lua_State *L, int err);
int lcn_ok(lua_State *L, int rc);
int lcn_argerror(lua_State *L, int narg, const char *fname, const char *msg);
int lcn_option(lua_State *L, int idx, const char *def,
               const char *const names[], int narg, const char *fname);
void lcn_op_done(void);
void lcn_class(lua_State *L, const char *tname, const luaL_Reg *methods,
               lua_CFunction gc, lua_CFunction tostring);
int lcn_lib(lua_State *L, const luaL_Reg *funcs, const char *tname,
            lua_CFunction gc);
size_t lcn_data_len(lua_State *L, int idx);
int lcn_data_spans(lua_State *L, int idx, size_t off, size_t n,
                   int (*fn)(void *ud, const char *p, size_t k), void *ud);
void lcn_push_buf(lua_State *L, cn_buf_t *b, size_t n, size_t drop);
int lcn_conn_park_read(lua_State *L, cn_conn_t *c, const char *what);
int lcn_conn_wait(lua_State *L, cn_conn_t *c, size_t want, const char *d,
                  size_t dlen, uint64_t timeout, uint64_t deadline,
                  const char *what);
int lcn_conn_task_wait(cn_task_t *t, cn_conn_t *c, size_t want,
                       const char *d, size_t dlen, uint64_t timeout,
                       uint64_t deadline);
int lcn_conn_park_want(lua_State *L, cn_conn_t *c, size_t want,
                       const char *what);
int lcn_conn_park_write(lua_State *L, cn_conn_t *c, const char *what);

/* lcn_earliest returns the earlier of two deadlines, 0 meaning none. */
static inline uint64_t lcn_earliest(uint64_t a, uint64_t b) {
  return a == 0 ? b : b == 0 ? a : a < b ? a : b;
}
uint64_t lcn_deadline_in(lua_State *L, double seconds);
uint64_t lcn_deadline_at(lua_State *L, double t);
void lcn_set_number(lua_State *L, const char *k, double v);
void lcn_push_conn(lua_State *L, cn_conn_t *c);
cn_conn_t *lcn_to_conn(lua_State *L, int idx);
cn_conn_t *lcn_open_conn(lua_State *L, int idx);
cn_conn_t *lcn_reader_conn(lua_State *L, int idx);
void lcn_serve_conn(cn_worker_t *w, int handler, cn_conn_t *c);
cn_tls_conf_t *lcn_tls_conf(lua_State *L, int idx);
void lcn_conn_own(cn_task_t *t, cn_conn_t *c);
void lcn_net_version_end(lua_State *L, int version, int ok);
void lcn_push_task(lua_State *L, cn_task_t *t, cn_task_info_t *info,
                   int extra);

/* lcn_host_hooks: the Lua side of a worker, for cn_run (lcn_host.c). */
extern const cn_hooks_t lcn_host_hooks;

/* Reads through LuaJIT's FFI (lua/coronet/conn.lua): box is a connection
** object's payload. Each returns 1 and lends n bytes at p when it can
** answer at once (lcn_conn_ffi_drop then consumes drop bytes), else 0.
** They return an int, which the FFI gives Lua as a number (a pointer
** would be compared through a metamethod: a C call, see coronet.wait). */
typedef struct lcn_span_s {
  const char *p;
  size_t n, drop;
} lcn_span_t;

int lcn_conn_ffi_delim(void *box, const char *d, size_t dlen, size_t max,
                       lcn_span_t *out);
int lcn_conn_ffi_line(void *box, size_t max, lcn_span_t *out);
int lcn_conn_ffi_read(void *box, size_t n, lcn_span_t *out);
void lcn_conn_ffi_drop(void *box, size_t n);

/* lcn_conn_ffi_reader returns box's connection when it may be read at
** once (open, with no other reader or pump), else NULL: for other
** bindings' FFI calls, given a connection object's payload. */
cn_conn_t *lcn_conn_ffi_reader(void *box);

/* Writes through the FFI: lcn_conn_ffi_room returns 1 when box's
** connection queues n more bytes at once (open, no write error, below its
** high-water mark by n), the write then counting as done; else 0.
** lcn_conn_ffi_write then appends n bytes at p: 0, or a negative code
** (the classic conn:write, given how far it got, says which);
** lcn_conn_ffi_writev appends k pieces (p[i], n[i] bytes each), small
** ones gathered into one append, and returns k, or how many went whole
** before an append failed. */
int lcn_conn_ffi_room(void *box, size_t n);
int lcn_conn_ffi_write(void *box, const char *p, size_t n);
int lcn_conn_ffi_writev(void *box, const char *const *p, const size_t *n,
                        int k);

/* lcn_http_ffi_time returns the time in whole seconds since the epoch:
** os.time() without the classic C call (lua/coronet/http.lua's Date). */
double lcn_http_ffi_time(void);

/* lcn_http_ffi_wait_head parks the running task until the next head
** starts to arrive on box's connection, as read_head's first call would
** for parser (a parser object's payload) when nothing is buffered:
** returns 1 when parked (then wait and call read_head), -1 when the
** operation's time ran out (read_head would have said "timeout"), 0 when
** read_head must be called at once (input, EOF, an error, a closed or
** busy connection, no task). */
int lcn_http_ffi_wait_head(void *box, void *parser);

int luaopen_coronet_sched(lua_State *L);
int luaopen_coronet_conn(lua_State *L);
int luaopen_coronet_host(lua_State *L);
int luaopen_coronet_net(lua_State *L);
int luaopen_coronet_proc(lua_State *L);
int luaopen_coronet_fs(lua_State *L);
int luaopen_coronet_redis(lua_State *L);
int luaopen_coronet_busredis(lua_State *L);
int luaopen_coronet_bus(lua_State *L);
int luaopen_coronet_shared(lua_State *L);
int luaopen_coronet_group(lua_State *L);
int luaopen_coronet_http(lua_State *L);
int luaopen_coronet_ws(lua_State *L);
int luaopen_coronet_tls(lua_State *L);
int luaopen_coronet_admin(lua_State *L);

#endif
