/* cn_proc.c: child processes with their standard streams as connections.
** Lua binding in lcn_proc.c. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cn.h"


static void proc_closed(uv_handle_t *h) { free(h->data); }


static void exit_cb(uv_process_t *h, int64_t status, int term_signal) {
  cn_proc_t *p = h->data;
  cn_waiter_t *w = p->waiter;
  p->exited = 1;
  p->status = status;
  p->signal = term_signal;
  p->waiter = NULL;
  if (p->abandoned) {
    uv_close((uv_handle_t *)&p->h, proc_closed);
    return;
  }
  if (w != NULL)
    w->wake(w);
}


/* cn_proc_spawn starts file with args (NULL-terminated, args[0] the name)
** and env (NULL: inherit). mode[i] for stdin, stdout, stderr is
** CN_STDIO_IGNORE, _INHERIT or _PIPE; piped streams come back in io[i].
** p must come from malloc. Returns 0, or a UV_E* code after which p is
** freed (later, by libuv's close callback). */
int cn_proc_spawn(cn_proc_t *p, cn_worker_t *w, const char *file,
                  char **args, char **env, const char *cwd, const int mode[3],
                  cn_conn_t *io[3]) {
  uv_process_options_t o;
  uv_stdio_container_t stdio[3];
  int i, rc;
  memset(p, 0, sizeof *p);
  memset(&o, 0, sizeof o);
  p->w = w;
  for (i = 0; i < 3; i++) {
    io[i] = NULL;
    stdio[i].flags = mode[i] == CN_STDIO_INHERIT ? UV_INHERIT_FD : UV_IGNORE;
    stdio[i].data.fd = i;
    if (mode[i] == CN_STDIO_PIPE) {
      if ((io[i] = cn_conn_new(w, 1)) == NULL) {
        rc = UV_ENOMEM;
        goto fail;
      }
      stdio[i].flags = UV_CREATE_PIPE |
                       (i == 0 ? UV_READABLE_PIPE : UV_WRITABLE_PIPE);
      stdio[i].data.stream = &io[i]->h.stream;
    }
  }
  o.exit_cb = exit_cb;
  o.file = file;
  o.args = args;
  o.env = env;
  o.cwd = cwd;
  o.stdio = stdio;
  o.stdio_count = 3;
  p->h.data = p;
  if ((rc = uv_spawn(&w->loop, &p->h, &o)) < 0) {
    uv_close((uv_handle_t *)&p->h, proc_closed); /* frees p */
    goto fail;
  }
  p->pid = p->h.pid;
  for (i = 1; i < 3; i++)
    if (io[i] != NULL)
      cn_conn_start(io[i]);
  return 0;
fail:
  for (i = 0; i < 3; i++)
    if (io[i] != NULL)
      cn_conn_abort(io[i]);
  return rc;
}


/* cn_proc_kill sends signum to p unless it has exited. */
int cn_proc_kill(cn_proc_t *p, int signum) {
  if (p->exited)
    return UV_ESRCH;
  return uv_process_kill(&p->h, signum);
}


/* cn_proc_release gives p up: freed now if it exited, else once it does. A
** worker shutting down sends SIGTERM to children still running. */
void cn_proc_release(cn_proc_t *p) {
  p->abandoned = 1;
  p->waiter = NULL;
  if (p->exited) {
    uv_close((uv_handle_t *)&p->h, proc_closed);
  } else if (p->w->stopping) {
    uv_process_kill(&p->h, SIGTERM);
    uv_close((uv_handle_t *)&p->h, proc_closed);
  }
}
