/* lcn_conn.c: Lua binding of connections (cn_conn.c). Every method
** finishes at once when it can; when it must wait it parks the task and
** returns false, and its wrapper in lua/coronet/conn.lua yields and calls
** it again. The scheduler never pushes results: a retried call finds them. */
#include <stdio.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "cn.h"
#include "lcn.h"

typedef struct {
  cn_conn_t *c; /* NULL once the handle is gone */
  uint64_t id;  /* c's id, kept for logs once c is gone */
  struct sockaddr_in6 peer; /* c's peer, kept once c is gone */
} conn_box;


/* disown breaks the link between c and the task that owns it, if any. */
static void disown(cn_conn_t *c) {
  if (c->task != NULL) {
    cn_sched_set_data(c->task, NULL);
    c->task = NULL;
  }
}


/* on_close is the worker's conn_closed hook: c, which has a Lua object,
** is about to be freed. */
static void on_close(cn_conn_t *c) {
  conn_box *b = c->data;
  disown(c);
  if (b != NULL) {
    b->c = NULL;
    memcpy(&b->peer, &c->peer, sizeof b->peer);
  }
}


/* handler_box returns the connection object that ended task t's first
** frame (its handler, called with the connection) still holds, or NULL.
** The frames of a task that failed are still on its stack. */
static conn_box *handler_box(cn_task_t *t) {
  lua_State *co = cn_sched_thread(t);
  lua_Debug ar;
  int lo = 0, hi = 1;
  conn_box *b = NULL;
  while (lua_getstack(co, hi, &ar)) { /* the first frame is the deepest */
    lo = hi;
    hi *= 2;
  }
  while (hi - lo > 1) {
    int mid = lo + (hi - lo) / 2;
    if (lua_getstack(co, mid, &ar))
      lo = mid;
    else
      hi = mid;
  }
  if (!lua_getstack(co, lo, &ar) || lua_getlocal(co, &ar, 1) == NULL)
    return NULL;
  if (lua_getmetatable(co, -1)) {
    luaL_getmetatable(co, LCN_CONN_MT);
    if (lua_rawequal(co, -1, -2))
      b = lua_touserdata(co, -3);
    lua_pop(co, 2);
  }
  lua_pop(co, 1);
  return b;
}


/* owner_where writes " (conn ID from PEER)" for the connection task t
** owns (c, or, once c is closed, its Lua object) into buf. */
static void owner_where(cn_task_t *t, cn_conn_t *c, char *buf, size_t size) {
  char peer[CN_ADDRSTRLEN] = "?";
  uint64_t id = cn_sched_task_conn_id(t);
  conn_box *b;
  if (c != NULL) {
    cn_conn_addr(c, 0, peer, sizeof peer);
  } else if ((b = handler_box(t)) != NULL) {
    id = b->id;
    if (b->peer.sin6_family != 0)
      cn_addr_format((const struct sockaddr *)&b->peer, peer, sizeof peer);
  }
  snprintf(buf, size, " (conn %llu from %s)", (unsigned long long)id, peer);
}


/* owner_end is the end hook of a task that owns a connection: it logs an
** error that escaped the handler and closes the connection. */
static void owner_end(cn_task_t *t, int status) {
  cn_conn_t *c = cn_sched_data(t);
  if (status != 0) {
    char where[CN_ADDRSTRLEN + 48];
    owner_where(t, c, where, sizeof where);
    cn_sched_log_error(t, where);
  }
  if (c != NULL) {
    disown(c);
    cn_conn_close(c);
  }
}


/* lcn_conn_own makes task t the owner of c (already pushed as a Lua
** object): t closes c when it ends, and an error t ends with is logged
** with c's id and peer. */
void lcn_conn_own(cn_task_t *t, cn_conn_t *c) {
  c->task = t;
  cn_sched_set_data(t, c);
  cn_sched_set_conn_id(t, c->id);
  cn_sched_set_end(t, owner_end);
}


/* lcn_push_conn pushes a new Lua object for c, which it then owns: the
** object's collection closes c. */
void lcn_push_conn(lua_State *L, cn_conn_t *c) {
  conn_box *b = lua_newuserdata(L, sizeof *b);
  b->c = c;
  b->id = c->id;
  b->peer.sin6_family = 0;
  c->data = b;
  c->w->conn_closed = on_close;
  luaL_getmetatable(L, LCN_CONN_MT);
  lua_setmetatable(L, -2);
}


