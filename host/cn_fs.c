/* cn_fs.c: files on libuv's thread pool: open, read, write, stat, close
** and unlink, one request at a time per file, none of them on the loop
** thread. Lua binding in lcn_fs.c. */
#include <stdlib.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>

#include "cn.h"

static void fs_cb(uv_fs_t *req);


/* cn_file_new returns an idle file that is not open, or NULL. */
cn_file_t *cn_file_new(cn_worker_t *w) {
  cn_file_t *f = calloc(1, sizeof *f);
  if (f == NULL)
    return NULL;
  f->w = w;
  f->fd = -1;
  f->req.data = f;
  return f;
}


static void file_free(cn_file_t *f) {
  free(f->buf);
  free(f);
}


static void wake(cn_file_t *f) {
  cn_waiter_t *wt = f->waiter;
  if (wt != NULL) {
    f->waiter = NULL;
    wt->wake(wt);
  }
}


/* started records op as in flight, or the failure to submit it. */
static int started(cn_file_t *f, int op, int rc) {
  if (rc < 0) {
    uv_fs_req_cleanup(&f->req);
    return rc;
  }
  f->op = op;
  return 0;
}


static int start_close(cn_file_t *f) {
  int fd = f->fd;
  f->fd = -1;
  f->close_after = 0;
  return started(f, CN_FS_CLOSE, uv_fs_close(&f->w->loop, &f->req, fd, fs_cb));
}


static int start_write(cn_file_t *f) {
  uv_buf_t b = uv_buf_init(f->buf + f->wdone, (unsigned)(f->wlen - f->wdone));
  int64_t at = f->seekable && !f->append ? f->pos : -1;
  return started(f, CN_FS_WRITE,
                 uv_fs_write(&f->w->loop, &f->req, f->fd, &b, 1, at, fs_cb));
}


static void fail(cn_file_t *f, int op, int err) {
  f->err = err;
  f->err_op = op;
}


/* done applies the result of request op; returns 1 when a follow-up
** request was started instead of finishing. */
static int done(cn_file_t *f, int op, ssize_t r) {
  int rc = 0;
  if (r < 0 && op != CN_FS_OPENSTAT) {
    fail(f, op, (int)r);
    cn_file_trim(f);
    return 0;
  }
  switch (op) {
  case CN_FS_OPEN:
    f->fd = (uv_file)r;
    rc = uv_fs_fstat(&f->w->loop, &f->req, f->fd, fs_cb);
    return started(f, CN_FS_OPENSTAT, rc) == 0;
  case CN_FS_OPENSTAT:
    f->seekable = r == 0 && (S_ISREG(f->st.st_mode) || S_ISBLK(f->st.st_mode));
    return 0;
  case CN_FS_READ:
    f->off = 0;
    f->len = (size_t)r;
    f->eof = r == 0;
    cn_file_trim(f); /* at the end, nothing was read */
    return 0;
  case CN_FS_WRITE:
    f->wdone += (size_t)r;
    if (f->seekable && !f->append)
      f->pos += r;
    if (f->wdone >= f->wlen) {
      cn_file_trim(f);
      return 0;
    }
    if (r == 0) {
      fail(f, op, UV_EIO); /* no progress: do not spin */
      return 0;
    }
    if ((rc = start_write(f)) < 0)
      fail(f, op, rc);
    return rc == 0;
  default:
    return 0;
  }
}


/* op_end finishes a request: a close asked meanwhile starts, an abandoned
** file is freed, the waiter wakes. */
static void op_end(cn_file_t *f) {
  if (f->abandoned || f->close_after) {
    if (f->fd >= 0 && start_close(f) == 0) {
      if (!f->abandoned)
        wake(f);
      return;
    }
    if (f->abandoned) {
      file_free(f);
      return;
    }
  }
  wake(f);
}


static void fs_cb(uv_fs_t *req) {
  cn_file_t *f = req->data;
  int op = f->op;
  ssize_t r = req->result;
  if ((op == CN_FS_OPENSTAT || op == CN_FS_STAT) && r == 0)
    f->st = req->statbuf;
  uv_fs_req_cleanup(req);
  f->op = CN_FS_IDLE;
  if (done(f, op, r))
    return;
  op_end(f);
}


