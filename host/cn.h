/* cn.h: coronet's C API: workers, the scheduler, connections, listeners,
** addresses and logging. Engine files implement it over libuv; the Lua
** bindings (lcn_*.c) use only this header and the Lua API. */
#ifndef CN_H
#define CN_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "cn_buf.h"
#include "cn_errno.h"
#include "cn_http.h"
#include "cn_ws.h"
#include "cn_resp.h"

#define CN_VERSION "0.1.0"

typedef struct cn_worker_s cn_worker_t;
typedef struct cn_conn_s cn_conn_t;
typedef struct cn_listener_s cn_listener_t;
typedef struct cn_waiter_s cn_waiter_t;
typedef struct cn_pump_s cn_pump_t;
typedef struct cn_config_s cn_config_t;
typedef struct cn_addr_s cn_addr_t;
typedef struct cn_task_s cn_task_t;
typedef struct cn_tls_s cn_tls_t;
typedef struct cn_tls_conf_s cn_tls_conf_t;
typedef struct cn_conn_watch_s cn_conn_watch_t;
struct lua_State;

/* What a task is (cn_sched_set_kind) and what its park waits for
** (cn_sched_park): for counters and introspection. */
enum { CN_TASK_SPAWNED, CN_TASK_MAIN, CN_TASK_HANDLER, CN_TASK_NKINDS };
enum {
  CN_WAIT_OTHER, CN_WAIT_READ, CN_WAIT_WRITE, CN_WAIT_SLEEP, CN_WAIT_CHANNEL,
  CN_WAIT_BUS, CN_WAIT_DIAL, CN_WAIT_FILE, CN_WAIT_PROCESS, CN_WAIT_NKINDS
};

/* Loop lag: how long woken tasks waited to run, in log2 buckets of
** microseconds (bucket 0: under 1 us; bucket k: [2^(k-1), 2^k) us; the
** last one takes the rest). */
#define CN_LAG_BUCKETS 24

typedef struct cn_sched_stats_s {
  uint64_t resumes, turns;
  uint64_t long_turns; /* turns that ended on their time budget */
  uint64_t parks[CN_WAIT_NKINDS];
  uint64_t lag[CN_LAG_BUCKETS];
  uint64_t lag_ns; /* the lags' sum */
} cn_sched_stats_t;

/* A worker's connection and reload counters (for coronet.stats() and the
** admin's /metrics); only the worker's own thread writes them. */
typedef struct cn_counters_s {
  uint64_t opened, accepted, closed; /* connections (pipes included) */
  uint64_t bytes_in, bytes_out;      /* as read from and written to sockets */
  uint64_t reloads, reloads_failed;
} cn_counters_t;

/* -- Logging (cn_log.c) ------------------------------------------------ */

enum { CN_LOG_ERROR, CN_LOG_WARN, CN_LOG_INFO, CN_LOG_DEBUG };
extern int cn_log_level;

/* cn_log writes one line "coronet: MESSAGE" to stderr in a single write,
** if level is at or below cn_log_level. Safe from any thread. */
void cn_log(int level, const char *fmt, ...)
#ifdef __GNUC__
  __attribute__((format(printf, 2, 3)))
#endif
  ;
int cn_log_parse_level(const char *s);

/* -- Addresses (cn_addr.c) --------------------------------------------- */

#define CN_ADDRSTRLEN 128

struct cn_addr_s {
  int family; /* AF_INET, AF_INET6 or AF_UNIX */
  char host[256]; /* as written, without brackets (a DNS name: 253) */
  int port;
  int tls; /* written as tls://ADDR */
  char path[108]; /* AF_UNIX */
  struct sockaddr_storage ss;
  int sslen;
};

int cn_addr_parse(const char *s, cn_addr_t *a);
int cn_addr_resolve(cn_addr_t *a);
int cn_addr_lookup_err(int err);
void cn_addr_set_port(cn_addr_t *a, uv_os_sock_t fd);
void cn_addr_format(const struct sockaddr *sa, char *buf, size_t size);

/* -- Configuration (main.c fills it) ----------------------------------- */

#define CN_MAX_LISTEN 16

struct cn_config_s {
  const char *script;
  int argc; /* script arguments */
  char **argv;
  const char *listen[CN_MAX_LISTEN];
  int nlisten;
  int workers;
  int watch;
  int run; /* --run: the script is a program */
  size_t max_conns;
  double grace; /* seconds open connections get at shutdown */
  size_t read_hwm, write_hwm;
  const char *moddir; /* where lua/coronet/ lives */
  cn_tls_conf_t *tls; /* --tls-cert/--tls-key: for tls:// addresses */
  int reuseport;      /* share listen addresses with other processes */
  int keepalive;      /* TCP keepalive idle seconds, 0 = off */
  double task_slice;  /* seconds a task may run without yielding, 0 = off */
  size_t lua_memory;  /* bytes of Lua heap per worker */
  const char *admin;  /* --admin: where /metrics and /tasks are served */
};

