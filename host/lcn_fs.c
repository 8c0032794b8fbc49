/* lcn_fs.c: Lua binding of files (cn_fs.c). As in lcn_conn.c, a call that
** must wait for the thread pool parks the task and returns false; its
** wrapper in lua/coronet/fs.lua yields and calls it again, and the retried
** call finds the result. One request runs per file at a time; a second
** task using a file while a request of the first is in flight gets
** "busy reading" or "busy writing". */
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include <lauxlib.h>
#include <lua.h>

#include "cn.h"
#include "lcn.h"

#define FILE_MT "coronet.file"

/* What the owner of a request waits for. */
enum { W_NONE, W_OPEN, W_READ, W_WRITE, W_SEEK, W_STAT, W_CLOSE, W_PATH };

typedef struct {
  cn_file_t *f;     /* NULL once collected */
  uint64_t owner;   /* id of the task that started the request in flight */
  int want;         /* W_*: what owner waits for */
  int is_file;      /* opened: a file, not a path request */
  int closed;       /* close() was called */
  char path[1];     /* for messages; the box is allocated longer */
} file_box;


static const char *op_name(int op) {
  static const char *const names[] = {"",      "open",  "open", "read",
                                      "write", "stat",  "close", "remove"};
  return op >= 0 && op <= CN_FS_UNLINK ? names[op] : "?";
}


/* fail_path pushes nil and "OP PATH: message" ("eof" alone); returns 2. */
static int fail_path(lua_State *L, file_box *b, const char *op, int err) {
  lcn_op_done();
  if (err == CN_EOF)
    return lcn_fail(L, err);
  lua_pushnil(L);
  lua_pushfstring(L, "%s %s: %s", op, b->path, cn_strerror(err));
  return 2;
}


/* take_err reports (once) the error of the file's last failed request. */
static int take_err(lua_State *L, file_box *b) {
  cn_file_t *f = b->f;
  int err = f->err;
  f->err = 0;
  return fail_path(L, b, op_name(f->err_op), err);
}


static file_box *check_box(lua_State *L, int idx) {
  return luaL_checkudata(L, idx, FILE_MT);
}


/* check_file returns the open file at idx, or NULL after pushing nil,
** "closed". */
static file_box *check_file(lua_State *L, int idx) {
  file_box *b = check_box(L, idx);
  if (b->f == NULL || !b->is_file || b->closed) {
    lcn_op_done();
    lcn_fail(L, CN_ECLOSED);
    return NULL;
  }
  return b;
}


/* self_id returns the running task's id, 0 outside tasks. */
static uint64_t self_id(void) {
  cn_task_t *t = cn_worker_self()->current;
  return t != NULL ? cn_sched_task_id(t) : 0;
}


/* park parks task t (from cn_sched_task, taken before the request was
** started) until b's request ends; pushes false. */
static int park(lua_State *L, file_box *b, int want, cn_task_t *t) {
  b->owner = cn_sched_task_id(t);
  b->want = want;
  cn_sched_op_start(t);
  b->f->waiter = cn_sched_waiter(t);
  cn_sched_park(t, CN_WAIT_FILE, 0, cn_file_unwait, b->f);
  lua_pushboolean(L, 0);
  return 1;
}


/* busy returns 0 when no request of b is in flight. Otherwise it pushes
** false after parking again (a retry by the owner woken early) or nil,
** busy_err, and returns the count pushed. */
static int busy(lua_State *L, file_box *b, int busy_err, const char *what) {
  if (b->f->op == CN_FS_IDLE)
    return 0;
  if (b->owner == self_id() && b->f->waiter == NULL)
    return park(L, b, b->want, cn_sched_task(L, what));
  lcn_op_done();
  return lcn_fail(L, busy_err);
}


/* own says whether the calling task is collecting the end of its own
** request for want; any other leftover expectation is dropped. */
static int own(file_box *b, int want) {
  int mine = b->want == want && b->owner == self_id();
  b->want = W_NONE;
  return mine;
}