/* cn_file_open opens path with flags (O_*) and mode on the thread pool,
** then reads its status into st. Returns 0, or an error if the request
** could not start; when it ends, fd >= 0 or err is set. */
int cn_file_open(cn_file_t *f, const char *path, int flags, int mode) {
  f->append = (flags & O_APPEND) != 0;
  return started(f, CN_FS_OPEN,
                 uv_fs_open(&f->w->loop, &f->req, path, flags, mode, fs_cb));
}


/* -- Regular files under a directory ------------------------------------ */

/* An open_under job runs on the thread pool with libuv's synchronous
** calls (the loop pointer is only stored by them). */
typedef struct {
  uv_work_t work;
  cn_file_t *f;
  uv_file fd;
  int err;
  uv_stat_t st;
  const char *root;
  char path[1]; /* path, NUL, root, NUL */
} open_job;


/* resolve sets *out to path with symlinks, "." and ".." resolved (the
** caller frees it), or returns an error. */
static int resolve(uv_loop_t *loop, const char *path, char **out) {
  uv_fs_t req;
  int rc = uv_fs_realpath(loop, &req, path, NULL);
  *out = NULL;
  if (rc == 0 && (*out = malloc(strlen(req.ptr) + 1)) != NULL)
    strcpy(*out, req.ptr);
  uv_fs_req_cleanup(&req);
  return rc < 0 ? rc : *out == NULL ? UV_ENOMEM : 0;
}


/* open_regular opens real, which must be a regular file, without ever
** waiting for a FIFO's writer or a device (O_NONBLOCK, then cleared). */
static void open_regular(open_job *j, uv_loop_t *loop, const char *real) {
  uv_fs_t req;
  int rc = uv_fs_open(loop, &req, real, O_RDONLY | O_NOFOLLOW | O_NONBLOCK,
                      0, NULL);
  uv_fs_req_cleanup(&req);
  if (rc < 0) {
    j->err = rc;
    return;
  }
  j->fd = rc;
  rc = uv_fs_fstat(loop, &req, j->fd, NULL);
  j->st = req.statbuf;
  uv_fs_req_cleanup(&req);
  if (rc == 0 && !S_ISREG(j->st.st_mode))
    rc = UV_EFTYPE;
  if (rc == 0 && fcntl(j->fd, F_SETFL, fcntl(j->fd, F_GETFL) & ~O_NONBLOCK) < 0)
    rc = UV_EIO;
  if (rc < 0) {
    uv_fs_close(loop, &req, j->fd, NULL);
    uv_fs_req_cleanup(&req);
    j->fd = -1;
    j->err = rc;
  }
}


static void open_under_work(uv_work_t *work) {
  open_job *j = work->data;
  uv_loop_t *loop = &j->f->w->loop;
  char *root = NULL, *real = NULL;
  size_t n;
  if ((j->err = resolve(loop, j->root, &root)) == 0
      && (j->err = resolve(loop, j->path, &real)) == 0) {
    n = strlen(root);
    n -= n > 0 && root[n - 1] == '/'; /* root is "/" */
    if (strncmp(real, root, n) != 0 || real[n] != '/')
      j->err = UV_EACCES; /* outside root, or root itself */
    else
      open_regular(j, loop, real);
  }
  free(root);
  free(real);
}


static void open_under_done(uv_work_t *work, int status) {
  open_job *j = work->data;
  cn_file_t *f = j->f;
  f->op = CN_FS_IDLE;
  if (status < 0)
    j->err = status; /* cancelled: it never ran */
  if (j->err < 0) {
    fail(f, CN_FS_OPEN, j->err);
  } else {
    f->fd = j->fd;
    f->st = j->st;
    f->seekable = 1;
  }
  free(j);
  op_end(f);
}


/* cn_file_open_under opens path for reading on the thread pool, only if it
** is a regular file whose real location (every symlink resolved) lies
** inside root; never waiting on a FIFO or a device. Fails with UV_EACCES
** outside root, UV_EFTYPE for anything but a regular file, or the OS's
** error (UV_ENOENT, UV_EMFILE...). */
int cn_file_open_under(cn_file_t *f, const char *path, const char *root) {
  size_t n = strlen(path), m = strlen(root);
  open_job *j = malloc(sizeof *j + n + m + 1);
  int rc;
  if (j == NULL)
    return UV_ENOMEM;
  memcpy(j->path, path, n + 1);
  memcpy(j->path + n + 1, root, m + 1);
  j->root = j->path + n + 1;
  j->f = f;
  j->fd = -1;
  j->err = 0;
  j->work.data = j;
  f->append = 0;
  f->op = CN_FS_OPEN;
  rc = uv_queue_work(&f->w->loop, &j->work, open_under_work, open_under_done);
  if (rc < 0) {
    f->op = CN_FS_IDLE;
    free(j);
  }
  return rc;
}