/* -- Waiting ----------------------------------------------------------- */

/* A waiter is what an engine object wakes when it makes progress. The
** scheduler's tasks embed one; engines only call wake. */
struct cn_waiter_s {
  void (*wake)(cn_waiter_t *w);
};

/* -- Timers (cn_timer.c) ---------------------------------------------- */

/* A timer is a node its owner embeds (a task's deadline, a Lua timer): it
** costs no allocation. It fires once, calling cb, at loop time when (ms). */
typedef struct cn_timer_s cn_timer_t;
typedef void (*cn_timer_cb)(cn_timer_t *t);

typedef struct cn_tlink_s {
  struct cn_tlink_s *next, *prev;
} cn_tlink_t;

struct cn_timer_s {
  cn_tlink_t link; /* first: its wheel slot's list */
  uint64_t when;
  cn_timer_cb cb;
  uint16_t slot; /* level * CN_WHEEL_SIZE + index, while on */
  uint8_t on;
};

#define CN_TIMER_BATCH 1024 /* timers fired per loop turn, at most */
#define CN_WHEEL_BITS 6
#define CN_WHEEL_SIZE (1 << CN_WHEEL_BITS)
#define CN_WHEEL_LEVELS 6 /* 64^6 ms: two years; later ones wait at the top */

/* A worker's timers: a hierarchical timing wheel (level k has 64 slots of
** 64^k ms each) driven by one uv_timer_t. */
typedef struct cn_timers_s {
  cn_tlink_t slots[CN_WHEEL_LEVELS * CN_WHEEL_SIZE];
  uint64_t used[CN_WHEEL_LEVELS]; /* a bit per non-empty slot */
  uint64_t now; /* ms: the wheel has fired everything due before it */
  size_t n;
  int armed; /* h runs, due at armed_when */
  uint64_t armed_when;
  uv_timer_t h;
  uv_prepare_t prepare; /* points h at the earliest deadline before polls */
} cn_timers_t;

void cn_timers_init(cn_timers_t *ts, uv_loop_t *loop);
void cn_timers_close(cn_timers_t *ts);
void cn_timer_start(cn_timers_t *ts, cn_timer_t *t, uint64_t when);
int cn_timer_stop(cn_timers_t *ts, cn_timer_t *t);

/* -- Connections (cn_conn.c) ------------------------------------------- */

/* cn_stream_t is a TCP or Unix-domain stream handle, seen as each of the
** libuv types it is. */
typedef union {
  uv_handle_t handle;
  uv_stream_t stream;
  uv_tcp_t tcp;
  uv_pipe_t pipe;
} cn_stream_t;

enum {
  CN_CONN_READING = 1 << 0, /* uv_read_start is active */
  CN_CONN_CLOSED = 1 << 1,  /* this side closed: operations fail */
  CN_CONN_CLOSING = 1 << 2, /* uv_close called */
  CN_CONN_WSHUT = 1 << 3,   /* close_write asked */
  CN_CONN_SHUT = 1 << 4,    /* uv_shutdown issued */
  CN_CONN_DIRTY = 1 << 5,   /* on the worker's flush list */
  CN_CONN_PIPE = 1 << 6,    /* uv_pipe_t, not uv_tcp_t */
  CN_CONN_DRAIN = 1 << 7,   /* close once the write chain drains */
  CN_CONN_ACCEPTED = 1 << 8 /* came from a listener: counts in naccepted */
};

typedef struct cn_wreq_s cn_wreq_t; /* a uv_write in flight (cn_conn.c) */

/* A connection. The libuv handle comes last: a TCP connection is
** allocated without the room a pipe's handle needs beyond uv_tcp_t. */
struct cn_conn_s {
  cn_worker_t *w;
  cn_buf_t in, out;
  unsigned flags;
  int rerr, werr; /* sticky: CN_EOF or a negative code */
  uint8_t dlen;
  uint8_t skip; /* discard input through the next delimiter (line too long) */
  char dlim[8];
  cn_waiter_t *reader, *writer;
  size_t want;     /* wake reader when this many bytes are buffered... */
  size_t scanned;  /* ...or dlim is found at or after this offset */
  cn_pump_t *pump_out; /* this conn is the source of a pump */
  cn_pump_t *pump_in;  /* this conn is the destination of a pump */
  cn_conn_t *next_dirty;
  cn_conn_t *prev, *next; /* worker's list of open connections */
  cn_wreq_t *wreq; /* while a uv_write is in flight */
  uv_timer_t *linger;
  uint64_t id;
  void *data; /* owner's: the Lua binding's box (w->conn_closed hears) */
  uint64_t rtimeout, wtimeout;   /* ms per operation, 0 = none */
  uint64_t rdeadline, wdeadline; /* loop ms, 0 = none */
  struct sockaddr_in6 peer;      /* remote address as accepted */
  cn_task_t *task; /* the owner's: the task that closes c when it ends */
  cn_tls_t *tls;   /* TLS session (cn_tls.c): out is then plaintext */
  cn_conn_watch_t *watchers;
  cn_stream_t h; /* last: its pipe member only in pipe connections' room */
};

