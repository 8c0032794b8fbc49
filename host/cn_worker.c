/* cn_worker.c: workers and the control thread. Each worker is a thread
** with its own loop, Lua state (reached only through the cn_hooks_t that
** cn_run is handed) and listening sockets; the control thread binds the
** addresses, starts the workers, turns signals into messages for them,
** watches their loops (the task slice, stuck workers at shutdown), logs
** what concerns the whole process once, and collects their exit. */
#define _GNU_SOURCE /* syscall */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "cn.h"

enum { W_STARTING, W_READY, W_DONE };

#define DRAIN_MS 2000    /* longest wait at exit for thread-pool work */
#define STUCK_NS 250000000 /* a turn this long at exit: the worker is stuck */
#define GC_TICK_MS 250   /* how often an idle loop gives the GC a step */
#define MS 1000000ull    /* ns */

/* A worker's answer to a reload, for the control thread's one log line. */
typedef struct {
  unsigned gen; /* the reload it answers; 0: none yet */
  int ok;
  double ms;
  char msg[768]; /* the error, or a note ("helper.lua changed") */
} reload_report_t;

typedef struct {
  uv_loop_t loop;
  uv_async_t async;
  uv_signal_t sigint, sigterm, sighup;
  uv_timer_t watchdog; /* the task slice, and stuck workers at exit */
  uv_timer_t deadline; /* the end of the grace period */
  cn_watch_t watch;
  cn_worker_t *workers;
  int *state; /* W_* per worker, under lock */
  reload_report_t *reports; /* per worker, under lock */
  unsigned reload_gen, reload_logged;
  uint64_t reload_t0;
  int nworkers;
  int announced;
  int stopping;  /* signals seen (or 1 once a worker ended) */
  int reaping;   /* past the grace period or a second signal */
  int signum;    /* the signal that began the shutdown */
  uv_mutex_t lock;
  const cn_config_t *cfg;
  const cn_hooks_t *hooks;
  char (*bound)[CN_ADDRSTRLEN];
} control_t;

static __thread cn_worker_t *current_worker;
static uint64_t next_conn_id;


cn_worker_t *cn_worker_self(void) { return current_worker; }


uint64_t cn_worker_conn_id(void) {
  return __atomic_add_fetch(&next_conn_id, 1, __ATOMIC_RELAXED);
}


#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define STORE(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)


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
  if (msg & CN_MSG_RELOAD)
    w->reload_asked = ((control_t *)w->ctl)->reload_gen;
  if (!w->closed)
    uv_async_send(&w->async);
  uv_mutex_unlock(&w->lock);
}


/* -- Inside a worker --------------------------------------------------- */


static void finish(cn_worker_t *w) {
  w->stopping = 2;
  uv_stop(&w->loop);
}


/* cn_worker_stopping says whether w stops accepting (shutdown or exit). */
int cn_worker_stopping(const cn_worker_t *w) { return w->stopping != 0; }


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


static const char *plural(size_t n, const char *one, const char *many) {
  return n == 1 ? one : many;
}


static void grace_cb(uv_timer_t *h) {
  cn_worker_t *w = h->data;
  cn_log(CN_LOG_INFO, "worker %d: grace period over, closing %zu %s", w->id,
         w->naccepted, plural(w->naccepted, "connection", "connections"));
  finish(w); /* teardown closes them all */
}


/* shutdown stops accepting, tells the script (coronet.stopping()) and
** lets connections end within the grace period. */
static void shutdown_worker(cn_worker_t *w) {
  if (w->stopping)
    return;
  w->stopping = 1;
  close_listeners(w);
  w->hooks->stopping(w);
  if (w->naccepted == 0 || w->cfg->run) {
    finish(w);
    return;
  }
  cn_log(CN_LOG_INFO, "worker %d: waiting up to %gs for %zu %s", w->id,
         w->cfg->grace, w->naccepted,
         plural(w->naccepted, "connection", "connections"));
  uv_timer_start(&w->grace, grace_cb, (uint64_t)(w->cfg->grace * 1000), 0);
}


/* resume_others lets workers paused at the process's connection limit
** accept again (one of w's connections closed). */
static void resume_others(cn_worker_t *w) {
  control_t *ctl = w->ctl;
  int i;
  for (i = 0; i < ctl->nworkers; i++) {
    cn_worker_t *o = &ctl->workers[i];
    if (o != w && LOAD(o->accept_paused))
      cn_worker_send(o, CN_MSG_RESUME, 0);
  }
}