/* lcn_to_conn returns the open connection at idx, NULL if it is closed or
** not a connection. */
cn_conn_t *lcn_to_conn(lua_State *L, int idx) {
  conn_box *b = luaL_checkudata(L, idx, LCN_CONN_MT);
  return b->c;
}


/* check_conn returns the connection at idx, or NULL (pushing nil,
** "closed") when this side has closed it. */
static cn_conn_t *check_conn(lua_State *L, int idx) {
  conn_box *b = luaL_checkudata(L, idx, LCN_CONN_MT);
  if (b->c == NULL || (b->c->flags & CN_CONN_CLOSED)) {
    lcn_fail(L, CN_ECLOSED);
    return NULL;
  }
  return b->c;
}


/* lcn_push_buf pushes the first n bytes of b as one string, then drops
** the first drop bytes. */
void lcn_push_buf(lua_State *L, cn_buf_t *b, size_t n, size_t drop) {
  if (b->head != NULL && b->head->wpos - b->head->rpos >= n) {
    lua_pushlstring(L, cn_block_bytes(b->head) + b->head->rpos, n);
  } else {
    luaL_Buffer lb;
    cn_block_t *h;
    size_t left = n;
    luaL_buffinit(L, &lb);
    for (h = b->head; left > 0; h = h->next) {
      size_t k = h->wpos - h->rpos;
      if (k > left)
        k = left;
      luaL_addlstring(&lb, cn_block_bytes(h) + h->rpos, k);
      left -= k;
    }
    luaL_pushresult(&lb);
  }
  cn_buf_consume(b, drop);
}


/* -- Reading ----------------------------------------------------------- */


/* read_busy pushes nil, "busy reading" when another task reads c. */
static int read_busy(lua_State *L, cn_conn_t *c) {
  if (!cn_conn_reading(c))
    return 0;
  return lcn_fail(L, CN_EBUSYR);
}


/* lcn_conn_wait parks the running task (what names the call) as c's
** reader until want bytes are buffered (or d[0..dlen) is, dlen > 0), EOF,
** an error or close; or until timeout ms (0: none) after the operation
** began, or the loop time deadline (0: none). Returns 0 when parked, or
** CN_ETIMEOUT when the operation's last park ended at its deadline. */
int lcn_conn_wait(lua_State *L, cn_conn_t *c, size_t want, const char *d,
                  size_t dlen, uint64_t timeout, uint64_t deadline,
                  const char *what) {
  return lcn_conn_task_wait(cn_sched_task(L, what), c, want, d, dlen,
                            timeout, deadline);
}


/* lcn_conn_task_wait is lcn_conn_wait for the running task t, without
** the Lua state: for calls through the FFI. */
int lcn_conn_task_wait(cn_task_t *t, cn_conn_t *c, size_t want,
                       const char *d, size_t dlen, uint64_t timeout,
                       uint64_t deadline) {
  uint64_t start;
  if (cn_sched_timed_out(t))
    return CN_ETIMEOUT;
  start = cn_sched_op_start(t);
  cn_conn_wait_read(c, cn_sched_waiter(t), want, d, dlen);
  cn_sched_park(t, CN_WAIT_READ,
                lcn_earliest(timeout ? start + timeout : 0, deadline),
                cn_conn_unwait, c);
  return 0;
}


/* read_park is the common tail of reads that cannot finish now: the
** failure when input ended or the deadline passed (with partial bytes
** peeked as a third value), else the task parks and false is returned. */
static int read_park(lua_State *L, cn_conn_t *c, size_t want, const char *d,
                     size_t dlen, const char *what, int fail_partial) {
  int err = c->rerr;
  if (err == 0) {
    err = lcn_conn_wait(L, c, want, d, dlen, c->rtimeout, c->rdeadline, what);
    if (err == 0) {
      lua_pushboolean(L, 0);
      return 1;
    }
  } else if (err == CN_EOF && fail_partial && c->in.len > 0) {
    err = CN_EUNEXPEOF;
  }
  lcn_op_done();
  c->scanned = 0;
  lcn_fail(L, err);
  if (c->in.len == 0)
    return 2;
  lcn_push_buf(L, &c->in, c->in.len, 0); /* stays buffered */
  return 3;
}