/* cn_conn_reading says a parked task or a pump takes c's input;
** cn_conn_writing, that one feeds its output. */
static inline int cn_conn_reading(const cn_conn_t *c) {
  return c->reader != NULL || c->pump_out != NULL;
}
static inline int cn_conn_writing(const cn_conn_t *c) {
  return c->writer != NULL || c->pump_in != NULL;
}

/* A watcher hears of its connection's events: fn(w, c, CN_CONN_EV_CLOSED)
** once, when c closes (w is unlinked first), and fn(w, c,
** CN_CONN_EV_DRAINED) each time c's write chain is at or below its
** low-water mark after a write. fn must not unwatch other watchers. */
struct cn_conn_watch_s {
  cn_conn_watch_t *prev, *next;
  void (*fn)(cn_conn_watch_t *w, cn_conn_t *c, int event);
};
enum { CN_CONN_EV_CLOSED, CN_CONN_EV_DRAINED };

cn_conn_t *cn_conn_new(cn_worker_t *w, int pipe);
int cn_conn_open(cn_conn_t *c, uv_os_sock_t fd);
void cn_conn_start(cn_conn_t *c);
void cn_conn_wait_read(cn_conn_t *c, cn_waiter_t *wt, size_t want,
                       const char *dlim, size_t dlen);
void cn_conn_wait_write(cn_conn_t *c, cn_waiter_t *wt);
void cn_conn_unwait(void *conn, cn_waiter_t *wt);
void cn_conn_consumed(cn_conn_t *c);
void cn_conn_kick(cn_conn_t *c);
int cn_conn_write(cn_conn_t *c, const char *p, size_t n);
int cn_conn_write_shared(cn_conn_t *c, cn_sblock_t *s);
void cn_conn_watch(cn_conn_t *c, cn_conn_watch_t *w);
void cn_conn_unwatch(cn_conn_t *c, cn_conn_watch_t *w);
int cn_conn_writable(const cn_conn_t *c);
void cn_conn_flush(cn_conn_t *c);
int cn_conn_close_write(cn_conn_t *c);
void cn_conn_close(cn_conn_t *c);
void cn_conn_abort(cn_conn_t *c);
int cn_conn_addr(cn_conn_t *c, int local, char *buf, size_t size);
void cn__conn_flush_dirty(cn_worker_t *w);

/* A pump moves bytes from src's read chain to dst's write chain inside the
** read callback, without Lua, until src ends, an error, or limit bytes. */
struct cn_pump_s {
  cn_conn_t *src, *dst;
  int64_t limit; /* -1: no limit */
  uint64_t moved;
  int err; /* 0 at src EOF or limit; else the error */
  uint8_t done;
  uint8_t owned; /* cn_pump_owned's: no waiter; see there */
  cn_waiter_t *waiter;
};

void cn_pump_start(cn_pump_t *p);
void cn_pump_stop(cn_pump_t *p);
cn_pump_t *cn_pump_owned(cn_conn_t *dst, cn_conn_t *src);

/* -- TLS (cn_tls.c) --------------------------------------------------- */

/* A TLS connection is a cn_conn_t with tls set: its read chain holds
** plaintext (OpenSSL decrypts into it), its write chain takes plaintext
** (sealed into records when flushed), and the ciphertext waits in chains
** of the session's own. Configurations are shared by every worker. */

#define CN_TLS_MAX_CERTS 16

typedef struct cn_tls_opts_s {
  int server;
  /* server: certificate chains and their keys, files or PEM text; the
  ** first is the default, SNI picks another whose names match */
  const char *cert[CN_TLS_MAX_CERTS], *key[CN_TLS_MAX_CERTS];
  int ncert;
  const char *alpn; /* server: protocols it speaks, "h2,http/1.1" order */
  const char *ca;   /* client: CA file or PEM text; NULL: the system's */
  double handshake_timeout; /* seconds; 0: CN_TLS_HANDSHAKE_S */
  double ticket_rotation;   /* server: seconds a ticket key encrypts */
} cn_tls_opts_t;

/* What a client asks of one connection. */
typedef struct cn_tls_client_s {
  const char *name; /* sent as SNI and checked against the certificate */
  const char *alpn; /* "h2,http/1.1" or NULL */
  int verify;       /* 0: accept any certificate */
} cn_tls_client_t;

/* What conn:tls() shows. Strings stay valid while the connection lives,
** except peer, which the caller passes room for. */
typedef struct cn_tls_info_s {
  const char *version, *cipher, *alpn, *sni;
  int resumed, server, verified;
  char peer[256]; /* subject of the peer's certificate, "" when none */
} cn_tls_info_t;

#define CN_TLS_HANDSHAKE_S 10.0