/* cn__accepted_total returns how many accepted connections the whole
** process holds (--max-connections bounds it). */
size_t cn__accepted_total(cn_worker_t *w) {
  control_t *ctl = w->ctl;
  size_t n = 0;
  int i;
  if (ctl->nworkers == 1)
    return w->naccepted;
  for (i = 0; i < ctl->nworkers; i++)
    n += LOAD(ctl->workers[i].naccepted);
  return n;
}


void cn__worker_conn_closed(cn_worker_t *w) {
  if (w->stopping == 1 && w->naccepted == 0) {
    finish(w);
  } else if (!w->stopping) {
    cn__listen_resume(w);
    if (((control_t *)w->ctl)->nworkers > 1)
      resume_others(w);
  }
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
  if (msg & CN_MSG_RELOAD)
    w->reload_gen = w->reload_asked;
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
    w->hooks->reload(w);
  if ((msg & CN_MSG_RESUME) && !w->stopping)
    cn__listen_resume(w);
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
    w->hooks->serve(w, l);
  }
  report(w, W_READY);
}


/* cn_worker_reloaded tells the control thread how w's reload ended: ok, or
** failed with msg (on success msg is a note, may be NULL). The control
** thread logs one line per reload for the whole process. */
void cn_worker_reloaded(cn_worker_t *w, int ok, const char *msg) {
  control_t *ctl = w->ctl;
  reload_report_t *r = &ctl->reports[w->id - 1];
  w->counters.reloads++;
  w->counters.reloads_failed += !ok;
  uv_mutex_lock(&ctl->lock);
  r->gen = w->reload_gen;
  r->ok = ok;
  r->ms = (double)(uv_hrtime() - w->reload_t0) / 1e6;
  snprintf(r->msg, sizeof r->msg, "%s", msg != NULL ? msg : "");
  uv_mutex_unlock(&ctl->lock);
  uv_async_send(&ctl->async);
}


/* -- Watching the loop --------------------------------------------------- */

/* A turn is the loop's work between two polls: it begins when the poll
** returns (turn_check runs first among the check handles: libuv runs the
** last started first) and ends when the loop is about to poll again. */


static void turn_begin(uv_check_t *h) {
  cn_worker_t *w = h->data;
  STORE(w->watch.busy_since, uv_hrtime());
}


static void turn_end(uv_prepare_t *h) {
  cn_worker_t *w = h->data;
  cn_loopwatch_t *lw = &w->watch;
  uint64_t since = LOAD(lw->busy_since), d;
  if (since == 0)
    return;
  d = uv_hrtime() - since;
  STORE(lw->busy_since, 0);
  STORE(lw->lag_last_ns, d);
  STORE(lw->busy_ns, lw->busy_ns + d);
  if (d > lw->lag_max_ns)
    STORE(lw->lag_max_ns, d);
  if (w->lua_refused || w->lua_bytes > w->cfg->lua_memory / 4 * 3)
    w->hooks->idle(w, 1); /* collect before the next turn's tasks run */
}


/* gc_tick gives the Lua side a chance to collect while the loop is mostly
** idle (busy less than a tenth of the tick); a whole cycle only once it
** has been idle for two ticks and no timer is due within 100 ms. */
static void gc_tick(uv_timer_t *h) {
  cn_worker_t *w = h->data;
  uint64_t busy = LOAD(w->watch.busy_ns);
  int next = uv_backend_timeout(&w->loop);
  if (busy - w->gc_busy < GC_TICK_MS * MS / 10) {
    w->gc_idle_ticks++;
    w->hooks->idle(w, w->gc_idle_ticks >= 2 && (next < 0 || next > 100));
  } else {
    w->gc_idle_ticks = 0;
    if (w->lua_refused)
      w->hooks->idle(w, 1);
  }
  w->gc_busy = busy;
}