/* cn_file_read reads up to CN_FILE_BUF bytes at pos into the read-ahead
** buffer, which must be empty. At the end, len stays 0 and eof is set. */
int cn_file_read(cn_file_t *f) { return cn_file_read_max(f, CN_FILE_BUF); }


/* cn_file_read_max is cn_file_read for at most max bytes (1..CN_FILE_BUF):
** a copy to a connection reads no more than the connection takes, so that
** nothing waits in the read-ahead while the connection is full. */
int cn_file_read_max(cn_file_t *f, size_t max) {
  uv_buf_t b;
  if (f->buf == NULL && (f->buf = malloc(CN_FILE_BUF)) == NULL)
    return UV_ENOMEM;
  f->off = f->len = 0;
  f->eof = 0;
  b = uv_buf_init(f->buf, (unsigned)(max < CN_FILE_BUF ? max : CN_FILE_BUF));
  return started(f, CN_FS_READ,
                 uv_fs_read(&f->w->loop, &f->req, f->fd, &b, 1,
                            f->seekable ? f->pos : -1, fs_cb));
}


/* cn_file_trim frees the buffer when it holds nothing and no request
** uses it, so that an idle open file costs no buffer. */
void cn_file_trim(cn_file_t *f) {
  if (f->len == 0 && f->op == CN_FS_IDLE) {
    free(f->buf);
    f->buf = NULL;
    f->off = 0;
  }
}


/* cn_file_wbuf drops the read-ahead and returns the buffer (CN_FILE_BUF
** bytes) for the caller to put the bytes of its next write in, or NULL
** when memory runs out. */
char *cn_file_wbuf(cn_file_t *f) {
  if (f->buf == NULL && (f->buf = malloc(CN_FILE_BUF)) == NULL)
    return NULL;
  f->off = f->len = 0;
  return f->buf;
}


/* cn_file_write writes the first n bytes of the buffer (see cn_file_wbuf)
** at pos, or at the end in append mode, until all are written or an error:
** wdone counts them. */
int cn_file_write(cn_file_t *f, size_t n) {
  f->wlen = n;
  f->wdone = 0;
  f->eof = 0;
  return start_write(f);
}


/* cn_file_stat reads the status of path (NULL: of the open file) into st. */
int cn_file_stat(cn_file_t *f, const char *path) {
  uv_loop_t *loop = &f->w->loop;
  return started(f, CN_FS_STAT,
                 path != NULL ? uv_fs_stat(loop, &f->req, path, fs_cb)
                              : uv_fs_fstat(loop, &f->req, f->fd, fs_cb));
}


/* cn_file_unlink removes path. */
int cn_file_unlink(cn_file_t *f, const char *path) {
  return started(f, CN_FS_UNLINK,
                 uv_fs_unlink(&f->w->loop, &f->req, path, fs_cb));
}


/* cn_file_close closes the file: at once when idle, else after the request
** in flight. Idempotent. Returns 0 or an error from starting the close. */
int cn_file_close(cn_file_t *f) {
  if (f->op != CN_FS_IDLE) {
    f->close_after = f->op != CN_FS_CLOSE;
    return 0;
  }
  if (f->fd < 0)
    return 0;
  return start_close(f);
}


/* cn_file_unwait forgets wt if it waits on file (a cn_cancel_cb). */
void cn_file_unwait(void *file, cn_waiter_t *wt) {
  cn_file_t *f = file;
  if (f->waiter == wt)
    f->waiter = NULL;
}


/* cn_file_release gives f up: it is closed and freed once no request is
** in flight. Nothing is woken any more. */
void cn_file_release(cn_file_t *f) {
  f->abandoned = 1;
  f->waiter = NULL;
  if (f->op != CN_FS_IDLE)
    return;
  if (f->fd >= 0 && start_close(f) == 0)
    return;
  file_free(f);
}