int cn_tls_conf_new(const cn_tls_opts_t *o, cn_tls_conf_t **out, char *err,
                    size_t size);
cn_tls_conf_t *cn_tls_client_conf(const char *ca);
void cn_tls_conf_ref(cn_tls_conf_t *f);
void cn_tls_conf_unref(cn_tls_conf_t *f);
int cn_tls_conf_server(const cn_tls_conf_t *f);
void cn_tls_reload_all(void);
void cn_tls_cleanup(void);
int cn_tls_start(cn_conn_t *c, cn_tls_conf_t *f, const cn_tls_client_t *cl);
int cn_tls_status(const cn_conn_t *c);
int cn_tls_info(const cn_conn_t *c, cn_tls_info_t *info);
cn_buf_t *cn__tls_rbuf(cn_tls_t *t);
cn_buf_t *cn__tls_wire(cn_tls_t *t);
int cn__tls_read(cn_conn_t *c, ssize_t n);
int cn__tls_seal(cn_conn_t *c);
void cn__tls_free(cn_conn_t *c);

/* -- Dialing (cn_dial.c) ---------------------------------------------- */

typedef struct cn_dial_s cn_dial_t;

struct cn_dial_s {
  uv_getaddrinfo_t gai;
  uv_connect_t req;
  cn_worker_t *w;
  cn_addr_t addr;
  struct addrinfo *res, *next;
  cn_conn_t *conn;
  cn_waiter_t *waiter;
  int err, last_err;
  int done, busy, abandoned;
  int lookup; /* cn_dial_lookup: resolve only; res is kept */
};

int cn_dial_start(cn_dial_t *d, cn_worker_t *w, const char *addr);
int cn_dial_lookup(cn_dial_t *d, cn_worker_t *w, const char *host);
cn_conn_t *cn_dial_take(cn_dial_t *d);
void cn_dial_abandon(cn_dial_t *d);

/* -- Child processes (cn_proc.c) -------------------------------------- */

typedef struct cn_proc_s cn_proc_t;
enum { CN_STDIO_IGNORE, CN_STDIO_INHERIT, CN_STDIO_PIPE };

struct cn_proc_s {
  uv_process_t h;
  cn_worker_t *w;
  cn_proc_t *prev, *next; /* the worker's children */
  int pid;
  int exited, abandoned, detached;
  int64_t status;
  int signal;
  cn_waiter_t *waiter;
};

/* What to start: args[0] is the program (looked up in PATH), env NULL
** inherits, mode[i] says what stdin, stdout and stderr are. */
typedef struct cn_spawn_s {
  char **args, **env;
  const char *cwd;
  int mode[3];
  int detached; /* keeps running after coronet exits */
} cn_spawn_t;

int cn_proc_spawn(cn_proc_t *p, cn_worker_t *w, const cn_spawn_t *s,
                  cn_conn_t *io[3]);
int cn_proc_kill(cn_proc_t *p, int signum);
void cn_proc_release(cn_proc_t *p);
void cn__proc_close_all(cn_worker_t *w);

/* -- Files (cn_fs.c) ---------------------------------------------------- */

/* A file runs one libuv thread-pool request at a time (never blocking the
** loop) and wakes its waiter when the request ends. Reads fill a read-ahead
** buffer; writes send bytes the caller copied into the same buffer. A
** regular file is read and written at explicit offsets (pos), others
** (pipes, terminals) at the kernel's position. */
#define CN_FILE_BUF 65536

typedef struct cn_file_s cn_file_t;
enum {
  CN_FS_IDLE, CN_FS_OPEN, CN_FS_OPENSTAT, CN_FS_READ, CN_FS_WRITE,
  CN_FS_STAT, CN_FS_CLOSE, CN_FS_UNLINK
};

struct cn_file_s {
  uv_fs_t req;
  cn_worker_t *w;
  uv_file fd;     /* -1: not open, or closed */
  int op;         /* CN_FS_* request in flight, CN_FS_IDLE when none */
  int err;        /* error of the last failed request, until taken */
  int err_op;     /* the request that failed */
  int eof;        /* the last read found the end of the file */
  int seekable;   /* a regular file: explicit offsets */
  int append;     /* opened with O_APPEND: writes go to the end */
  int close_after; /* close once the request in flight ends */
  int abandoned;  /* the owner is gone: close and free when idle */
  int64_t pos;    /* offset of the next byte read (buf[off]) or written */
  char *buf;      /* CN_FILE_BUF bytes while in use, else NULL */
  size_t off, len; /* read-ahead bytes are buf[off, off+len) */
  size_t wlen, wdone; /* the last write: bytes asked, bytes written */
  uv_stat_t st;   /* filled by open and stat */
  cn_waiter_t *waiter;
};