/* lcn_conn_park_read parks the running task until c has input, EOF, an
** error, close or its read deadline; pushes false (parked) or the failure
** and returns their count. For other bindings that read from c. */
int lcn_conn_park_read(lua_State *L, cn_conn_t *c, const char *what) {
  return read_park(L, c, 1, NULL, 0, what, 0);
}


/* lcn_conn_park_want is lcn_conn_park_read for a reader that cannot go on
** before want bytes are buffered (reading goes on past the high-water mark
** up to there); input that ends with bytes buffered fails with "unexpected
** eof". */
int lcn_conn_park_want(lua_State *L, cn_conn_t *c, size_t want,
                       const char *what) {
  return read_park(L, c, want, NULL, 0, what, 1);
}


/* conn:read([n]) -> data | nil, err
** Returns 1..n buffered bytes (n defaults to a block) at once; otherwise
** parks until data, EOF, an error, the deadline, or close. */
static int conn_read(lua_State *L) {
  cn_conn_t *c = check_conn(L, 1);
  lua_Integer n = luaL_optinteger(L, 2, CN_BLOCK_DATA);
  if (c == NULL)
    return 2;
  if (n <= 0)
    lcn_argerror(L, 1, "read", "size must be positive");
  if (read_busy(L, c))
    return 2;
  c->skip = 0;
  if (c->in.len > 0) {
    size_t k = (size_t)n < c->in.len ? (size_t)n : c->in.len;
    lcn_op_done();
    lcn_push_buf(L, &c->in, k, k);
    cn_conn_consumed(c);
    return 1;
  }
  return read_park(L, c, 1, NULL, 0, "conn:read", 0);
}


/* read_exact serves read_full and peek: exactly n bytes, consumed or not;
** at EOF before n, nil, "unexpected eof" and the bytes that did arrive
** (which stay buffered). */
static int read_exact(lua_State *L, int consume, const char *what) {
  cn_conn_t *c = check_conn(L, 1);
  lua_Integer n = luaL_checkinteger(L, 2);
  if (c == NULL)
    return 2;
  if (n < 0)
    lcn_argerror(L, 1, what, "size must not be negative");
  if (read_busy(L, c))
    return 2;
  if (c->in.len < (size_t)n)
    return read_park(L, c, (size_t)n, NULL, 0, what, 1);
  lcn_op_done();
  lcn_push_buf(L, &c->in, (size_t)n, consume ? (size_t)n : 0);
  if (consume)
    cn_conn_consumed(c);
  return 1;
}


/* conn:read_full(n) -> data | nil, err [, partial] */
static int conn_read_full(lua_State *L) {
  return read_exact(L, 1, "conn:read_full");
}


/* conn:peek(n) -> data | nil, err [, partial]: read_full that leaves the
** bytes buffered */
static int conn_peek(lua_State *L) { return read_exact(L, 0, "conn:peek"); }


/* skip_long drops input left over from a line that was too long, through
** its delimiter. Returns 1 while more of it may still arrive. */
static int skip_long(cn_conn_t *c, const char *d, size_t dlen) {
  int64_t at = cn_buf_find(&c->in, 0, d, dlen);
  if (at < 0) {
    size_t keep = dlen - 1 < c->in.len ? dlen - 1 : c->in.len;
    cn_buf_consume(&c->in, c->in.len - keep);
    return 1;
  }
  cn_buf_consume(&c->in, (size_t)at + dlen);
  c->skip = 0;
  return 0;
}


/* read_delim serves read_line and read_until: the bytes before the next
** d (at most max), consuming d; at EOF, what is left as a last piece. */
static int read_delim(lua_State *L, cn_conn_t *c, const char *d, size_t dlen,
                      size_t max, int line, const char *what) {
  size_t room = max + (line != 0), n; /* max does not count a line's "\r" */
  int64_t at;
  if (c->skip) {
    int more = skip_long(c, d, dlen);
    cn_conn_consumed(c);
    if (more && c->rerr == 0) {
      c->scanned = 0;
      return read_park(L, c, c->in.len + 1, NULL, 0, what, 0);
    }
    if (more) {
      cn_buf_consume(&c->in, c->in.len); /* EOF inside the long line */
      c->skip = 0;
    }
  }
  at = cn_buf_find(&c->in, c->scanned, d, dlen);
  if (at < 0 && c->in.len < room + dlen) {
    c->scanned = c->in.len >= dlen ? c->in.len - dlen + 1 : 0;
    if (c->rerr == 0 || c->in.len == 0)
      return read_park(L, c, room + dlen, d, dlen, what, 0);
    at = (int64_t)c->in.len; /* last piece, without delimiter */
    dlen = 0;
  }
  lcn_op_done();
  c->scanned = 0;
  n = at >= 0 ? (size_t)at : 0;
  if (line && n > 0 && dlen > 0) {
    char last;
    cn_buf_copyout(&c->in, n - 1, &last, 1);
    n -= last == '\r';
  }
  if (at < 0 || n > max) {
    if (dlen == 0) {
      cn_buf_consume(&c->in, c->in.len); /* a last piece past max */
    } else {
      c->skip = 1;
      skip_long(c, d, dlen);
    }
    cn_conn_consumed(c);
    return lcn_fail(L, CN_ELINE);
  }
  lcn_push_buf(L, &c->in, n, (size_t)at + dlen);
  cn_conn_consumed(c);
  return 1;
}


