/* cn_worker.c: workers and the control thread. Each worker is a thread
** with its own loop, Lua state (lcn_host.c) and listening sockets; the
** control thread binds the addresses, starts the workers, turns signals
** into messages for them, and collects their exit. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cn.h"

enum { W_STARTING, W_READY, W_DONE };

#define DRAIN_MS 2000 /* longest wait at exit for thread-pool work */

typedef struct {
  uv_loop_t loop;
  uv_async_t async;
  uv_signal_t sigint, sigterm, sighup;
  cn_watch_t watch;
  cn_worker_t *workers;
  int *state; /* W_* per worker, under lock */
  int nworkers;
  int announced;
  int stopping;
  uv_mutex_t lock;
  const cn_config_t *cfg;
  char (*bound)[CN_ADDRSTRLEN];
  int exit_code;
  int have_code;
} control_t;

static __thread cn_worker_t *current_worker;
static uint64_t next_conn_id;


cn_worker_t *cn_worker_self(void) { return current_worker; }


uint64_t cn_worker_conn_id(void) {
  return __atomic_add_fetch(&next_conn_id, 1, __ATOMIC_RELAXED);
}


/* report tells the control thread that worker w reached state. */
static void report(cn_worker_t *w, int state) {
  control_t *ctl = w->ctl;
  uv_mutex_lock(&ctl->lock);
  ctl->state[w->id - 1] = state;
  uv_mutex_unlock(&ctl->lock);
  uv_async_send(&ctl->async);
}


/* cn_worker_send posts msg (CN_MSG_*) to worker w; safe from any thread. */
void cn_worker_send(cn_worker_t *w, unsigned msg, int signum) {
  uv_mutex_lock(&w->lock);
  w->pending |= msg;
  if (signum != 0)
    w->signum = signum;
  if (!w->closed)
    uv_async_send(&w->async);
  uv_mutex_unlock(&w->lock);
}


/* -- Inside a worker --------------------------------------------------- */


static void finish(cn_worker_t *w) {
  w->stopping = 2;
  uv_stop(&w->loop);
}


static void close_listeners(cn_worker_t *w) {
  while (w->listeners != NULL)
    cn_listener_close(w->listeners);
}


static void abort_conns(cn_worker_t *w) {
  cn_conn_t *c, *next;
  for (c = w->conns; c != NULL; c = next) {
    next = c->next;
    cn_conn_abort(c);
  }
}


static void grace_cb(uv_timer_t *h) {
  cn_worker_t *w = h->data;
  cn_log(CN_LOG_INFO, "worker %d: grace period over, closing %zu connections",
         w->id, w->naccepted);
  finish(w); /* teardown closes them all */
}


/* shutdown stops accepting and lets connections end within the grace
** period. */
static void shutdown_worker(cn_worker_t *w) {
  if (w->stopping)
    return;
  w->stopping = 1;
  close_listeners(w);
  if (w->naccepted == 0 || w->cfg->run) {
    finish(w);
    return;
  }
  cn_log(CN_LOG_INFO, "worker %d: waiting up to %gs for %zu connections",
         w->id, w->cfg->grace, w->naccepted);
  uv_timer_start(&w->grace, grace_cb, (uint64_t)(w->cfg->grace * 1000), 0);
}


void cn__worker_conn_closed(cn_worker_t *w) {
  if (w->stopping == 1 && w->naccepted == 0)
    finish(w);
  else if (!w->stopping)
    cn__listen_resume(w);
}


/* cn_worker_exit ends the whole process with code, at once: os.exit. */
void cn_worker_exit(cn_worker_t *w, int code) {
  w->exit_code = code;
  close_listeners(w);
  finish(w);
}