cn_file_t *cn_file_new(cn_worker_t *w);
int cn_file_open(cn_file_t *f, const char *path, int flags, int mode);
int cn_file_open_under(cn_file_t *f, const char *path, const char *root);
int cn_file_read(cn_file_t *f);
int cn_file_read_max(cn_file_t *f, size_t max);
char *cn_file_wbuf(cn_file_t *f);
int cn_file_write(cn_file_t *f, size_t n);
void cn_file_trim(cn_file_t *f);
int cn_file_stat(cn_file_t *f, const char *path);
int cn_file_unlink(cn_file_t *f, const char *path);
int cn_file_close(cn_file_t *f);
void cn_file_unwait(void *file, cn_waiter_t *wt);
void cn_file_release(cn_file_t *f);

/* -- Listeners (cn_listen.c) ------------------------------------------- */

struct cn_listener_s {
  uv_poll_t poll;
  uv_timer_t retry; /* restarts accepting after EMFILE */
  uv_os_sock_t fd;
  cn_worker_t *w;
  int pipe;
  int paused;
  int closing;
  char addr[CN_ADDRSTRLEN];
  char *unlink_path;
  uint64_t short_since; /* out of descriptors since (uv_hrtime), or 0 */
  unsigned short_retries;
  void (*on_conn)(cn_listener_t *l, cn_conn_t *c);
  cn_tls_conf_t *tls; /* not NULL: connections start TLS as servers */
  void *data;
  cn_listener_t *next;
};

int cn_listen_socket(const cn_addr_t *a, int reuseport, uv_os_sock_t *fd,
                     char *bound, size_t size);
int cn_listener_start(cn_worker_t *w, uv_os_sock_t fd, int pipe,
                      cn_listener_t **out);
void cn_listener_close(cn_listener_t *l);
void cn_tcp_keepalive(uv_os_sock_t fd, int idle);
int cn_fd_reserve(int *limit);
void cn__listen_resume(cn_worker_t *w);

/* -- Watching the script (cn_watch.c) -------------------------------- */

typedef struct cn_watch_s {
  uv_fs_event_t ev;
  uv_timer_t debounce;
  char dir[4096];
  char base[256];
  void (*cb)(void *arg);
  void *arg;
  int active, closed;
} cn_watch_t;

int cn_watch_start(cn_watch_t *w, uv_loop_t *loop, const char *script,
                   void (*cb)(void *arg), void *arg);
void cn_watch_close(cn_watch_t *w);

/* -- The C heap (cn_heap.c) ------------------------------------------- */

/* What the heap's scavenger did: trims, and the resident bytes they gave
** back to the system; the process's resident bytes now, and the bytes
** the C heap has handed out (0 where glibc's mallinfo2 cannot tell). */
typedef struct cn_heap_stats_s {
  uint64_t trims, released;
  size_t rss, in_use;
} cn_heap_stats_t;

void cn_heap_start(uv_loop_t *loop);
void cn_heap_close(void);
void cn_heap_stats(cn_heap_stats_t *st);

/* -- Workers (cn_worker.c) --------------------------------------------- */

/* What a worker asks of its Lua side (lcn_host.c's lcn_host_hooks; main.c
** hands them to cn_run). Each runs in the worker's thread. */
typedef struct cn_hooks_s {
  /* start makes the worker's Lua state and starts the script's main chunk;
  ** 0, or -1 after logging why not. */
  int (*start)(cn_worker_t *w);
  /* serve gives the connections of listener l to the script's handler. */
  void (*serve)(cn_worker_t *w, cn_listener_t *l);
  void (*reload)(cn_worker_t *w); /* load the script again */
  void (*stopping)(cn_worker_t *w); /* shutdown began */
  /* idle: the loop has little to do: collect some garbage; full_ok says a
  ** whole cycle would delay nothing due soon. */
  void (*idle)(cn_worker_t *w, int full_ok);
  void (*close)(cn_worker_t *w); /* free the Lua state */
  /* stalled: w's turn has run past the task slice. Called from the
  ** control thread while w runs: it may only arm what w checks. in_call:
  ** w's thread was seen blocked in a system call, not running. */
  void (*stalled)(cn_worker_t *w, int in_call);
} cn_hooks_t;

/* What the control thread and the runaway guard see of a worker's loop:
** written by the worker, read from other threads (relaxed atomics). */
typedef struct cn_loopwatch_s {
  uint64_t busy_since; /* uv_hrtime when the running turn began; 0: polling */
  uint64_t armed;      /* busy_since of the turn the task-slice hook is for */
  uint64_t armed_at;   /* when the hook was set */
  uint64_t fired;      /* armed_at of the arming the hook answered */
  uint64_t reported;   /* busy_since of the last stall logged */
  uint64_t stalls;     /* turns longer than the task slice */
  uint64_t stopped;    /* tasks stopped by the task slice */
  uint64_t lag_max_ns; /* longest turn so far */
  uint64_t lag_last_ns; /* the last turn's length */
  uint64_t busy_ns;    /* time spent in turns, in all */
  uint64_t closing;    /* uv_hrtime when the worker began its teardown */
} cn_loopwatch_t;