static void watch_start(cn_worker_t *w) {
  uv_prepare_init(&w->loop, &w->prepare);
  w->prepare.data = w;
  uv_prepare_start(&w->prepare, turn_end);
  uv_check_init(&w->loop, &w->turn_check);
  w->turn_check.data = w;
  uv_check_start(&w->turn_check, turn_begin);
  uv_timer_init(&w->loop, &w->gc_timer);
  w->gc_timer.data = w;
  uv_timer_start(&w->gc_timer, gc_tick, GC_TICK_MS, GC_TICK_MS);
  uv_unref((uv_handle_t *)&w->gc_timer);
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
  uint64_t until = uv_hrtime() + (uint64_t)DRAIN_MS * MS;
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
  uv_mutex_lock(&w->lock); /* the watchdog no longer touches the state */
  STORE(w->watch.closing, uv_hrtime());
  STORE(w->watch.busy_since, 0);
  uv_mutex_unlock(&w->lock);
  w->stopping = 3;
  close_listeners(w);
  w->hooks->close(w); /* collects every Lua object: conns detach */
  cn__proc_close_all(w);
  abort_conns(w);
  cn_sched_close(w);
  uv_mutex_lock(&w->lock);
  w->closed = 1; /* cn_worker_send must not touch async any more */
  uv_mutex_unlock(&w->lock);
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
  w->tid = (int)syscall(SYS_gettid);
  uv_loop_init(&w->loop);
  cn_pool_init(&w->pool, 256);
  uv_async_init(&w->loop, &w->async, async_cb);
  w->async.data = w;
  uv_timer_init(&w->loop, &w->grace);
  w->grace.data = w;
  if (w->hooks->start(w) == 0) {
    watch_start(w); /* after the scheduler's check handle: runs before it */
    uv_run(&w->loop, UV_RUN_DEFAULT);
    if (w->stopping != 2) { /* nothing asked the loop to stop */
      cn_log(CN_LOG_ERROR, "worker %d: its loop stopped unexpectedly; "
                           "stopping coronet", w->id);
      w->exit_code = 1;
    }
  } else {
    w->exit_code = 1;
  }
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


/* log_reload logs how reload gen ended in every worker, in one line. */
static void log_reload(control_t *ctl) {
  const char *script = ctl->cfg->script, *err = NULL, *note = "";
  char workers[48] = "";
  int i, ok = 0, n = ctl->nworkers;
  double ms = 0;
  for (i = 0; i < n; i++) {
    reload_report_t *r = &ctl->reports[i];
    if (r->ok) {
      ok++;
      note = r->msg;
    } else if (err == NULL) {
      err = r->msg;
    }
    if (r->ms > ms)
      ms = r->ms;
  }
  if (n > 1)
    snprintf(workers, sizeof workers, "%d workers%s", n, *note ? "; " : "");
  if (ok == n)
    cn_log(CN_LOG_INFO, "reloaded %s in %.1f ms%s%s%s%s", script, ms,
           *workers || *note ? " (" : "", workers, note,
           *workers || *note ? ")" : "");
  else if (ok == 0)
    cn_log(CN_LOG_ERROR, "reload failed, the old handler stays: %s", err);
  else
    cn_log(CN_LOG_ERROR, "reloaded %s in %d of %d workers; the others keep "
           "the old handler: %s", script, ok, n, err);
}


/* reload_done logs the newest reload once every worker answered it. */
static void reload_done(control_t *ctl) {
  int i, answered = 0;
  if (ctl->reload_logged == ctl->reload_gen)
    return;
  uv_mutex_lock(&ctl->lock);
  for (i = 0; i < ctl->nworkers; i++)
    answered += ctl->reports[i].gen == ctl->reload_gen;
  if (answered == ctl->nworkers) {
    ctl->reload_logged = ctl->reload_gen;
    log_reload(ctl);
  }
  uv_mutex_unlock(&ctl->lock);
}


static void reload_all(control_t *ctl) {
  if (ctl->stopping)
    return;
  if (ctl->reload_logged != ctl->reload_gen)
    cn_log(CN_LOG_INFO, "%s: reload superseded by a newer one",
           ctl->cfg->script);
  ctl->reload_logged = ++ctl->reload_gen - 1;
  send_all(ctl, CN_MSG_RELOAD, 0);
}


static void watch_cb(void *arg) { reload_all(arg); }


/* task_of names the task worker w runs, for a log line from this thread:
** "task N (conn M)". Racy reads, but task records are never freed while
** the worker runs. */
static void task_of(cn_worker_t *w, char *buf, size_t size) {
  cn_task_t *t = __atomic_load_n(&w->current, __ATOMIC_RELAXED);
  uint64_t conn;
  if (t == NULL) {
    snprintf(buf, size, "no task (host code)");
    return;
  }
  conn = cn_sched_task_conn_id(t);
  if (conn != 0)
    snprintf(buf, size, "task %llu (conn %llu)",
             (unsigned long long)cn_sched_task_id(t),
             (unsigned long long)conn);
  else
    snprintf(buf, size, "task %llu", (unsigned long long)cn_sched_task_id(t));
}


/* reap ends the process if a worker is stuck (its turn has lasted
** STUCK_NS) now that the shutdown no longer waits: it names the task that
** held the worker and exits at once, without the stuck thread. */
static void reap(control_t *ctl) {
  uint64_t now = uv_hrtime();
  int i, stuck = 0;
  uv_mutex_lock(&ctl->lock);
  for (i = 0; i < ctl->nworkers; i++) {
    cn_worker_t *w = &ctl->workers[i];
    uint64_t since = LOAD(w->watch.busy_since);
    uint64_t closing = LOAD(w->watch.closing);
    char task[96];
    if (ctl->state[i] == W_DONE)
      continue;
    if (closing != 0) { /* tearing down: drain() is bounded */
      if (now - closing < (uint64_t)(DRAIN_MS + 1000) * MS)
        continue;
      cn_log(CN_LOG_ERROR, "worker %d is stuck closing; exiting without it",
             w->id);
      stuck++;
      continue;
    }
    if (since == 0 || now - since < STUCK_NS)
      continue;
    task_of(w, task, sizeof task);
    cn_log(CN_LOG_ERROR, "worker %d is stuck: %s has run %.1f s without "
           "yielding; exiting without it", w->id, task,
           (double)(now - since) / 1e9);
    stuck++;
  }
  uv_mutex_unlock(&ctl->lock);
  if (stuck > 0)
    _exit(ctl->cfg->run ? 128 + ctl->signum : 1);
}


/* arm has w's Lua side stop or report the running task, unless w began
** closing its Lua state (the lock orders the two); in_call: w's thread
** was last seen blocked in a system call. */
static void arm(control_t *ctl, cn_worker_t *w, int in_call) {
  uv_mutex_lock(&w->lock);
  if (LOAD(w->watch.closing) == 0)
    ctl->hooks->stalled(w, in_call);
  uv_mutex_unlock(&w->lock);
}


/* thread_cpu reads worker w's thread from /proc: its state ('R' running
** or waiting for a CPU, 'S' or 'D' blocked in a call...) and the CPU time
** it used, in ns. Returns 0, or -1 (then nothing is known). */
static int thread_cpu(cn_worker_t *w, char *state, uint64_t *cpu) {
  char path[64], buf[512], *p;
  unsigned long long ut, st;
  int fd;
  ssize_t n;
  snprintf(path, sizeof path, "/proc/self/task/%d/stat", w->tid);
  if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
    return -1;
  n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0)
    return -1;
  buf[n] = '\0';
  if ((p = strrchr(buf, ')')) == NULL ||
      sscanf(p + 1, " %c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu",
             state, &ut, &st) != 3)
    return -1;
  *cpu = (ut + st) * (1000000000ull / (uint64_t)sysconf(_SC_CLK_TCK));
  return 0;
}