static void async_cb(uv_async_t *h) {
  cn_worker_t *w = h->data;
  unsigned msg;
  int signum;
  uv_mutex_lock(&w->lock);
  msg = w->pending;
  signum = w->signum;
  w->pending = 0;
  uv_mutex_unlock(&w->lock);
  if ((msg & (CN_MSG_KILL | CN_MSG_STOP)) && w->cfg->run && !w->exit_code)
    w->exit_code = 128 + (signum != 0 ? signum : SIGTERM); /* as a shell */
  if (msg & CN_MSG_KILL) {
    close_listeners(w);
    finish(w);
  } else if (msg & CN_MSG_STOP) {
    shutdown_worker(w);
  }
  if ((msg & CN_MSG_RELOAD) && !w->stopping)
    cn__host_reload(w);
}


/* cn__worker_started is called by the host once the script's main chunk
** ended: ok says whether it gave a handler. Listening starts then. */
void cn__worker_started(cn_worker_t *w, int ok) {
  int i;
  if (!ok) {
    w->exit_code = 1;
    finish(w);
    return;
  }
  for (i = 0; i < w->nfds; i++) {
    cn_listener_t *l;
    cn_addr_t a;
    int rc = cn_listener_start(w, w->fds[i], w->fd_pipe[i], &l);
    if (rc < 0) {
      cn_log(CN_LOG_ERROR, "listen: %s", uv_strerror(rc));
      w->exit_code = 1;
      finish(w);
      return;
    }
    w->fds[i] = -1; /* the listener owns it now */
    if (cn_addr_parse(w->cfg->listen[i], &a) == 0) {
      if (w->fd_pipe[i] && w->id == 1) /* the first worker removes it */
        l->unlink_path = strdup(a.path);
      if (a.tls)
        l->tls = w->cfg->tls;
    }
    cn__host_serve(w, l);
  }
  report(w, W_READY);
}


static void close_walk(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h))
    uv_close(h, NULL);
}


/* drain runs the loop until its handles closed and its thread-pool work
** ended, for at most DRAIN_MS: a file request stuck in the kernel (a FIFO
** nobody opens) must not keep the process from exiting. Returns 0 when the
** loop is idle, else -1 (the loop is then left as it is). */
static int drain(cn_worker_t *w) {
  uint64_t until = uv_hrtime() + (uint64_t)DRAIN_MS * 1000000;
  while (uv_run(&w->loop, UV_RUN_NOWAIT) != 0) {
    if (uv_hrtime() > until) {
      cn_log(CN_LOG_WARN, "worker %d: exiting with file operations still "
                          "running", w->id);
      return -1;
    }
    uv_sleep(1);
  }
  return 0;
}


static void teardown(cn_worker_t *w) {
  int i;
  w->stopping = 3;
  close_listeners(w);
  cn__host_close(w); /* collects every Lua object: conns detach */
  cn__proc_close_all(w);
  abort_conns(w);
  cn_sched_close(w);
  uv_mutex_lock(&w->lock);
  w->closed = 1; /* cn_worker_send must not touch async any more */
  uv_mutex_unlock(&w->lock);
  uv_close((uv_handle_t *)&w->async, NULL);
  uv_close((uv_handle_t *)&w->grace, NULL);
  uv_walk(&w->loop, close_walk, NULL);
  if (drain(w) == 0)
    uv_loop_close(&w->loop);
  cn_pool_close(&w->pool);
  for (i = 0; i < w->nfds; i++)
    if (w->fds[i] >= 0)
      close(w->fds[i]);
}


static void worker_main(void *arg) {
  cn_worker_t *w = arg;
  current_worker = w;
  uv_loop_init(&w->loop);
  cn_pool_init(&w->pool, 256);
  uv_async_init(&w->loop, &w->async, async_cb);
  w->async.data = w;
  uv_timer_init(&w->loop, &w->grace);
  w->grace.data = w;
  if (cn__host_start(w) == 0)
    uv_run(&w->loop, UV_RUN_DEFAULT);
  else
    w->exit_code = 1;
  if (w->stopping != 2) /* the loop ran dry */
    w->stopping = 2;
  teardown(w);
  report(w, W_DONE);
}


/* -- The control thread ------------------------------------------------ */