static file_box *new_box(lua_State *L, const char *path, size_t len) {
  file_box *b = lua_newuserdata(L, sizeof *b + len);
  memset(b, 0, sizeof *b);
  memcpy(b->path, path, len + 1);
  luaL_getmetatable(L, FILE_MT);
  lua_setmetatable(L, -2);
  b->f = cn_file_new(cn_worker_self());
  return b;
}


static void set_time(lua_State *L, const char *k, uv_timespec_t ts) {
  lua_pushnumber(L, (double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
  lua_setfield(L, -2, k);
}


static const char *type_name(uint64_t mode) {
  switch (mode & S_IFMT) {
  case S_IFREG: return "file";
  case S_IFDIR: return "directory";
  case S_IFLNK: return "link";
  case S_IFIFO: return "fifo";
  case S_IFSOCK: return "socket";
  case S_IFCHR: return "char";
  case S_IFBLK: return "block";
  default: return "other";
  }
}


/* push_stat pushes {size=, type=, mode=, mtime=, atime=, ctime=, ino=,
** dev=, nlink=, uid=, gid=}; times in seconds since the epoch. */
static int push_stat(lua_State *L, const uv_stat_t *st) {
  lcn_op_done();
  lua_createtable(L, 0, 11);
  lcn_set_number(L, "size", (double)st->st_size);
  lua_pushstring(L, type_name(st->st_mode));
  lua_setfield(L, -2, "type");
  lcn_set_number(L, "mode", (double)(st->st_mode & 07777));
  set_time(L, "mtime", st->st_mtim);
  set_time(L, "atime", st->st_atim);
  set_time(L, "ctime", st->st_ctim);
  lcn_set_number(L, "ino", (double)st->st_ino);
  lcn_set_number(L, "dev", (double)st->st_dev);
  lcn_set_number(L, "nlink", (double)st->st_nlink);
  lcn_set_number(L, "uid", (double)st->st_uid);
  lcn_set_number(L, "gid", (double)st->st_gid);
  return 1;
}


/* -- Path requests: open, stat, remove ----------------------------------- */


/* parse_mode turns "r", "w", "a" with "+", "x" (exclusive create) or "b"
** (ignored) after them into open flags. */
static int parse_mode(lua_State *L, int idx) {
  const char *m = luaL_optstring(L, idx, "r");
  int flags, rw = 0, excl = 0;
  switch (*m) {
  case 'r': flags = 0; break;
  case 'w': flags = O_CREAT | O_TRUNC; break;
  case 'a': flags = O_CREAT | O_APPEND; break;
  default: return lcn_argerror(L, idx, "open", "invalid mode");
  }
  for (m++; *m != '\0'; m++) {
    if (*m == '+')
      rw = 1;
    else if (*m == 'x' && (flags & O_TRUNC))
      excl = O_EXCL;
    else if (*m != 'b')
      return lcn_argerror(L, idx, "open", "invalid mode");
  }
  if (rw)
    flags |= O_RDWR;
  else
    flags |= flags == 0 ? O_RDONLY : O_WRONLY;
  return flags | excl;
}


/* start_path makes a request box for the path at 1 and starts op on it;
** pushes false, box (then call finish(box) after each wake), or nil, err. */
static int start_path(lua_State *L, int want, const char *what, int flags,
                      int mode, const char *root) {
  size_t len;
  const char *path = luaL_checklstring(L, 1, &len);
  cn_task_t *t = cn_sched_task(L, what);
  file_box *b = new_box(L, path, len);
  int rc;
  if (b->f == NULL)
    return fail_path(L, b, what + 3, CN_ENOMEM);
  if (want == W_OPEN && root != NULL)
    rc = cn_file_open_under(b->f, path, root);
  else if (want == W_OPEN)
    rc = cn_file_open(b->f, path, flags, mode);
  else if (want == W_STAT)
    rc = cn_file_stat(b->f, path);
  else
    rc = cn_file_unlink(b->f, path);
  if (rc < 0)
    return fail_path(L, b, what + 3, rc);
  park(L, b, want, t);
  lua_insert(L, -2);
  return 2;
}


/* open(path [, mode [, perm]]) -> false, req | nil, err */
static int fs_open(lua_State *L) {
  int flags = parse_mode(L, 2);
  lua_Integer perm = luaL_optinteger(L, 3, 0666);
  return start_path(L, W_OPEN, "fs.open", flags, (int)perm, NULL);
}


/* open_under(path, root) -> false, req | nil, err
** Opens path for reading only if it is a regular file inside root. */
static int fs_open_under(lua_State *L) {
  const char *root = luaL_checkstring(L, 2);
  return start_path(L, W_OPEN, "fs.open", 0, 0, root);
}


/* stat(path) -> false, req | nil, err */
static int fs_stat(lua_State *L) {
  return start_path(L, W_STAT, "fs.stat", 0, 0, NULL);
}


/* remove(path) -> false, req | nil, err */
static int fs_remove(lua_State *L) {
  return start_path(L, W_PATH, "fs.remove", 0, 0, NULL);
}


/* finish(req) -> result | nil, err | false, req
** open's result is the file, stat's a table, remove's true. */
static int fs_finish(lua_State *L) {
  file_box *b = check_box(L, 1);
  cn_file_t *f = b->f;
  int want = b->want;
  if (f == NULL || b->is_file)
    return luaL_argerror(L, 1, "not a pending request");
  if (f->op != CN_FS_IDLE) {
    if (busy(L, b, CN_EBUSYR, "fs") != 1)
      return 2;
    lua_pushvalue(L, 1);
    return 2;
  }
  own(b, want);
  if (f->err != 0)
    return take_err(L, b);
  lcn_op_done();
  if (want == W_OPEN) {
    b->is_file = 1;
    lua_settop(L, 1);
    return 1;
  }
  if (want == W_STAT)
    return push_stat(L, &f->st);
  lua_pushboolean(L, 1);
  return 1;
}


/* -- Reading and writing ------------------------------------------------ */


/* push_ahead returns up to n read-ahead bytes. */
static int push_ahead(lua_State *L, cn_file_t *f, size_t n) {
  if (n > f->len)
    n = f->len;
  lua_pushlstring(L, f->buf + f->off, n);
  f->off += n;
  f->len -= n;
  f->pos += (int64_t)n;
  cn_file_trim(f);
  lcn_op_done();
  return 1;
}


/* file:read([n]) -> data | nil, err | false
** Returns 1..n bytes (n defaults to 64 KiB), "eof" at the end. Reads
** ahead a buffer's worth; seek and write drop what was read ahead. */
static int file_read(lua_State *L) {
  file_box *b = check_file(L, 1);
  lua_Integer n = luaL_optinteger(L, 2, CN_FILE_BUF);
  cn_file_t *f;
  cn_task_t *t;
  int k;
  if (b == NULL)
    return 2;
  if (n <= 0)
    lcn_argerror(L, 1, "read", "size must be positive");
  if ((k = busy(L, b, CN_EBUSYR, "file:read")) > 0)
    return k;
  f = b->f;
  own(b, W_READ);
  if (f->len > 0)
    return push_ahead(L, f, (size_t)n);
  if (f->err != 0)
    return take_err(L, b);
  if (f->eof) {
    f->eof = 0;
    return fail_path(L, b, "read", CN_EOF);
  }
  t = cn_sched_task(L, "file:read");
  if ((k = cn_file_read(f)) < 0)
    return fail_path(L, b, "read", k);
  return park(L, b, W_READ, t);
}


static int copy_span(void *dst, const char *p, size_t k) {
  char **d = dst;
  memcpy(*d, p, k);
  *d += k;
  return 0;
}


static int write_fail(lua_State *L, file_box *b, int err, size_t count) {
  fail_path(L, b, "write", err);
  lua_pushnumber(L, (double)count);
  return 3;
}


/* file:write(data [, offset]) -> count | nil, err, count_written
**   | false, offset
** data is a string or a table of strings. Writes the bytes from offset on,
** a buffer's worth per request; returns the total once all are written. */
static int file_write(lua_State *L) {
  file_box *b = check_file(L, 1);
  size_t total = lcn_data_len(L, 2), off, k;
  lua_Number o = luaL_optnumber(L, 3, 0);
  cn_file_t *f;
  cn_task_t *t;
  char *p;
  int rc;
  if (b == NULL)
    return 2;
  off = o > 0 ? (size_t)o : 0;
  if ((rc = busy(L, b, CN_EBUSYW, "file:write")) > 0)
    return rc;
  f = b->f;
  if (own(b, W_WRITE)) { /* the slice from off has ended */
    if (f->err != 0) {
      rc = f->err;
      f->err = 0;
      return write_fail(L, b, rc, off + f->wdone);
    }
    off += f->wdone;
  }
  if (off >= total) {
    lcn_op_done();
    lua_pushnumber(L, (double)total);
    return 1;
  }
  t = cn_sched_task(L, "file:write");
  if ((p = cn_file_wbuf(f)) == NULL)
    return write_fail(L, b, CN_ENOMEM, off);
  k = total - off < CN_FILE_BUF ? total - off : CN_FILE_BUF;
  lcn_data_spans(L, 2, off, k, copy_span, &p);
  f->err = 0;
  if ((rc = cn_file_write(f, k)) < 0)
    return write_fail(L, b, rc, off);
  park(L, b, W_WRITE, t);
  lua_pushnumber(L, (double)off);
  return 2;
}


/* file:seek([whence [, offset]]) -> position | nil, err | false
** whence is "set", "cur" (default) or "end"; as Lua's file:seek. */
static int file_seek(lua_State *L) {
  static const char *const names[] = {"set", "cur", "end", NULL};
  file_box *b = check_file(L, 1);
  int whence = lcn_option(L, 2, "cur", names, 1, "seek"), rc;
  lua_Number off = luaL_optnumber(L, 3, 0), base;
  cn_file_t *f;
  int64_t at;
  if (b == NULL)
    return 2;
  if ((rc = busy(L, b, CN_EBUSYR, "file:seek")) > 0)
    return rc;
  f = b->f;
  if (!f->seekable)
    return fail_path(L, b, "seek", UV_ESPIPE);
  if (whence == 2 && !own(b, W_SEEK)) {
    cn_task_t *t = cn_sched_task(L, "file:seek");
    f->err = 0;
    if ((rc = cn_file_stat(f, NULL)) < 0)
      return fail_path(L, b, "seek", rc);
    return park(L, b, W_SEEK, t);
  }
  b->want = W_NONE;
  if (f->err != 0)
    return take_err(L, b);
  base = whence == 0 ? 0 : whence == 1 ? (lua_Number)f->pos
                                       : (lua_Number)f->st.st_size;
  if (base + off < 0)
    return fail_path(L, b, "seek", UV_EINVAL);
  at = (int64_t)(base + off);
  if (at != f->pos) {
    f->pos = at;
    f->len = 0;
    cn_file_trim(f);
  }
  f->eof = 0;
  lcn_op_done();
  lua_pushnumber(L, (double)at);
  return 1;
}


/* file:stat() -> table (see push_stat) | nil, err | false */
static int file_stat(lua_State *L) {
  file_box *b = check_file(L, 1);
  cn_file_t *f;
  cn_task_t *t;
  int rc;
  if (b == NULL)
    return 2;
  if ((rc = busy(L, b, CN_EBUSYR, "file:stat")) > 0)
    return rc;
  f = b->f;
  if (own(b, W_STAT)) {
    if (f->err != 0)
      return take_err(L, b);
    return push_stat(L, &f->st);
  }
  t = cn_sched_task(L, "file:stat");
  f->err = 0;
  if ((rc = cn_file_stat(f, NULL)) < 0)
    return fail_path(L, b, "stat", rc);
  return park(L, b, W_STAT, t);
}


/* file:close() -> true | nil, err | false
** Closes the file once a request in flight ends; other calls then get
** "closed". A task waits for the close and sees its error, unless another
** task waits on the file already. Idempotent. */
static int file_close(lua_State *L) {
  file_box *b = check_box(L, 1);
  cn_file_t *f = b->f;
  cn_task_t *t;
  int rc;
  if (f == NULL || !b->is_file)
    goto ok;
  if (!b->closed) {
    b->closed = 1;
    if (f->op == CN_FS_IDLE)
      f->err = 0; /* nobody collected it: forget */
    if ((rc = cn_file_close(f)) < 0)
      return fail_path(L, b, "close", rc);
  }
  if (f->op != CN_FS_IDLE) {
    if ((t = cn_worker_self()->current) == NULL || f->waiter != NULL)
      goto ok; /* not a task, or another task waits on the file */
    return park(L, b, W_CLOSE, t);
  }
  if (own(b, W_CLOSE) && f->err != 0 && f->err_op == CN_FS_CLOSE)
    return take_err(L, b);
ok:
  lcn_op_done();
  lua_pushboolean(L, 1);
  return 1;
}


/* -- Copying between files and connections ------------------------------ */


static cn_conn_t *check_conn(lua_State *L, int idx) {
  cn_conn_t *c = lcn_to_conn(L, idx);
  return c != NULL && !(c->flags & CN_CONN_CLOSED) ? c : NULL;
}


/* park_writer parks the task until c's write chain drains, a write error,
** close, or c's write deadline. */
static int park_writer(lua_State *L, cn_conn_t *c) {
  int err = lcn_conn_park_write(L, c, "copy");
  if (err < 0) {
    lcn_op_done();
    return lcn_fail(L, err);
  }
  lua_pushboolean(L, 0);
  return 1;
}


/* send_ahead moves read-ahead bytes to c's write chain, as many as it
** takes. */
static int send_ahead(lua_State *L, cn_file_t *f, cn_conn_t *c) {
  int err = c->werr, room;
  size_t k = f->len;
  if (err == 0 && (c->flags & CN_CONN_WSHUT))
    err = CN_ECLOSED;
  if (err != 0) {
    lcn_op_done();
    return lcn_fail(L, err);
  }
  if ((room = cn_conn_writable(c)) == 0)
    return park_writer(L, c);
  if (k > (size_t)room)
    k = (size_t)room;
  if ((err = cn_conn_write(c, f->buf + f->off, k)) < 0) {
    lcn_op_done();
    return lcn_fail(L, err);
  }
  f->off += k;
  f->len -= k;
  f->pos += (int64_t)k;
  cn_file_trim(f);
  lcn_op_done();
  lua_pushnumber(L, (double)k);
  return 1;
}


/* copy_args checks send's and recv's file (which must not be busy with
** busy_err's direction) and connection. Returns 0, or the count of
** failure values it pushed. */
static int copy_args(lua_State *L, file_box **b, cn_conn_t **c, int busy_err) {
  if ((*b = check_file(L, 1)) == NULL)
    return 2;
  if ((*c = check_conn(L, 2)) == NULL) {
    lcn_op_done();
    return lcn_fail(L, CN_ECLOSED);
  }
  return busy(L, *b, busy_err, "copy");
}


/* send(file, conn) -> count | nil, err | false
** Moves the file's next bytes to conn's write chain with no Lua string:
** what was read ahead, as much as the chain takes (parking while it is
** full); when nothing is, reads as much more as the chain takes then, so
** that a peer that does not read holds no file buffer, only its write
** chain (--write-buffer). "eof" at the file's end. */
static int fs_send(lua_State *L) {
  file_box *b;
  cn_conn_t *c;
  cn_file_t *f;
  cn_task_t *t;
  int rc;
  if ((rc = copy_args(L, &b, &c, CN_EBUSYR)) > 0)
    return rc;
  f = b->f;
  own(b, W_READ);
  if (f->len > 0)
    return send_ahead(L, f, c);
  if (f->err != 0)
    return take_err(L, b);
  if (f->eof) {
    f->eof = 0;
    return fail_path(L, b, "read", CN_EOF);
  }
  t = cn_sched_task(L, "copy");
  if ((rc = cn_conn_writable(c)) == 0 && c->werr == 0)
    return park_writer(L, c);
  if ((rc = cn_file_read_max(f, rc > 0 ? (size_t)rc : CN_FILE_BUF)) < 0)
    return fail_path(L, b, "read", rc);
  return park(L, b, W_READ, t);
}


/* recv(file, conn) -> count | nil, err | false
** Writes what conn has buffered (up to 64 KiB) to the file with no Lua
** string, parking until some arrives and until the write ends. "eof" at
** conn's end of input. */
static int fs_recv(lua_State *L) {
  file_box *b;
  cn_conn_t *c;
  cn_file_t *f;
  cn_task_t *t;
  size_t k;
  int rc;
  if ((rc = copy_args(L, &b, &c, CN_EBUSYW)) > 0)
    return rc;
  f = b->f;
  if (own(b, W_WRITE)) {
    if (f->err != 0)
      return take_err(L, b);
    lcn_op_done();
    lua_pushnumber(L, (double)f->wdone);
    return 1;
  }
  if (cn_conn_reading(c)) {
    lcn_op_done();
    return lcn_fail(L, CN_EBUSYR);
  }
  if (c->in.len == 0)
    return lcn_conn_park_read(L, c, "copy"); /* or fails at its EOF */
  t = cn_sched_task(L, "copy");
  if (cn_file_wbuf(f) == NULL)
    return fail_path(L, b, "write", CN_ENOMEM);
  k = c->in.len < CN_FILE_BUF ? c->in.len : CN_FILE_BUF;
  cn_buf_copyout(&c->in, 0, f->buf, k);
  cn_buf_consume(&c->in, k);
  c->skip = 0;
  cn_conn_consumed(c);
  f->err = 0;
  if ((rc = cn_file_write(f, k)) < 0)
    return fail_path(L, b, "write", rc);
  return park(L, b, W_WRITE, t);
}


/* -- The object --------------------------------------------------------- */


static int file_tostring(lua_State *L) {
  file_box *b = check_box(L, 1);
  if (b->is_file)
    lua_pushfstring(L, "coronet.file %s%s", b->path,
                    b->closed ? " (closed)" : "");
  else
    lua_pushfstring(L, "coronet.fsreq %s", b->path);
  return 1;
}


static int file_gc(lua_State *L) {
  file_box *b = check_box(L, 1);
  if (b->f != NULL)
    cn_file_release(b->f);
  b->f = NULL;
  return 0;
}


static const luaL_Reg methods[] = {
  {"read", file_read},   {"write", file_write}, {"seek", file_seek},
  {"stat", file_stat},   {"close", file_close}, {NULL, NULL}};

static const luaL_Reg funcs[] = {
  {"open", fs_open},     {"open_under", fs_open_under},
  {"stat", fs_stat},     {"remove", fs_remove},
  {"finish", fs_finish}, {"send", fs_send}, {"recv", fs_recv},
  {NULL, NULL}};


/* luaopen_coronet_fs returns {open=, stat=, remove=, finish=, send=,
** recv=, methods=, metatable=, buffer_size=}; lua/coronet/fs.lua wraps
** the methods into blocking ones. */
int luaopen_coronet_fs(lua_State *L) {
  lcn_class(L, FILE_MT, methods, file_gc, file_tostring);
  lua_newtable(L);
  luaL_register(L, NULL, funcs);
  lua_insert(L, -3); /* module, metatable, methods */
  lua_setfield(L, -3, "methods");
  lua_setfield(L, -2, "metatable");
  lua_pushnumber(L, CN_FILE_BUF);
  lua_setfield(L, -2, "buffer_size");
  return 1;
}