struct cn_worker_s {
  uv_loop_t loop;
  int id;
  const cn_config_t *cfg;
  struct lua_State *L;
  cn_pool_t pool;
  /* scheduler (cn_sched.c) */
  cn_task_t *runq_head, *runq_tail;
  size_t runq_len;
  cn_task_t *yielded_head, *yielded_tail; /* wait for the next turn */
  int in_turn;
  uint64_t clock; /* ns: read as a turn starts and every few resumes */
  cn_task_t *current;
  void *task_slabs;     /* every task record, live or free (cn_sched.c) */
  cn_task_t *free_tasks;
  size_t ntasks;
  uv_check_t check;
  uv_idle_t idle;
  int tasks_ref; /* registry: the anchors (record place -> coroutine) */
  cn_task_t **task_index; /* tasks by coroutine (cn_sched.c) */
  size_t task_index_cap;
  int describe_ref; /* registry: describes error values (cn_sched.c) */
  void (*after_run)(cn_worker_t *w); /* after each resume (flushes writes) */
  cn_sched_stats_t stats;
  cn_counters_t counters;
  cn_timers_t timers;
  /* connections (cn_conn.c, cn_listen.c) */
  cn_conn_t *dirty;
  cn_conn_t *conns;
  void (*conn_closed)(cn_conn_t *c); /* c, with data set, is about to go */
  size_t nconns;    /* open connections, pipes included */
  size_t naccepted; /* of which accepted from a listener */
  cn_listener_t *listeners;
  cn_proc_t *procs; /* child processes, until their handle closes */
  /* lifecycle */
  uv_async_t async;
  uv_timer_t grace;
  uv_thread_t thread;
  int stopping;
  int exit_code;
  unsigned pending; /* CN_MSG_* bits sent by the control thread */
  int closed;       /* async is closed: no more messages */
  int signum;       /* the signal behind CN_MSG_STOP or CN_MSG_KILL */
  uv_mutex_t lock;
  const cn_hooks_t *hooks;
  cn_loopwatch_t watch;
  int tid;               /* the worker thread's id (/proc) */
  uint64_t seen, mark_cpu; /* the control thread's: turn seen, CPU then */
  uv_prepare_t prepare; /* ends a turn: the loop is about to poll */
  uv_check_t turn_check; /* begins a turn: the poll returned */
  uv_timer_t gc_timer;   /* drives the Lua GC while the loop is idle */
  uint64_t gc_busy;      /* watch.busy_ns at the last GC tick */
  int gc_idle_ticks;     /* GC ticks in a row the loop was idle */
  size_t lua_bytes;      /* Lua heap (the allocator counts) */
  size_t lua_peak;       /* its highest so far */
  size_t lua_after_full; /* right after the last full GC cycle */
  int lua_refused;       /* the allocator refused since the last tick */
  size_t nfiles;         /* files open (cn_fs.c) */
  int accept_paused;     /* a listener waits for connections to close */
  unsigned reload_asked; /* the newest reload asked (under lock) */
  unsigned reload_gen;   /* the reload being run */
  uv_os_sock_t *fds; /* listening sockets handed over at start */
  int *fd_pipe;
  int nfds;
  int handler_ref;    /* the script's current handler */
  int trampoline_ref; /* coronet._run_handler */
  cn_task_t *reload_task; /* the newest reload's main chunk, running */
  uint64_t reload_t0;
  void *ctl; /* the control structure (main.c) */
};

enum {
  CN_MSG_STOP = 1, CN_MSG_RELOAD = 2, CN_MSG_KILL = 4, CN_MSG_RESUME = 8
};

cn_worker_t *cn_worker_self(void);
uint64_t cn_worker_conn_id(void);
void cn_worker_send(cn_worker_t *w, unsigned msg, int signum);
void cn_worker_exit(cn_worker_t *w, int code);
void cn__worker_conn_closed(cn_worker_t *w);
void cn__worker_started(cn_worker_t *w, int ok);
void cn_worker_reloaded(cn_worker_t *w, int ok, const char *msg);
int cn_worker_stopping(const cn_worker_t *w);
size_t cn__accepted_total(cn_worker_t *w);
int cn_run(const cn_config_t *cfg, const cn_hooks_t *hooks);

/* -- Bus between workers (cn_bus.c) ----------------------------------- */

/* A bus message: immutable bytes under a topic, shared by reference by
** every worker that gets it; freed with its last reference. */
typedef struct cn_bus_msg_s {
  uint32_t refs; /* atomic */
  uint32_t tlen;
  size_t len;
  char bytes[]; /* the topic, '\0', then the len message bytes */
} cn_bus_msg_t;

static inline const char *cn_bus_msg_data(const cn_bus_msg_t *m) {
  return m->bytes + m->tlen + 1;
}