static size_t opt_max(lua_State *L, int idx, const char *fname) {
  lua_Integer max = luaL_optinteger(L, idx, 0);
  if (max < 0)
    lcn_argerror(L, idx - 1, fname, "maximum must not be negative");
  return max > 0 ? (size_t)max : cn_worker_self()->cfg->read_hwm;
}


/* conn:read_line([max]) -> line | nil, err [, partial]
** Returns the next line without its "\n" and a "\r" before it. A line
** longer than max bytes (default: the read high-water mark) fails with
** "line too long" and is discarded through its newline. */
static int conn_read_line(lua_State *L) {
  cn_conn_t *c = check_conn(L, 1);
  size_t max = opt_max(L, 2, "read_line");
  if (c == NULL || read_busy(L, c))
    return 2;
  return read_delim(L, c, "\n", 1, max, 1, "conn:read_line");
}


/* conn:read_until(delim [, max]) -> data | nil, err [, partial]
** Returns the bytes before the next delim, consuming delim too. */
static int conn_read_until(lua_State *L) {
  cn_conn_t *c = check_conn(L, 1);
  size_t dlen;
  const char *d = luaL_checklstring(L, 2, &dlen);
  size_t max = opt_max(L, 3, "read_until");
  if (c == NULL)
    return 2;
  if (dlen == 0 || dlen > 8)
    lcn_argerror(L, 1, "read_until", "delimiter must be 1 to 8 bytes");
  if (read_busy(L, c))
    return 2;
  return read_delim(L, c, d, dlen, max, 0, "conn:read_until");
}


/* conn:buffered() -> count of bytes read from the peer and not yet
** consumed */
static int conn_buffered(lua_State *L) {
  conn_box *b = luaL_checkudata(L, 1, LCN_CONN_MT);
  lua_pushnumber(L, b->c != NULL ? (double)b->c->in.len : 0);
  return 1;
}


/* -- Reading through the FFI --------------------------------------------- */

/* The hot reads (read, read_line, read_until) are first tried from Lua
** through LuaJIT's FFI, which JIT traces can compile: when the bytes asked
** for are there, in one block, with nothing unusual going on, these
** return them for the caller to copy, then it drops them. Otherwise they
** return NULL and the caller takes the classic path above, which answers
** every case with the same contract. */


/* ffi_conn returns box's connection when a read may be served at once:
** open, with no other reader or pump. */
static cn_conn_t *ffi_conn(void *box) {
  cn_conn_t *c = ((conn_box *)box)->c;
  if (c == NULL || (c->flags & CN_CONN_CLOSED) || cn_conn_reading(c))
    return NULL;
  return c;
}


/* lcn_conn_ffi_reader: see lcn.h. */
cn_conn_t *lcn_conn_ffi_reader(void *box) { return ffi_conn(box); }


/* ffi_delim serves read_line (line 1: max does not count a "\r" before
** the "\n", which is dropped too) and read_until(d): the bytes before the
** next d, when a whole piece of at most max bytes (0: the read high-water
** mark) is buffered in one block. */
static int ffi_delim(void *box, const char *d, size_t dlen, size_t max,
                     int line, lcn_span_t *out) {
  cn_conn_t *c = ffi_conn(box);
  const char *p;
  int64_t at;
  size_t n;
  if (c == NULL || c->skip || dlen == 0 || dlen > sizeof c->dlim)
    return 0;
  if ((at = cn_buf_find(&c->in, c->scanned, d, dlen)) < 0)
    return 0;
  if ((p = cn_buf_span(&c->in, (size_t)at)) == NULL)
    return 0;
  n = (size_t)at;
  if (line && n > 0 && p[n - 1] == '\r')
    n--;
  if (n > (max > 0 ? max : c->w->cfg->read_hwm))
    return 0; /* line too long: the classic path says so */
  out->p = p;
  out->n = n;
  out->drop = (size_t)at + dlen;
  return 1;
}