/* holds_loop says whether w's thread used most of a slice of CPU since
** mark, or is blocked in a call: either way it holds its loop. One that
** waits for a CPU (a busy machine) is given time. */
static int holds_loop(cn_worker_t *w, uint64_t mark, uint64_t slice) {
  char state = 'R';
  uint64_t cpu = 0;
  if (thread_cpu(w, &state, &cpu) < 0)
    return 1;
  return state != 'R' || cpu - mark >= slice / 4 * 3;
}


/* slice_check is the runaway guard for worker w: a turn longer than the
** task slice, in which the thread used the CPU (or blocked), gets the
** hook (which stops interpreted Lua with an error, see lcn_host.c); one the
** hook cannot reach (compiled code, a blocking C call) is logged once, at
** twice the slice. */
static void slice_check(control_t *ctl, cn_worker_t *w, uint64_t now) {
  cn_loopwatch_t *lw = &w->watch;
  uint64_t since = LOAD(lw->busy_since);
  uint64_t slice = (uint64_t)(ctl->cfg->task_slice * 1e9);
  char task[96], state;
  if (since == 0)
    return;
  if (w->seen != since) { /* a turn seen for the first time: its CPU mark */
    w->seen = since;
    if (thread_cpu(w, &state, &w->mark_cpu) < 0)
      w->mark_cpu = 0;
  }
  if (now - since < slice)
    return;
  if (LOAD(lw->armed) != since ||
      (LOAD(lw->fired) == LOAD(lw->armed_at) &&
       now - LOAD(lw->armed_at) >= slice)) { /* new, or it went on: again */
    if (!holds_loop(w, w->mark_cpu, slice))
      return;
    if (LOAD(lw->armed) != since)
      STORE(lw->stalls, lw->stalls + 1);
    state = 'R';
    thread_cpu(w, &state, &w->mark_cpu);
    STORE(lw->armed_at, now);
    STORE(lw->armed, since);
    arm(ctl, w, state != 'R');
  } else if (LOAD(lw->fired) != LOAD(lw->armed_at) &&
             now - since >= 2 * slice && LOAD(lw->reported) != since) {
    STORE(lw->reported, since);
    task_of(w, task, sizeof task);
    cn_log(CN_LOG_WARN, "worker %d: %s has held the loop for %.1f s in "
           "compiled code or a blocking call; the task slice cannot stop "
           "it", w->id, task, (double)(now - since) / 1e9);
  }
}