/* A bridge carries topics beyond the process (see cn_bus_set_bridge). */
typedef struct cn_bus_bridge_s {
  void (*publish)(void *ud, cn_bus_msg_t *m);
  void (*interest)(void *ud, const char *topic, size_t tlen, int on);
  void *ud;
} cn_bus_bridge_t;

typedef struct cn_bus_stats_s {
  uint64_t published, delivered, dropped;
  size_t topics;
} cn_bus_stats_t;

int cn_bus_publish(cn_worker_t *from, const char *topic, size_t tlen,
                   const void *p, size_t n);
int cn_bus_interest(cn_worker_t *w, const char *topic, size_t tlen,
                    size_t cap);
cn_bus_msg_t *cn_bus_take(cn_worker_t *w, uint64_t *lost);
void cn_bus_wait(cn_worker_t *w, cn_waiter_t *wt);
void cn_bus_unwait(void *w, cn_waiter_t *wt);
void cn_bus_kick(cn_worker_t *w);
void cn_bus_worker_close(cn_worker_t *w);
cn_bus_msg_t *cn_bus_msg_new(const char *topic, size_t tlen, const void *p,
                             size_t n);
void cn_bus_msg_ref(cn_bus_msg_t *m);
void cn_bus_msg_unref(cn_bus_msg_t *m);
void cn_bus_set_bridge(const cn_bus_bridge_t *b);
void cn_bus_count(uint64_t delivered, uint64_t dropped);
void cn_bus_stats(cn_bus_stats_t *st);

/* -- Groups of connections (cn_group.c) ------------------------------ */

/* A group: connections of one worker that one call writes to. A member
** is behind from the send that took its write chain past the high-water
** mark until the chain drains to the low-water mark. */
typedef struct cn_group_s {
  struct cn_member_s **members;
  size_t n, size;
  size_t behind;    /* members behind */
  uint64_t dropped; /* members closed at their limit */
  cn_waiter_t **waiters; /* woken when none is behind */
  size_t nwait, wsize;
} cn_group_t;

cn_group_t *cn_group_new(void);
void cn_group_free(cn_group_t *g);
int cn_group_add(cn_group_t *g, cn_conn_t *c, size_t limit);
int cn_group_remove(cn_group_t *g, cn_conn_t *c);
size_t cn_group_send(cn_group_t *g, cn_sblock_t *s, cn_conn_t *except);

/* A part of a batch: bytes [end of the part before, end) of the batch's
** block, for every member but except (NULL: all). */
typedef struct cn_group_part_s {
  size_t end;
  cn_conn_t *except;
} cn_group_part_t;

size_t cn_group_send_batch(cn_group_t *g, cn_sblock_t *s,
                           const cn_group_part_t *parts, size_t n);
int cn_group_send_to(cn_group_t *g, cn_conn_t *c, cn_sblock_t *s);
size_t cn_group_drop_behind(cn_group_t *g);
int cn_group_wait(cn_group_t *g, cn_waiter_t *w);
void cn_group_unwait(void *group, cn_waiter_t *w);

/* cn_hash_bytes returns the 32-bit FNV-1a hash of s[0..n), for hash
** tables of names. */
static inline uint32_t cn_hash_bytes(const char *s, size_t n) {
  uint32_t h = 2166136261u;
  while (n-- > 0)
    h = (h ^ (uint8_t)*s++) * 16777619u;
  return h;
}

/* -- Redis URLs (cn_redisurl.c) ---------------------------------------- */

#define CN_REDIS_USER 128
#define CN_REDIS_PASSWORD 256

typedef struct cn_redis_url_s {
  char dial[300]; /* "host:port", "[v6]:port" or "unix:PATH" */
  char user[CN_REDIS_USER], password[CN_REDIS_PASSWORD]; /* "": none */
  int db;
} cn_redis_url_t;

int cn_redis_url_parse(const char *url, cn_redis_url_t *u);

/* -- The bus across processes, through Redis (cn_busredis.c) --------- */

typedef struct cn_busredis_stats_s {
  int configured; /* --bus was given */
  int up;         /* both connections to Redis work */
  uint64_t published; /* messages Redis took from this process */
  uint64_t received;  /* messages from other processes delivered here */
  uint64_t dropped;   /* dropped from the full outbox */
  uint64_t lost;      /* sent but unconfirmed when a connection failed */
  uint64_t outages;   /* times the bus went down */
  uint64_t unconfirmed; /* sent, Redis's answer not in yet */
  size_t outbox;      /* messages waiting for Redis */
  uint64_t queued;    /* messages this process queued for Redis so far */
  uint64_t settled;   /* every one numbered up to this has its fate:
                         Redis took it, or it is counted lost/dropped */
  char where[264];    /* Redis's address */
} cn_busredis_stats_t;

int cn_busredis_start(const char *url);
void cn_busredis_stop(void);
void cn_busredis_stats(cn_busredis_stats_t *st);
const char *cn_busredis_url(void);
int cn_busredis_publish(const char *topic, size_t tlen, const void *p,
                        size_t n);