int lcn_conn_ffi_delim(void *box, const char *d, size_t dlen, size_t max,
                       lcn_span_t *out) {
  return ffi_delim(box, d, dlen, max, 0, out);
}


int lcn_conn_ffi_line(void *box, size_t max, lcn_span_t *out) {
  return ffi_delim(box, "\n", 1, max, 1, out);
}


/* lcn_conn_ffi_read serves read(n): up to n bytes, when some are buffered
** and those returned lie in one block. */
int lcn_conn_ffi_read(void *box, size_t n, lcn_span_t *out) {
  cn_conn_t *c = ffi_conn(box);
  const char *p;
  if (c == NULL || c->in.len == 0 || n == 0)
    return 0;
  if (n > c->in.len)
    n = c->in.len;
  if ((p = cn_buf_span(&c->in, n)) == NULL)
    return 0;
  c->skip = 0;
  out->p = p;
  out->n = out->drop = n;
  return 1;
}


/* lcn_conn_ffi_drop consumes the first n bytes after a fast read: the
** read is done. */
void lcn_conn_ffi_drop(void *box, size_t n) {
  cn_conn_t *c = ((conn_box *)box)->c;
  cn_buf_consume(&c->in, n);
  c->scanned = 0;
  cn_conn_consumed(c);
  lcn_op_done();
}


/* -- Writing ----------------------------------------------------------- */


/* lcn_conn_ffi_room: see lcn.h. A write that fits needs no park: it is
** done as it begins (as conn_write's lcn_op_done). */
int lcn_conn_ffi_room(void *box, size_t n) {
  cn_conn_t *c = ((conn_box *)box)->c;
  if (c == NULL || (c->flags & (CN_CONN_CLOSED | CN_CONN_WSHUT)) ||
      c->werr != 0 || (size_t)cn_conn_writable(c) < n)
    return 0;
  lcn_op_done();
  return 1;
}


int lcn_conn_ffi_write(void *box, const char *p, size_t n) {
  return cn_conn_write(((conn_box *)box)->c, p, n);
}


/* lcn_conn_ffi_writev appends the k pieces at p[i], n[i] bytes each, as
** lcn_conn_ffi_write appends one, after a lcn_conn_ffi_room for their
** total: small pieces gathered into one append (a response head's lines
** and a short body). Returns k, or how many pieces went whole before an
** append failed. */
int lcn_conn_ffi_writev(void *box, const char *const *p, const size_t *n,
                        int k) {
  cn_conn_t *c = ((conn_box *)box)->c;
  char buf[2048];
  size_t used = 0;
  int i, first = 0; /* the first piece in buf */
  for (i = 0; i < k; i++) {
    if (used + n[i] > sizeof buf && used > 0) {
      if (cn_conn_write(c, buf, used) < 0)
        return first;
      used = 0;
      first = i;
    }
    if (n[i] > sizeof buf) {
      if (cn_conn_write(c, p[i], n[i]) < 0)
        return i;
      first = i + 1;
      continue;
    }
    memcpy(buf + used, p[i], n[i]);
    used += n[i];
  }
  if (used > 0 && cn_conn_write(c, buf, used) < 0)
    return first;
  return k;
}


static int append_span(void *conn, const char *p, size_t k) {
  return cn_conn_write(conn, p, k);
}


/* lcn_conn_park_write parks the running task until c's write chain drains
** below its low-water mark, a write error, close or its write deadline.
** Returns 0, or CN_EBUSYW or CN_ETIMEOUT without parking. */
int lcn_conn_park_write(lua_State *L, cn_conn_t *c, const char *what) {
  cn_task_t *t;
  uint64_t start;
  if (c->writer != NULL)
    return CN_EBUSYW;
  t = cn_sched_task(L, what);
  if (cn_sched_timed_out(t))
    return CN_ETIMEOUT;
  start = cn_sched_op_start(t); /* also with only a deadline set */
  cn_sched_park(t, CN_WAIT_WRITE,
                lcn_earliest(c->wtimeout ? start + c->wtimeout : 0, c->wdeadline),
                cn_conn_unwait, c);
  cn_conn_wait_write(c, cn_sched_waiter(t));
  return 0;
}


