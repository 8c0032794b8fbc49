/* cn_proc.c: child processes with their standard streams as connections.
** Children still running when their worker ends get SIGTERM, unless they
** were started detached. Lua binding in lcn_proc.c. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "cn.h"


static void proc_closed(uv_handle_t *h) {
  cn_proc_t *p = h->data;
  if (p->prev != NULL)
    p->prev->next = p->next;
  else if (p->w->procs == p)
    p->w->procs = p->next;
  if (p->next != NULL)
    p->next->prev = p->prev;
  free(p);
}


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


static int start(cn_proc_t *p, cn_worker_t *w, const cn_spawn_t *s,
                 cn_conn_t *io[3]) {
  uv_process_options_t o;
  uv_stdio_container_t stdio[3];
  int i;
  memset(&o, 0, sizeof o);
  for (i = 0; i < 3; i++) {
    stdio[i].flags = s->mode[i] == CN_STDIO_INHERIT ? UV_INHERIT_FD : UV_IGNORE;
    stdio[i].data.fd = i;
    if (s->mode[i] == CN_STDIO_PIPE) {
      if ((io[i] = cn_conn_new(w, 1)) == NULL)
        return UV_ENOMEM;
      stdio[i].flags = UV_CREATE_PIPE |
                       (i == 0 ? UV_READABLE_PIPE : UV_WRITABLE_PIPE);
      stdio[i].data.stream = &io[i]->h.stream;
    }
  }
  o.exit_cb = exit_cb;
  o.file = s->args[0];
  o.args = s->args;
  o.env = s->env;
  o.cwd = s->cwd;
  o.stdio = stdio;
  o.stdio_count = 3;
  o.flags = s->detached ? UV_PROCESS_DETACHED : 0;
  p->h.data = p;
  p->w = w;
  return uv_spawn(&w->loop, &p->h, &o);
}


/* cn_proc_spawn starts s->args[0] (looked up in PATH) with s->args. Piped
** streams come back in io[i] (stdin, stdout, stderr), the others NULL.
** p must come from malloc. Returns 0, or a UV_E* code after which p is
** freed (perhaps later, by libuv's close callback). */
int cn_proc_spawn(cn_proc_t *p, cn_worker_t *w, const cn_spawn_t *s,
                  cn_conn_t *io[3]) {
  int i, rc;
  memset(p, 0, sizeof *p);
  io[0] = io[1] = io[2] = NULL;
  if ((rc = start(p, w, s, io)) < 0) {
    for (i = 0; i < 3; i++)
      if (io[i] != NULL)
        cn_conn_abort(io[i]);
    if (p->h.loop != NULL) /* uv_spawn ran: the handle must close */
      uv_close((uv_handle_t *)&p->h, proc_closed);
    else
      free(p);
    return rc;
  }
  p->pid = p->h.pid;
  p->detached = s->detached;
  if (s->detached)
    uv_unref((uv_handle_t *)&p->h);
  p->next = w->procs;
  if (w->procs != NULL)
    w->procs->prev = p;
  w->procs = p;
  for (i = 1; i < 3; i++)
    if (io[i] != NULL)
      cn_conn_start(io[i]);
  return 0;
}


/* cn_proc_kill sends signum to p unless it has exited. */
int cn_proc_kill(cn_proc_t *p, int signum) {
  if (p->exited)
    return UV_ESRCH;
  return uv_process_kill(&p->h, signum);
}


/* cn_proc_release gives p up: freed now if it exited, else once it does. */
void cn_proc_release(cn_proc_t *p) {
  p->abandoned = 1;
  p->waiter = NULL;
  if (p->exited)
    uv_close((uv_handle_t *)&p->h, proc_closed);
}


/* cn__proc_close_all ends worker w's children at its exit: SIGTERM to the
** ones still running (but detached ones), and every handle closed. */
void cn__proc_close_all(cn_worker_t *w) {
  cn_proc_t *p;
  for (p = w->procs; p != NULL; p = p->next) {
    if (uv_is_closing((uv_handle_t *)&p->h))
      continue;
    if (!p->exited && !p->detached)
      uv_process_kill(&p->h, SIGTERM);
    p->abandoned = 1;
    uv_close((uv_handle_t *)&p->h, proc_closed);
  }
}