static void watchdog_cb(uv_timer_t *h) {
  control_t *ctl = h->data;
  uint64_t now = uv_hrtime();
  int i;
  if (ctl->reaping)
    reap(ctl);
  if (ctl->cfg->task_slice > 0)
    for (i = 0; i < ctl->nworkers; i++)
      slice_check(ctl, &ctl->workers[i], now);
}


/* start_reaping kills every worker (they close what is open) and exits
** without any that stay stuck. */
static void start_reaping(control_t *ctl, int signum) {
  ctl->reaping = 1;
  uv_timer_start(&ctl->watchdog, watchdog_cb, 50, 50);
  send_all(ctl, CN_MSG_KILL, signum);
  reap(ctl);
}


static void deadline_cb(uv_timer_t *h) {
  control_t *ctl = h->data;
  start_reaping(ctl, ctl->signum);
}


static void signal_cb(uv_signal_t *h, int signum) {
  control_t *ctl = h->data;
  if (signum == SIGHUP) {
    if (ctl->cfg->run) {
      send_all(ctl, CN_MSG_STOP, signum);
      return;
    }
    cn_tls_reload_all(); /* certificates, as the script */
    reload_all(ctl);
    return;
  }
  if (ctl->stopping++ == 0) {
    ctl->signum = signum;
    if (!ctl->cfg->run)
      cn_log(CN_LOG_INFO, "%s: shutting down", strsignal(signum));
    send_all(ctl, CN_MSG_STOP, signum);
    /* the workers' own grace timers end it; this one, if they are stuck */
    uv_timer_start(&ctl->deadline, deadline_cb,
                   (uint64_t)((ctl->cfg->run ? 0 : ctl->cfg->grace) * 1000) +
                     500, 0);
  } else {
    start_reaping(ctl, signum);
  }
}


static void close_control(control_t *ctl) {
  uv_close((uv_handle_t *)&ctl->async, NULL);
  uv_close((uv_handle_t *)&ctl->sigint, NULL);
  uv_close((uv_handle_t *)&ctl->sigterm, NULL);
  uv_close((uv_handle_t *)&ctl->sighup, NULL);
  uv_close((uv_handle_t *)&ctl->watchdog, NULL);
  uv_close((uv_handle_t *)&ctl->deadline, NULL);
  cn_heap_close();
  if (ctl->watch.active)
    cn_watch_close(&ctl->watch);
}


static void announce(control_t *ctl) {
  int i, n = ctl->nworkers;
  ctl->announced = 1;
  for (i = 0; i < ctl->cfg->nlisten; i++)
    cn_log(CN_LOG_INFO, "listening on %s%s (%d %s)",
           strncmp(ctl->cfg->listen[i], "tls://", 6) ? "" : "tls://",
           ctl->bound[i], n, plural((size_t)n, "worker", "workers"));
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
  if (ready == ctl->nworkers && !ctl->announced)
    announce(ctl);
  reload_done(ctl);
  if (done > 0 && !ctl->stopping) {
    ctl->stopping = 1; /* one worker ended: the others follow */
    send_all(ctl, CN_MSG_KILL, 0);
    uv_timer_start(&ctl->deadline, deadline_cb, 500, 0);
  }
  if (done == ctl->nworkers)
    close_control(ctl);
}