static int write_fail(lua_State *L, int err, size_t off) {
  lcn_op_done();
  lcn_fail(L, err);
  lua_pushnumber(L, (double)off);
  return 3;
}


/* conn:write(data [, offset]) -> count | nil, err, count_sent
** data is a string or a table of strings (sent as one writev). Queues the
** bytes from offset on; parks while the write chain is above its
** high-water mark. Returns the total length once all is queued. */
static int conn_write(lua_State *L) {
  cn_conn_t *c = check_conn(L, 1);
  size_t total = lcn_data_len(L, 2);
  size_t off = (size_t)luaL_optinteger(L, 3, 0);
  int err;
  if (c == NULL)
    return 2;
  while (off < total) {
    size_t room = (size_t)cn_conn_writable(c), n = total - off;
    if (c->werr != 0)
      return write_fail(L, c->werr, off);
    if (c->flags & CN_CONN_WSHUT)
      return write_fail(L, CN_ECLOSED, off);
    if (room > 0) {
      if (n > room)
        n = room;
      if ((err = lcn_data_spans(L, 2, off, n, append_span, c)) < 0)
        return write_fail(L, err, off);
      off += n;
      continue;
    }
    if ((err = lcn_conn_park_write(L, c, "conn:write")) < 0)
      return write_fail(L, err, off);
    lua_pushboolean(L, 0);
    lua_pushnumber(L, (double)off);
    return 2;
  }
  lcn_op_done();
  lua_pushnumber(L, (double)total);
  return 1;
}


/* -- Copying between connections ---------------------------------------- */

typedef struct {
  cn_pump_t p;
  uint64_t seen; /* bytes moved when the idle timer was last armed */
} pump_box;

#define PUMP_MT "coronet.pump"


static int pump_gc(lua_State *L) {
  pump_box *pb = luaL_checkudata(L, 1, PUMP_MT);
  if (!pb->p.done)
    cn_pump_stop(&pb->p);
  return 0;
}


static int pump_result(lua_State *L, pump_box *pb, int err) {
  lcn_op_done();
  if (!pb->p.done)
    cn_pump_stop(&pb->p);
  lua_pushnumber(L, (double)pb->p.moved);
  if (err == 0)
    return 1;
  lua_pushstring(L, cn_strerror(err));
  return 2;
}


/* pump_park parks the task until the pump ends, or it saw no progress for
** the read timeout, or a deadline passes. */
static int pump_park(lua_State *L, pump_box *pb) {
  cn_task_t *t = cn_sched_task(L, "copy");
  cn_conn_t *src = pb->p.src, *dst = pb->p.dst;
  uint64_t idle = 0;
  if (src->rtimeout) {
    if (cn_sched_timed_out(t) && pb->p.moved == pb->seen)
      return pump_result(L, pb, CN_ETIMEOUT);
    idle = uv_now(&src->w->loop) + src->rtimeout;
    pb->seen = pb->p.moved;
  } else if (cn_sched_timed_out(t)) {
    return pump_result(L, pb, CN_ETIMEOUT);
  }
  cn_sched_op_start(t);
  pb->p.waiter = cn_sched_waiter(t);
  cn_sched_park(t, CN_WAIT_READ,
                lcn_earliest(idle, lcn_earliest(src->rdeadline,
                                                dst->wdeadline)),
                NULL, NULL);
  lua_pushboolean(L, 0);
  lua_pushvalue(L, 1);
  return 2;
}


/* pump(dst, src [, limit]) -> count | nil, err | false, pump
** Starts moving src's input to dst inside the host. Call pump_wait(pump)
** after each wake. */
static int conn_pump(lua_State *L) {
  cn_conn_t *dst = check_conn(L, 1), *src;
  lua_Number limit = luaL_optnumber(L, 3, -1);
  pump_box *pb;
  if (dst == NULL || (src = check_conn(L, 2)) == NULL)
    return 2;
  if (read_busy(L, src))
    return 2;
  if (cn_conn_writing(dst))
    return lcn_fail(L, CN_EBUSYW);
  pb = lua_newuserdata(L, sizeof *pb);
  memset(pb, 0, sizeof *pb);
  luaL_getmetatable(L, PUMP_MT);
  lua_setmetatable(L, -2);
  lua_replace(L, 1);
  pb->p.src = src;
  pb->p.dst = dst;
  pb->p.limit = limit < 0 ? -1 : (int64_t)limit;
  cn_pump_start(&pb->p);
  if (pb->p.done)
    return pump_result(L, pb, pb->p.err);
  return pump_park(L, pb);
}