/* Groups and members of the whole process, and members closed at their
** limit since it started. */
typedef struct cn_group_counts_s {
  uint64_t groups, members, dropped;
} cn_group_counts_t;

void cn_group_counts(cn_group_counts_t *out);

/* -- Shared dictionaries (cn_shared.c) -------------------------------- */

typedef struct cn_shared_s cn_shared_t;
enum { CN_SHARED_NIL, CN_SHARED_STRING, CN_SHARED_NUMBER, CN_SHARED_BOOL };
enum { CN_SHARED_SET, CN_SHARED_ADD, CN_SHARED_REPLACE };

/* A value: num holds a number or a boolean (0 or 1), str/len a string. */
typedef struct cn_shared_val_s {
  int type;
  double num;
  const char *str;
  size_t len;
} cn_shared_val_t;

cn_shared_t *cn_shared_open(const char *name, size_t bytes);
void cn_shared_release(cn_shared_t *d);
const char *cn_shared_name(const cn_shared_t *d);
int cn_shared_get(cn_shared_t *d, const char *k, size_t n,
                  cn_shared_val_t *out, char **buf, size_t *cap);
int cn_shared_set(cn_shared_t *d, const char *k, size_t n,
                  const cn_shared_val_t *v, double ttl, int mode);
int cn_shared_incr(cn_shared_t *d, const char *k, size_t n, double by,
                   const double *init, double *result);
char *cn_shared_keys(cn_shared_t *d, size_t max, size_t *count);
void cn_shared_flush(cn_shared_t *d);
void cn_shared_usage(cn_shared_t *d, size_t *used, size_t *capacity);
void cn_shared_each(void (*fn)(void *ud, const char *name, size_t used,
                               size_t capacity, size_t count),
                    void *ud);

/* -- Scheduler (cn_sched.c) -------------------------------------------- */

/* A loop turn runs ready tasks, first come first run, until none is left
** or CN_TURN_NS have passed (then the rest wait, in order, for the next
** turn, after a poll). A task that yields without waiting for anything
** runs again only in the next turn. */
#define CN_TURN_NS 500000

typedef void (*cn_cancel_cb)(void *obj, cn_waiter_t *w);
typedef void (*cn_end_cb)(cn_task_t *t, int status);

enum { CN_TASK_READY, CN_TASK_RUNNING, CN_TASK_PARKED };

/* What cn_sched_info tells of a task. */
typedef struct cn_task_info_s {
  uint64_t id;
  int kind;  /* CN_TASK_SPAWNED, _MAIN, _HANDLER */
  int state; /* CN_TASK_READY, _RUNNING, _PARKED */
  int wait;  /* CN_WAIT_* of its park (the last one unless parked) */
  uint64_t since;    /* uv_hrtime() ns at which it parked or became ready */
  uint64_t deadline; /* loop ms at which its park times out, 0: none */
  struct lua_State *co;
  void *data;
} cn_task_info_t;

void cn_sched_init(cn_worker_t *w);
void cn_sched_close(cn_worker_t *w);
cn_task_t *cn_sched_spawn(struct lua_State *L, int nargs);
void cn_sched_set_kind(cn_task_t *t, int kind);
void cn_sched_set_end(cn_task_t *t, cn_end_cb cb);
void cn_sched_set_data(cn_task_t *t, void *data);
void *cn_sched_data(cn_task_t *t);
void cn_sched_log_error(cn_task_t *t, const char *where);
void cn_sched_set_describe(struct lua_State *L);
uint32_t cn_sched_tag(cn_task_t *t);
void cn_sched_set_tag(cn_task_t *t, uint32_t tag);
struct lua_State *cn_sched_thread(cn_task_t *t);
cn_task_t *cn_sched_task(struct lua_State *L, const char *what);
cn_waiter_t *cn_sched_waiter(cn_task_t *t);
uint64_t cn_sched_op_start(cn_task_t *t);
void cn_sched_op_done(cn_task_t *t);
void cn_sched_park(cn_task_t *t, int wait, uint64_t deadline,
                   cn_cancel_cb cancel, void *obj);
int cn_sched_timed_out(cn_task_t *t);
void cn_sched_unpark(cn_task_t *t);
int cn_sched_wake_with(cn_task_t *t, struct lua_State *from, int n);
cn_task_t *cn_sched_lookup(struct lua_State *L, int idx);
uint64_t cn_sched_task_id(cn_task_t *t);
uint64_t cn_sched_task_conn_id(cn_task_t *t);
void cn_sched_set_conn_id(cn_task_t *t, uint64_t id);
uint32_t cn_sched_parked_as(cn_task_t *t);
void cn_sched_walk(cn_worker_t *w, void (*fn)(cn_task_t *t, void *arg),
                   void *arg);
void cn_sched_info(cn_task_t *t, cn_task_info_t *info);
const char *cn_sched_kind_name(int kind);
const char *cn_sched_wait_name(int wait);

#endif