static void send_all(control_t *ctl, unsigned msg, int signum) {
  int i;
  for (i = 0; i < ctl->nworkers; i++)
    cn_worker_send(&ctl->workers[i], msg, signum);
}


static void watch_cb(void *arg) {
  control_t *ctl = arg;
  if (!ctl->stopping)
    send_all(ctl, CN_MSG_RELOAD, 0);
}


static void signal_cb(uv_signal_t *h, int signum) {
  control_t *ctl = h->data;
  if (signum == SIGHUP) {
    if (ctl->cfg->run) {
      send_all(ctl, CN_MSG_STOP, signum);
      return;
    }
    cn_tls_reload_all(); /* certificates, as the script */
    send_all(ctl, CN_MSG_RELOAD, 0);
    return;
  }
  if (ctl->stopping++ == 0) {
    if (!ctl->cfg->run)
      cn_log(CN_LOG_INFO, "%s: shutting down", strsignal(signum));
    send_all(ctl, CN_MSG_STOP, signum);
  } else {
    send_all(ctl, CN_MSG_KILL, signum);
  }
}


static void control_async_cb(uv_async_t *h) {
  control_t *ctl = h->data;
  int i, ready = 0, done = 0;
  uv_mutex_lock(&ctl->lock);
  for (i = 0; i < ctl->nworkers; i++) {
    ready += ctl->state[i] == W_READY;
    done += ctl->state[i] == W_DONE;
  }
  uv_mutex_unlock(&ctl->lock);
  if (ready == ctl->nworkers && !ctl->announced) {
    ctl->announced = 1;
    for (i = 0; i < ctl->cfg->nlisten; i++)
      cn_log(CN_LOG_INFO, "listening on %s%s",
             strncmp(ctl->cfg->listen[i], "tls://", 6) ? "" : "tls://",
             ctl->bound[i]);
  }
  if (done > 0 && !ctl->stopping) {
    ctl->stopping = 1; /* one worker ended: the others follow */
    send_all(ctl, CN_MSG_KILL, 0);
  }
  if (done == ctl->nworkers) {
    uv_close((uv_handle_t *)&ctl->async, NULL);
    uv_close((uv_handle_t *)&ctl->sigint, NULL);
    uv_close((uv_handle_t *)&ctl->sigterm, NULL);
    uv_close((uv_handle_t *)&ctl->sighup, NULL);
    if (ctl->watch.active)
      cn_watch_close(&ctl->watch);
  }
}


/* bind_all binds every listen address once per worker. With port 0 the
** first socket picks the port and the others share it. */
static int bind_all(control_t *ctl) {
  const cn_config_t *cfg = ctl->cfg;
  int i, j, rc, reuse = ctl->nworkers > 1;
  for (i = 0; i < cfg->nlisten; i++) {
    cn_addr_t a;
    if (cn_addr_parse(cfg->listen[i], &a) < 0) {
      cn_log(CN_LOG_ERROR,
             "bad listen address '%s': expected HOST:PORT, [IPV6]:PORT or "
             "unix:PATH",
             cfg->listen[i]);
      return -1;
    }
    if ((rc = cn_addr_resolve(&a)) < 0) {
      cn_log(CN_LOG_ERROR, "listen %s: %s", cfg->listen[i], uv_strerror(rc));
      return -1;
    }
    if (a.family == AF_UNIX)
      reuse = 0;
    for (j = 0; j < ctl->nworkers; j++) {
      cn_worker_t *w = &ctl->workers[j];
      uv_os_sock_t fd;
      if (a.family == AF_UNIX && j > 0) {
        fd = dup(ctl->workers[0].fds[i]); /* one socket, polled by all */
        rc = fd < 0 ? uv_translate_sys_error(errno) : 0;
      } else {
        rc = cn_listen_socket(&a, reuse, &fd, ctl->bound[i], CN_ADDRSTRLEN);
      }
      if (rc < 0) {
        cn_log(CN_LOG_ERROR, "listen %s: %s", cfg->listen[i], uv_strerror(rc));
        return -1;
      }
      if (j == 0 && a.family != AF_UNIX && a.port == 0) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof ss;
        getsockname(fd, (struct sockaddr *)&ss, &len);
        a.port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
        if (a.family == AF_INET)
          ((struct sockaddr_in *)&a.ss)->sin_port = htons((uint16_t)a.port);
        else
          ((struct sockaddr_in6 *)&a.ss)->sin6_port = htons((uint16_t)a.port);
      }
      w->fds[i] = fd;
      w->fd_pipe[i] = a.family == AF_UNIX;
      w->nfds = i + 1;
    }
  }
  return 0;
}