/* hand_off(conn) -> true | false
** io.copy(conn, conn) as the last act of the handler task that owns conn
** (an echo): when conn has no time limits and nothing else reads or
** writes it, the host takes the copy over with a pump that closes conn
** when it ends, and the task may end without closing conn: an idle echo
** then costs no task and no coroutine. conn's Lua object works on as
** while a task copies (and its collection no longer closes conn); time
** limits set later do not bind the pump. false: nothing changed, copy as
** usual. */
static int conn_hand_off(lua_State *L) {
  conn_box *b = luaL_checkudata(L, 1, LCN_CONN_MT);
  cn_conn_t *c = b->c;
  cn_pump_t *p;
  int ok = c != NULL && c->task != NULL && c->task == c->w->current &&
           cn_sched_thread(c->task) == L && !cn_conn_reading(c) &&
           !cn_conn_writing(c) && c->rtimeout == 0 && c->rdeadline == 0 &&
           c->wdeadline == 0 && !(c->flags & (CN_CONN_CLOSED | CN_CONN_WSHUT));
  if (!ok || (p = cn_pump_owned(c, c)) == NULL) {
    lua_pushboolean(L, 0);
    return 1;
  }
  disown(c);
  cn_pump_start(p);
  lua_pushboolean(L, 1);
  return 1;
}


/* pump_wait(pump) -> count | nil, err | false, pump */
static int conn_pump_wait(lua_State *L) {
  pump_box *pb = luaL_checkudata(L, 1, PUMP_MT);
  if (pb->p.done)
    return pump_result(L, pb, pb->p.err);
  return pump_park(L, pb);
}


/* -- Closing, time limits, addresses ----------------------------------- */


/* conn:close() -> true
** Closes the connection; parked readers and writers get "closed"; bytes
** already written are still sent. */
static int conn_close(lua_State *L) {
  conn_box *b = luaL_checkudata(L, 1, LCN_CONN_MT);
  if (b->c != NULL)
    cn_conn_close(b->c);
  lua_pushboolean(L, 1);
  return 1;
}


/* conn:close_write() -> true | nil, err
** Half-close: sends EOF to the peer once written bytes are out; reading
** goes on. */
static int conn_close_write(lua_State *L) {
  cn_conn_t *c = check_conn(L, 1);
  int err;
  if (c == NULL)
    return 2;
  if ((err = cn_conn_close_write(c)) < 0)
    return lcn_fail(L, err);
  lua_pushboolean(L, 1);
  return 1;
}


static uint64_t opt_ms(lua_State *L, int idx) {
  lua_Number s = luaL_optnumber(L, idx, 0);
  luaL_argcheck(L, s >= 0, idx, "timeout must not be negative");
  return s > 0 ? (uint64_t)(s * 1000 + 0.999) : 0;
}


/* conn:set_timeout(read_s [, write_s]) -> conn
** Bounds each read and each write; nil or 0 means no bound. */
static int conn_set_timeout(lua_State *L) {
  conn_box *b = luaL_checkudata(L, 1, LCN_CONN_MT);
  uint64_t r = opt_ms(L, 2), w = lua_isnoneornil(L, 3) ? r : opt_ms(L, 3);
  if (b->c != NULL) {
    b->c->rtimeout = r;
    b->c->wtimeout = w;
  }
  lua_settop(L, 1);
  return 1;
}


static void set_deadline(lua_State *L, int read, int write) {
  conn_box *b = luaL_checkudata(L, 1, LCN_CONN_MT);
  uint64_t at = 0;
  if (!lua_isnoneornil(L, 2))
    at = lcn_deadline_at(L, luaL_checknumber(L, 2));
  if (b->c == NULL)
    return;
  if (read)
    b->c->rdeadline = at;
  if (write)
    b->c->wdeadline = at;
  cn_conn_kick(b->c); /* parked operations recompute their deadline */
  lua_settop(L, 1);
}