/* bind_one binds address a for every worker: one socket each, sharing the
** port through SO_REUSEPORT (the kernel spreads connections), or a unix
** socket that all of them poll. Unless the process asked to share it with
** others (--reuseport), the address must be free: a probe bound without
** SO_REUSEPORT fails when any other socket holds it. */
static int bind_one(control_t *ctl, int i, cn_addr_t *a) {
  const cn_config_t *cfg = ctl->cfg;
  int j, rc = 0, reuse = a->family != AF_UNIX &&
                         (cfg->reuseport || ctl->nworkers > 1);
  uv_os_sock_t fd;
  if (reuse && !cfg->reuseport && a->port != 0) {
    if ((rc = cn_listen_socket(a, 0, &fd, ctl->bound[i], CN_ADDRSTRLEN)) < 0)
      return rc;
    close(fd);
  }
  for (j = 0; j < ctl->nworkers; j++) {
    cn_worker_t *w = &ctl->workers[j];
    if (a->family == AF_UNIX && j > 0) {
      fd = dup(ctl->workers[0].fds[i]); /* one socket, polled by all */
      rc = fd < 0 ? uv_translate_sys_error(errno) : 0;
    } else {
      rc = cn_listen_socket(a, reuse, &fd, ctl->bound[i], CN_ADDRSTRLEN);
    }
    if (rc < 0)
      return rc;
    if (j == 0 && a->family != AF_UNIX && a->port == 0)
      cn_addr_set_port(a, fd); /* the others share the port it got */
    w->fds[i] = fd;
    w->fd_pipe[i] = a->family == AF_UNIX;
    w->nfds = i + 1;
  }
  return 0;
}


/* bind_all binds every listen address once per worker. */
static int bind_all(control_t *ctl) {
  const cn_config_t *cfg = ctl->cfg;
  int i, rc;
  for (i = 0; i < cfg->nlisten; i++) {
    cn_addr_t a;
    if (cn_addr_parse(cfg->listen[i], &a) < 0) {
      cn_log(CN_LOG_ERROR,
             "bad listen address '%s': expected HOST:PORT, [IPV6]:PORT or "
             "unix:PATH",
             cfg->listen[i]);
      return -1;
    }
    if ((rc = cn_addr_resolve(&a)) < 0 || (rc = bind_one(ctl, i, &a)) < 0) {
      cn_log(CN_LOG_ERROR, "listen %s: %s", cfg->listen[i], uv_strerror(rc));
      return -1;
    }
  }
  return 0;
}


static void control_init(control_t *ctl, const cn_config_t *cfg,
                         const cn_hooks_t *hooks) {
  int i, n = cfg->workers;
  memset(ctl, 0, sizeof *ctl);
  ctl->cfg = cfg;
  ctl->hooks = hooks;
  ctl->nworkers = n;
  ctl->workers = calloc((size_t)n, sizeof *ctl->workers);
  ctl->state = calloc((size_t)n, sizeof *ctl->state);
  ctl->reports = calloc((size_t)n, sizeof *ctl->reports);
  ctl->bound = calloc(CN_MAX_LISTEN, sizeof *ctl->bound);
  uv_mutex_init(&ctl->lock);
  for (i = 0; i < n; i++) {
    cn_worker_t *w = &ctl->workers[i];
    w->id = i + 1;
    w->cfg = cfg;
    w->hooks = hooks;
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
  free(ctl->reports);
  free(ctl->bound);
}


static void start_signal(control_t *ctl, uv_signal_t *h, int signum) {
  uv_signal_init(&ctl->loop, h);
  h->data = ctl;
  uv_signal_start(h, signal_cb, signum);
}


static void start_timer(control_t *ctl, uv_timer_t *h) {
  uv_timer_init(&ctl->loop, h);
  h->data = ctl;
}


/* start_watchdog ticks eight times per task slice (between 10 and 250 ms;
** every 50 ms while reaping stuck workers at exit); the tick never keeps
** the loop alive. */
static void start_watchdog(control_t *ctl) {
  double tick = ctl->cfg->task_slice / 8;
  uint64_t ms = tick <= 0 || tick > 0.25 ? 250 : tick < 0.01 ? 10
                                             : (uint64_t)(tick * 1000);
  start_timer(ctl, &ctl->watchdog);
  uv_unref((uv_handle_t *)&ctl->watchdog);
  if (ctl->cfg->task_slice > 0)
    uv_timer_start(&ctl->watchdog, watchdog_cb, ms, ms);
}


/* cn_run runs coronet as cfg says until it ends, reaching the Lua side
** through hooks; returns the exit status. */
int cn_run(const cn_config_t *cfg, const cn_hooks_t *hooks) {
  control_t ctl;
  int i, code = 0;
  signal(SIGPIPE, SIG_IGN);
  cn_fd_reserve(NULL); /* reads the limit once, before any worker runs */
  control_init(&ctl, cfg, hooks);
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
  start_timer(&ctl, &ctl.deadline);
  start_watchdog(&ctl);
  cn_heap_start(&ctl.loop);
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