static void control_init(control_t *ctl, const cn_config_t *cfg) {
  int i, n = cfg->workers;
  memset(ctl, 0, sizeof *ctl);
  ctl->cfg = cfg;
  ctl->nworkers = n;
  ctl->workers = calloc((size_t)n, sizeof *ctl->workers);
  ctl->state = calloc((size_t)n, sizeof *ctl->state);
  ctl->bound = calloc(CN_MAX_LISTEN, sizeof *ctl->bound);
  uv_mutex_init(&ctl->lock);
  for (i = 0; i < n; i++) {
    cn_worker_t *w = &ctl->workers[i];
    w->id = i + 1;
    w->cfg = cfg;
    w->ctl = ctl;
    w->fds = calloc(CN_MAX_LISTEN, sizeof *w->fds);
    w->fd_pipe = calloc(CN_MAX_LISTEN, sizeof *w->fd_pipe);
    uv_mutex_init(&w->lock);
  }
}


static void control_free(control_t *ctl) {
  int i;
  for (i = 0; i < ctl->nworkers; i++) {
    cn_worker_t *w = &ctl->workers[i];
    int j;
    for (j = 0; j < w->nfds; j++)
      if (w->fds[j] >= 0)
        close(w->fds[j]);
    free(w->fds);
    free(w->fd_pipe);
    uv_mutex_destroy(&w->lock);
  }
  uv_mutex_destroy(&ctl->lock);
  free(ctl->workers);
  free(ctl->state);
  free(ctl->bound);
}


static void start_signal(control_t *ctl, uv_signal_t *h, int signum) {
  uv_signal_init(&ctl->loop, h);
  h->data = ctl;
  uv_signal_start(h, signal_cb, signum);
}


/* cn_run runs coronet as cfg says until it ends; returns the exit status. */
int cn_run(const cn_config_t *cfg) {
  control_t ctl;
  int i, code = 0;
  signal(SIGPIPE, SIG_IGN);
  control_init(&ctl, cfg);
  if (bind_all(&ctl) < 0) {
    control_free(&ctl);
    return 1;
  }
  uv_loop_init(&ctl.loop);
  uv_async_init(&ctl.loop, &ctl.async, control_async_cb);
  ctl.async.data = &ctl;
  start_signal(&ctl, &ctl.sigint, SIGINT);
  start_signal(&ctl, &ctl.sigterm, SIGTERM);
  start_signal(&ctl, &ctl.sighup, SIGHUP);
  if (cfg->watch && !cfg->run) {
    int rc = cn_watch_start(&ctl.watch, &ctl.loop, cfg->script, watch_cb, &ctl);
    if (rc < 0)
      cn_log(CN_LOG_WARN, "--watch %s: %s; SIGHUP still reloads", cfg->script,
             uv_strerror(rc));
  }
  for (i = 0; i < ctl.nworkers; i++)
    uv_thread_create(&ctl.workers[i].thread, worker_main, &ctl.workers[i]);
  uv_run(&ctl.loop, UV_RUN_DEFAULT);
  for (i = 0; i < ctl.nworkers; i++) {
    uv_thread_join(&ctl.workers[i].thread);
    if (code == 0)
      code = ctl.workers[i].exit_code;
  }
  uv_loop_close(&ctl.loop);
  control_free(&ctl);
  return code;
}