/* conn:set_deadline(t) -> conn
** Reads and writes fail with "timeout" once now() passes t; nil clears. */
static int conn_set_deadline(lua_State *L) {
  set_deadline(L, 1, 1);
  return 1;
}


static int conn_set_read_deadline(lua_State *L) {
  set_deadline(L, 1, 0);
  return 1;
}


static int conn_set_write_deadline(lua_State *L) {
  set_deadline(L, 0, 1);
  return 1;
}


static int push_addr(lua_State *L, int local) {
  conn_box *b = luaL_checkudata(L, 1, LCN_CONN_MT);
  const struct sockaddr_in6 *peer = b->c != NULL ? &b->c->peer : &b->peer;
  char buf[CN_ADDRSTRLEN];
  cn_conn_t *c;
  int err;
  if (!local && peer->sin6_family != 0) { /* known, even after close */
    cn_addr_format((const struct sockaddr *)peer, buf, sizeof buf);
    lua_pushstring(L, buf);
    return 1;
  }
  if ((c = check_conn(L, 1)) == NULL)
    return 2;
  if ((err = cn_conn_addr(c, local, buf, sizeof buf)) < 0)
    return lcn_fail(L, err);
  lua_pushstring(L, buf);
  return 1;
}


/* conn:remote_addr() -> "host:port" (still known after close) */
static int conn_remote_addr(lua_State *L) { return push_addr(L, 0); }

/* conn:local_addr() -> "host:port" */
static int conn_local_addr(lua_State *L) { return push_addr(L, 1); }


/* conn:id() -> number, unique in this process, as in the logs (also
** after close) */
static int conn_id(lua_State *L) {
  conn_box *b = luaL_checkudata(L, 1, LCN_CONN_MT);
  lua_pushnumber(L, (double)b->id);
  return 1;
}


static int conn_tostring(lua_State *L) {
  conn_box *b = luaL_checkudata(L, 1, LCN_CONN_MT);
  if (b->c == NULL)
    lua_pushstring(L, "coronet.conn (closed)");
  else
    lua_pushfstring(L, "coronet.conn %d", (int)b->c->id);
  return 1;
}


static int conn_gc(lua_State *L) {
  conn_box *b = luaL_checkudata(L, 1, LCN_CONN_MT);
  cn_conn_t *c = b->c;
  if (c != NULL) {
    c->data = NULL;
    b->c = NULL;
    if (c->pump_out != NULL && c->pump_out->owned)
      return 0; /* a handed-off echo runs on without its object */
    disown(c); /* the owner may end after the state is gone */
    cn_conn_close(c);
  }
  return 0;
}


static const luaL_Reg methods[] = {
  {"read", conn_read},
  {"read_full", conn_read_full},
  {"peek", conn_peek},
  {"read_line", conn_read_line},
  {"read_until", conn_read_until},
  {"buffered", conn_buffered},
  {"write", conn_write},
  {"close", conn_close},
  {"close_write", conn_close_write},
  {"set_timeout", conn_set_timeout},
  {"set_deadline", conn_set_deadline},
  {"set_read_deadline", conn_set_read_deadline},
  {"set_write_deadline", conn_set_write_deadline},
  {"remote_addr", conn_remote_addr},
  {"local_addr", conn_local_addr},
  {"id", conn_id},
  {NULL, NULL}};

static const luaL_Reg funcs[] = {{"pump", conn_pump},
                                 {"pump_wait", conn_pump_wait},
                                 {"hand_off", conn_hand_off},
                                 {NULL, NULL}};


/* luaopen_coronet_conn returns {methods = ..., metatable = ..., pump = ...,
** pump_wait = ..., block_size = ...}; the methods table is the
** connections' __index, for lua/coronet/conn.lua to wrap. */
int luaopen_coronet_conn(lua_State *L) {
  lcn_class(L, PUMP_MT, NULL, pump_gc, NULL);
  lua_pop(L, 2);
  lcn_class(L, LCN_CONN_MT, methods, conn_gc, conn_tostring);
  lua_newtable(L);
  luaL_register(L, NULL, funcs);
  lua_pushnumber(L, CN_BLOCK_DATA);
  lua_setfield(L, -2, "block_size"); /* read's default size */
  lua_insert(L, -3); /* module, metatable, methods */
  lua_setfield(L, -3, "methods");
  lua_setfield(L, -2, "metatable");
  return 1;
}
