/*
 * loadgen.c - coronet's own load generator (one thread, epoll, libc only).
 *
 *   loadgen echo -p PORT [-c CONNS] [-s SIZE] [-d SECS] [-w SECS]
 *   loadgen idle -p PORT [-c CONNS] [--hold SECS] [--no-ping]
 *   loadgen chat -p PORT [-c CLIENTS] [--rate LINES_PER_S] [-d SECS] [-w SECS]
 *   loadgen reach -p PORT [-c CLIENTS] [--rate LINES_PER_S] [-d SECS] [-w SECS]
 *
 * echo: every connection sends one SIZE-byte message, waits until the same
 *   SIZE bytes came back (each chunk compared with what was sent), records
 *   the round-trip time and sends the next one. Before the clock starts,
 *   every connection must complete one round trip (the prime, bounded by
 *   --prime-timeout); then --warmup seconds unmeasured, then --duration
 *   seconds measured. Messages are windows into a 1 MiB block of random
 *   bytes, at an offset drawn from (connection, sequence), so bytes that come
 *   back on the wrong connection, late, twice or altered do not compare equal.
 * idle: opens CONNS connections (at most --connect-batch connecting at once),
 *   does one 64-byte round trip on each (unless --no-ping), prints
 *   "ready N" and holds them until SIGTERM/SIGINT or --hold seconds. Each
 *   SIGUSR1 makes every held connection do one more round trip and prints
 *   "rtt ok=N failed=M secs=S" (bench/million.sh).
 *   --src-first/--src-count spread the connections' source addresses over
 *   127.0.0.0/8 (one address gives ~28000 ports toward one server).
 * chat: CLIENTS line clients send RATE lines per second in total, each line
 *   carrying a token "#CB#M<client>.<seq>.<ns>#"; each line must reach every
 *   other client once, in per-sender order. Reports deliveries per second,
 *   lost, duplicated and reordered deliveries, and latency from the
 *   scheduled send time (so a stalled sender shows up as latency).
 * reach: CLIENTS join a chat room; client 0 says RATE lines per second; for
 *   each line, the time until it reached half, 99% and all of the others
 *   (the kernel's receive timestamps, so this one thread's own pace does
 *   not count), and over the lines p50, p90 and max of "all"; the same
 *   from this loop's read times (read_*) for comparison.
 *
 * Output: one line of key=value pairs on stdout (the last line), notes on
 * stderr. Exit status 0 when everything was delivered and verified, 1 when
 * anything went wrong (errors, mismatches, starved connections, losses),
 * 2 for bad usage or setup failures.
 *
 * Only loopback destinations (127.0.0.0/8) are accepted. Every phase is
 * bounded in time; a hard deadline (alarm) ends the process if the event
 * loop itself ever stalls.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------ options */

enum { M_ECHO, M_IDLE, M_CHAT, M_REACH };

static struct {
    int mode;
    const char *host;
    int port;
    int conns;
    size_t size;
    double duration, warmup;
    double connect_timeout, prime_timeout, hold, drain;
    int connect_batch;
    int ping;
    int server_pid;
    uint32_t src_first, src_count; /* source 127.0.0.1 + first + i % count */
    double rate;
    int quiet;
} opt = {
    .host = "127.0.0.1",
    .conns = 100,
    .size = 64,
    .duration = 5,
    .warmup = 1,
    .connect_timeout = 15,
    .prime_timeout = 10,
    .hold = 60,
    .drain = 3,
    .connect_batch = 256,
    .ping = 1,
    .rate = 2000,
};

static void usage(FILE *f) {
    fprintf(f,
        "usage: loadgen echo -p PORT [-c CONNS] [-s SIZE] [-d SECS] [-w SECS]\n"
        "       loadgen idle -p PORT [-c CONNS] [--hold SECS] [--no-ping]\n"
        "       loadgen chat -p PORT [-c CLIENTS] [--rate N] [-d SECS] [-w SECS] [--drain SECS]\n"
        "       loadgen reach -p PORT [-c CLIENTS] [--rate N] [-d SECS] [-w SECS] [--drain SECS]\n"
        "options:\n"
        "  -H, --host ADDR          IPv4 loopback address of the server (127.0.0.1)\n"
        "  -p, --port PORT          server port (required)\n"
        "  -c, --conns N            connections (100)\n"
        "  -s, --size BYTES         echo message size (64)\n"
        "  -d, --duration S         measured seconds (5)\n"
        "  -w, --warmup S           unmeasured seconds before (1)\n"
        "      --connect-timeout S  all connections must be up by then (15)\n"
        "      --prime-timeout S    first round trip on every connection (10)\n"
        "      --connect-batch N    connects in flight at once (256)\n"
        "      --hold S             idle: hold connections this long at most (60)\n"
        "      --no-ping            idle: connect only, no round trip\n"
        "      --src-first N        bind connection i to 127.0.0.1 + N + i %% K\n"
        "      --src-count K        (spread over 127.0.0.0/8; default: no bind)\n"
        "      --rate N             chat: lines per second, all clients together (2000);\n"
        "                           reach: lines per second from client 0 (5)\n"
        "      --drain S            chat, reach: wait this long for late deliveries (3)\n"
        "      --server-pid PID     also report the server's CPU%% and RSS over the window\n"
        "  -q, --quiet              no notes on stderr\n");
}

/* ------------------------------------------------------------ time, cpu */

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t sec_ns(double s) { return s <= 0 ? 0 : (uint64_t)(s * 1e9); }

static double self_cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static long long proc_ticks(int pid) {   /* utime + stime, clock ticks; -1 unreadable */
    char path[64], buf[1024];
    if (pid <= 0) return -1;
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    unsigned long long ut = 0, st = 0;
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (long long)(ut + st);
}

/* utime + stime of a process (all its threads), seconds; -1 if unreadable */
static double proc_cpu_s(int pid) {
    long long t = proc_ticks(pid);
    return t < 0 ? -1 : (double)t / (double)sysconf(_SC_CLK_TCK);
}

static long proc_rss_kib(int pid) {
    char path[64], line[256];
    long v = -1;
    if (pid <= 0) return -1;
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmRSS: %ld", &v) == 1) break;
    fclose(f);
    return v;
}

/* Per-CPU jiffies from /proc/stat: busy (all but idle and iowait) and the
 * softirq share. On loopback the kernel's TCP work partly runs in softirq
 * context, charged to whichever CPU raised it and not always to a process,
 * so process CPU% alone does not show how loaded a core is. */
#define MAXCPU 16
typedef struct {
    unsigned long long busy[MAXCPU], total[MAXCPU], si[MAXCPU], proc[MAXCPU];
    long long srv, self;   /* ticks of the server and of this process */
    int n;
} cpustat_t;


static void cpustat_read(cpustat_t *cs) {
    char line[512];
    memset(cs, 0, sizeof *cs);
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return;
    while (fgets(line, sizeof line, f)) {
        int id;
        unsigned long long v[10] = { 0 };
        if (strncmp(line, "cpu", 3) || line[3] < '0' || line[3] > '9') continue;
        if (sscanf(line, "cpu%d %llu %llu %llu %llu %llu %llu %llu %llu", &id, &v[0], &v[1], &v[2],
                   &v[3], &v[4], &v[5], &v[6], &v[7]) < 9 || id < 0 || id >= MAXCPU)
            continue;
        unsigned long long tot = 0;
        for (int k = 0; k < 8; k++) tot += v[k];
        cs->total[id] = tot;
        cs->busy[id] = tot - v[3] - v[4];
        cs->si[id] = v[6];
        cs->proc[id] = v[0] + v[1] + v[2];   /* user + nice + system */
        if (id + 1 > cs->n) cs->n = id + 1;
    }
    fclose(f);
    cs->srv = proc_ticks(opt.server_pid);
    cs->self = proc_ticks(getpid());
}

static void cpustat_print(const cpustat_t *a, const cpustat_t *b) {
    for (int i = 0; i < a->n && i < b->n; i++) {
        unsigned long long t = b->total[i] - a->total[i];
        if (!t) continue;
        printf(" cpu%d_busy_pct=%.0f cpu%d_si_pct=%.0f", i, 100.0 * (double)(b->busy[i] - a->busy[i]) / (double)t,
               i, 100.0 * (double)(b->si[i] - a->si[i]) / (double)t);
    }
    /* interference: process time on any CPU that was neither the server's nor
     * ours (other programs on the machine), in percent of one core. Same
     * tick accounting on both sides of the subtraction. */
    unsigned long long all = 0, tot = 0;
    for (int i = 0; i < a->n && i < b->n; i++) {
        all += b->proc[i] - a->proc[i];
        tot += b->total[i] - a->total[i];
    }
    long long mine = (b->self - a->self) + (opt.server_pid > 0 && a->srv >= 0 && b->srv >= 0 ? b->srv - a->srv : 0);
    if (tot && a->n) {
        double per_core = (double)tot / a->n;
        double other = ((double)all - (double)mine) / per_core * 100;
        printf(" others_pct=%.0f", other < 0 ? 0 : other);
    }
}

/* ------------------------------------------------------------ histogram */
/* Log-linear buckets over nanoseconds: 32 sub-buckets per power of two,
 * so a reported percentile is within ~3% of the true value. */

#define HSUB 5
#define HBUCKETS (64 << HSUB)

typedef struct {
    uint64_t b[HBUCKETS];
    uint64_t n, max;
} hist_t;

static int hist_index(uint64_t v) {
    if (v < (1u << HSUB)) return (int)v;
    int msb = 63 - __builtin_clzll(v);
    int shift = msb - HSUB;
    return ((shift + 1) << HSUB) + (int)((v >> shift) & ((1u << HSUB) - 1));
}

static uint64_t hist_value(int i) {   /* middle of bucket i */
    if (i < (1 << HSUB)) return (uint64_t)i;
    int shift = (i >> HSUB) - 1;
    uint64_t lo = ((uint64_t)(1u << HSUB) + (uint64_t)(i & ((1 << HSUB) - 1))) << shift;
    return lo + (((uint64_t)1 << shift) >> 1);
}

static void hist_add(hist_t *h, uint64_t v) {
    h->b[hist_index(v)]++;
    h->n++;
    if (v > h->max) h->max = v;
}

static double hist_us(const hist_t *h, double q) {   /* quantile, microseconds */
    if (!h->n) return 0;
    uint64_t want = (uint64_t)(q * (double)h->n + 0.999999), acc = 0;
    if (want < 1) want = 1;
    for (int i = 0; i < HBUCKETS; i++) {
        acc += h->b[i];
        if (acc >= want) {
            uint64_t v = hist_value(i);
            return (double)(v > h->max ? h->max : v) / 1e3;
        }
    }
    return (double)h->max / 1e3;
}

/* ------------------------------------------------------------ sockets */

static int epfd = -1;
static struct sockaddr_in srv;
static volatile sig_atomic_t stop_flag, rtt_flag;

static void on_stop(int sig) { (void)sig; stop_flag = 1; }
static void on_rtt(int sig) { (void)sig; rtt_flag = 1; }

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...) {
    if (opt.quiet) return;
    va_list ap;
    va_start(ap, fmt);
    fputs("loadgen: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static int ep_set(int op, int fd, uint32_t ev, uint32_t idx) {
    struct epoll_event e = { .events = ev, .data.u32 = idx };
    return epoll_ctl(epfd, op, fd, &e);
}

/* bind_source binds fd to connection i's source address, if asked for */
static int bind_source(int fd, int i) {
    if (opt.src_count == 0) return 0;
    struct sockaddr_in a = { .sin_family = AF_INET };
    a.sin_addr.s_addr = htonl(0x7f000001u + opt.src_first + (uint32_t)i % opt.src_count);
#ifdef IP_BIND_ADDRESS_NO_PORT
    int one = 1;   /* the port is chosen at connect, per destination */
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
#endif
    return bind(fd, (struct sockaddr *)&a, sizeof a);
}

/* starts a non-blocking connect for connection i; returns the fd or -1
 * (errno set) */
static int start_connect(int i) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (bind_source(fd, i) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    if (connect(fd, (struct sockaddr *)&srv, sizeof srv) < 0 && errno != EINPROGRESS) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

static int sock_error(int fd) {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) return errno;
    return err;
}

/* ------------------------------------------------------------ connections */

enum { C_NEW, C_CONNECTING, C_UP, C_DEAD };

typedef struct {
    int fd, state;
    uint32_t seq;          /* echo: message number; chat: next line number */
    size_t off;            /* echo: offset of the message in the pattern */
    size_t sent, rcvd;     /* echo: progress of the current message */
    uint64_t t0;           /* echo: send time of the current message */
    uint64_t done, done_win;
    int pollout;
    /* chat */
    char *in;              /* partial incoming line */
    size_t inlen;
    char *out;             /* unsent outgoing bytes */
    size_t outlen, outcap;
    uint32_t *next_from;   /* next expected seq from each sender */
    int synced;
} conn_t;

static conn_t *cs;
static int n_up, n_dead, n_connecting, next_new;

static struct {
    uint64_t conn_fail, reset, eof, mismatch, io_err, closed_by_peer, stray;
} err;

static const char *fail_reason(int e) {
    if (e == ECONNRESET || e == EPIPE) return "reset";
    return "io";
}

static void conn_kill(int i, const char *why) {
    conn_t *c = &cs[i];
    if (c->state == C_DEAD) return;
    if (c->state == C_UP) n_up--;
    if (c->state == C_CONNECTING) n_connecting--;
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    c->state = C_DEAD;
    n_dead++;
    (void)why;
}

/* keeps up to connect_batch connects in flight */
static void pump_connects(void) {
    while (next_new < opt.conns && n_connecting < opt.connect_batch) {
        int i = next_new++;
        int fd = start_connect(i);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE) {
                note("out of file descriptors at connection %d (%s)", i, strerror(errno));
            }
            err.conn_fail++;
            cs[i].state = C_DEAD;
            cs[i].fd = -1;
            n_dead++;
            continue;
        }
        cs[i].fd = fd;
        cs[i].state = C_CONNECTING;
        n_connecting++;
        ep_set(EPOLL_CTL_ADD, fd, EPOLLOUT, (uint32_t)i);
    }
}

/* EPOLLOUT on a connecting socket: 1 when it is up */
static int finish_connect(int i) {
    conn_t *c = &cs[i];
    int e = sock_error(c->fd);
    if (e) {
        err.conn_fail++;
        conn_kill(i, "connect");
        return 0;
    }
    c->state = C_UP;
    n_connecting--;
    n_up++;
    ep_set(EPOLL_CTL_MOD, c->fd, EPOLLIN, (uint32_t)i);
    return 1;
}

static void want_out(int i, int on) {
    conn_t *c = &cs[i];
    if (c->pollout == on) return;
    c->pollout = on;
    ep_set(EPOLL_CTL_MOD, c->fd, EPOLLIN | (on ? EPOLLOUT : 0), (uint32_t)i);
}

/* ------------------------------------------------------------ echo */

#define PATTERN_SPAN (1u << 20)
static unsigned char *pattern;
static unsigned char rbuf[256 * 1024];

static uint64_t mix64(uint64_t x) {   /* splitmix64 finaliser */
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static void make_pattern(size_t extra) {
    pattern = malloc(PATTERN_SPAN + extra);
    if (!pattern) { perror("malloc"); exit(2); }
    uint64_t s = 0x636f726f6e6574ull;   /* fixed seed: runs are comparable */
    for (size_t i = 0; i < PATTERN_SPAN + extra; i += 8) {
        s = mix64(s);
        size_t k = PATTERN_SPAN + extra - i < 8 ? PATTERN_SPAN + extra - i : 8;
        memcpy(pattern + i, &s, k);
    }
}

static int echo_send_more(int i) {   /* 0 ok, -1 connection killed */
    conn_t *c = &cs[i];
    while (c->sent < opt.size) {
        ssize_t n = send(c->fd, pattern + c->off + c->sent, opt.size - c->sent, MSG_NOSIGNAL);
        if (n > 0) { c->sent += (size_t)n; continue; }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) { want_out(i, 1); return 0; }
        if (fail_reason(errno)[0] == 'r') err.reset++; else err.io_err++;
        conn_kill(i, "send");
        return -1;
    }
    want_out(i, 0);
    return 0;
}

static void echo_start(int i, uint64_t t) {
    conn_t *c = &cs[i];
    c->seq++;
    c->off = (size_t)(mix64(((uint64_t)i << 32) ^ c->seq) % PATTERN_SPAN);
    c->sent = c->rcvd = 0;
    c->t0 = t;
    echo_send_more(i);
}

static hist_t lat;
static uint64_t win_start, win_end;   /* measured window, ns; 0 = not yet */
static int stopping;

/* recv_some reads what connection i has into rbuf: the count, or 0 when
 * there is nothing now or the connection failed (counted and killed). */
static ssize_t recv_some(int i) {
    ssize_t n = recv(cs[i].fd, rbuf, sizeof rbuf, 0);
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return 0;
        if (fail_reason(errno)[0] == 'r') err.reset++; else err.io_err++;
        conn_kill(i, "recv");
        return 0;
    }
    if (n == 0) {
        err.eof++;
        conn_kill(i, "eof");
    }
    return n;
}

static void echo_readable(int i) {
    conn_t *c = &cs[i];
    ssize_t n = recv_some(i);
    if (n == 0) return;
    /* the server can only echo what was sent, and only this message */
    if (c->rcvd + (size_t)n > c->sent || memcmp(rbuf, pattern + c->off + c->rcvd, (size_t)n) != 0) {
        err.mismatch++;
        conn_kill(i, "mismatch");
        return;
    }
    c->rcvd += (size_t)n;
    if (c->rcvd < opt.size) return;
    uint64_t t = now_ns();
    c->done++;
    if (win_start && t >= win_start && t < win_end) {
        c->done_win++;
        hist_add(&lat, t - c->t0);
    }
    if (!stopping && opt.mode == M_ECHO) echo_start(i, t);   /* idle: one round trip */
}

/* ------------------------------------------------------------ chat */
/* Lines sent: "#CB#M<client>.<seq>.<ns>#" padded to a fixed length. */

static uint64_t chat_sent, chat_sent_win, chat_deliv, chat_deliv_win, chat_dup, chat_reorder;
static uint64_t chat_bad_token, chat_expected;
static uint64_t chat_t0;   /* load start */
static uint32_t *chat_sent_by;   /* lines sent by each client */

static int out_append(conn_t *c, const char *s, size_t n) {
    if (c->outlen + n > c->outcap) {
        size_t cap = c->outcap ? c->outcap * 2 : 4096;
        while (cap < c->outlen + n) cap *= 2;
        if (cap > (64u << 20)) return -1;   /* the server stopped reading: give up */
        char *p = realloc(c->out, cap);
        if (!p) return -1;
        c->out = p;
        c->outcap = cap;
    }
    memcpy(c->out + c->outlen, s, n);
    c->outlen += n;
    return 0;
}

static int chat_flush(int i) {
    conn_t *c = &cs[i];
    while (c->outlen) {
        ssize_t n = send(c->fd, c->out, c->outlen, MSG_NOSIGNAL);
        if (n > 0) {
            memmove(c->out, c->out + n, c->outlen - (size_t)n);
            c->outlen -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) { want_out(i, 1); return 0; }
        if (fail_reason(errno)[0] == 'r') err.reset++; else err.io_err++;
        conn_kill(i, "send");
        return -1;
    }
    want_out(i, 0);
    return 0;
}

static void chat_line(int i, char *line, size_t len, uint64_t t) {
    conn_t *c = &cs[i];
    line[len] = 0;
    char *tok = strstr(line, "#CB#");
    if (!tok) {   /* welcome, joined, sync: not part of the load */
        if (strstr(line, "#SYNC#")) c->synced = 1;
        return;
    }
    unsigned from = 0, seq = 0;
    unsigned long long ns = 0;
    if (sscanf(tok, "#CB#M%u.%u.%llu#", &from, &seq, &ns) != 3 || (int)from >= opt.conns ||
        (int)from == i) {
        chat_bad_token++;
        return;
    }
    uint32_t want = c->next_from[from];
    if (seq < want) { chat_dup++; return; }
    if (seq > want) chat_reorder++;   /* a gap: earlier lines lost or overtaken */
    c->next_from[from] = seq + 1;
    chat_deliv++;
    uint64_t sched = chat_t0 + ns;
    if (win_start && sched >= win_start && sched < win_end) {
        chat_deliv_win++;
        hist_add(&lat, t > sched ? t - sched : 0);
    }
}

/* split_lines hands each complete line of the n bytes connection i just
 * read (in rbuf) to fn, NUL-terminated and without its newline; a line
 * cut by the end of the read waits in the connection's input buffer. */
typedef void line_fn(int i, char *line, size_t len, uint64_t t);
static void split_lines(int i, size_t n, uint64_t t, line_fn *fn) {
    conn_t *c = &cs[i];
    size_t start = 0;
    for (size_t k = 0; k < n; k++) {
        if (rbuf[k] != '\n') continue;
        size_t part = k - start;
        if (c->inlen) {   /* the line began in an earlier read */
            size_t tot = c->inlen + part;
            if (tot < 8192) {
                memcpy(c->in + c->inlen, rbuf + start, part);
                fn(i, c->in, tot, t);
            }
            c->inlen = 0;
        } else if (part < 8192) {
            char line[8192];
            memcpy(line, rbuf + start, part);
            fn(i, line, part, t);
        }
        start = k + 1;
    }
    size_t rest = n - start;
    if (rest) {
        if (c->inlen + rest < 8192) memcpy(c->in + c->inlen, rbuf + start, rest);
        c->inlen += rest;
        if (c->inlen >= 8192) c->inlen = 8191;   /* over-long: truncated, token kept */
    }
}

static int chat_writable(int i) { return chat_flush(i); }

static void chat_readable(int i) {
    ssize_t n = recv_some(i);
    if (n > 0) split_lines(i, (size_t)n, now_ns(), chat_line);
}

/* ------------------------------------------------------------ main loop */

static int loop_once(int timeout_ms, void (*readable)(int), int (*writable)(int)) {
    struct epoll_event ev[512];
    int n = epoll_wait(epfd, ev, 512, timeout_ms);
    if (n < 0) {
        if (errno == EINTR) return 0;
        perror("epoll_wait");
        exit(2);
    }
    for (int k = 0; k < n; k++) {
        int i = (int)ev[k].data.u32;
        conn_t *c = &cs[i];
        if (c->state == C_CONNECTING) {
            if (finish_connect(i) && writable) writable(i);
            continue;
        }
        if (c->state != C_UP) continue;
        if (ev[k].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) readable(i);
        if (c->state == C_UP && (ev[k].events & EPOLLOUT) && writable) writable(i);
    }
    return n;
}

static int ms_until(uint64_t t, uint64_t now, int cap) {
    if (t <= now) return 0;
    uint64_t ms = (t - now) / 1000000 + 1;
    return ms > (uint64_t)cap ? cap : (int)ms;
}

static int echo_writable_first(int i) {   /* just connected, or EPOLLOUT */
    conn_t *c = &cs[i];
    if (c->seq == 0) { echo_start(i, now_ns()); return 0; }
    return echo_send_more(i);
}

static void print_errors(void) {
    printf(" errors=%llu conn_fail=%llu reset=%llu eof=%llu io_err=%llu mismatch=%llu",
           (unsigned long long)(err.conn_fail + err.reset + err.eof + err.io_err + err.mismatch),
           (unsigned long long)err.conn_fail, (unsigned long long)err.reset,
           (unsigned long long)err.eof, (unsigned long long)err.io_err,
           (unsigned long long)err.mismatch);
}

static int run_echo(void) {
    make_pattern(opt.size);
    uint64_t t_begin = now_ns();
    uint64_t conn_deadline = t_begin + sec_ns(opt.connect_timeout);
    uint64_t connected_at = 0, prime_deadline = 0, warm_end = 0;
    int primed = 0, started = 0;

    /* connect every connection, then prime: each does one round trip.
     * (Echoing while others still connect would let the server fall
     * behind on accepting: past its backlog the kernel drops handshakes,
     * and those connections wait seconds for a retransmission.) */
    for (;;) {
        pump_connects();
        uint64_t t = now_ns();
        if (!connected_at && n_connecting == 0 && next_new >= opt.conns) {
            connected_at = t;
            prime_deadline = t + sec_ns(opt.prime_timeout);
        }
        if (!connected_at && t >= conn_deadline) {
            note("%d connects still pending after %.0f s", n_connecting, opt.connect_timeout);
            for (int i = 0; i < opt.conns; i++)
                if (cs[i].state == C_CONNECTING || cs[i].state == C_NEW) {
                    err.conn_fail++;
                    if (cs[i].state == C_NEW) { cs[i].state = C_DEAD; n_dead++; }
                    else conn_kill(i, "connect timeout");
                }
            next_new = opt.conns;
            connected_at = t;
            prime_deadline = t + sec_ns(opt.prime_timeout);
        }
        if (connected_at && !started) {
            started = 1;
            for (int i = 0; i < opt.conns; i++)
                if (cs[i].state == C_UP) echo_start(i, t);
        }
        if (connected_at) {
            primed = 0;
            for (int i = 0; i < opt.conns; i++) primed += cs[i].done > 0;
            if (primed == n_up || t >= prime_deadline || stop_flag) break;
        }
        loop_once(ms_until(connected_at ? prime_deadline : conn_deadline, t, 50),
                  echo_readable, connected_at ? echo_writable_first : NULL);
    }
    double connect_s = (double)(connected_at - t_begin) / 1e9;
    if (primed < n_up)
        note("only %d of %d connections completed a round trip within %.0f s", primed, n_up,
             opt.prime_timeout);

    /* warm up, then measure */
    uint64_t t = now_ns();
    warm_end = t + sec_ns(opt.warmup);
    while (!stop_flag && (t = now_ns()) < warm_end)
        loop_once(ms_until(warm_end, t, 100), echo_readable, echo_writable_first);
    win_start = now_ns();
    win_end = win_start + sec_ns(opt.duration);
    double cpu0 = self_cpu_s(), scpu0 = proc_cpu_s(opt.server_pid);
    cpustat_t k0, k1;
    cpustat_read(&k0);
    while (!stop_flag && (t = now_ns()) < win_end)
        loop_once(ms_until(win_end, t, 100), echo_readable, echo_writable_first);
    uint64_t t_end = now_ns();
    if (t_end > win_end) t_end = win_end;
    double cpu1 = self_cpu_s(), scpu1 = proc_cpu_s(opt.server_pid);
    cpustat_read(&k1);
    long srss = proc_rss_kib(opt.server_pid);
    stopping = 1;

    /* oldest round trip still in flight at the end */
    uint64_t oldest = 0, dmin = UINT64_MAX, dmax = 0;
    int starved = 0, live = 0;
    for (int i = 0; i < opt.conns; i++) {
        conn_t *c = &cs[i];
        if (c->state != C_UP) continue;
        live++;
        if (c->done_win == 0) starved++;
        if (c->done_win < dmin) dmin = c->done_win;
        if (c->done_win > dmax) dmax = c->done_win;
        if (c->rcvd < opt.size && t_end > c->t0 && t_end - c->t0 > oldest) oldest = t_end - c->t0;
    }
    if (!live) dmin = 0;
    double win = (double)(t_end - win_start) / 1e9;
    uint64_t errors = err.conn_fail + err.reset + err.eof + err.io_err + err.mismatch;
    printf("mode=echo conns=%d size=%zu duration=%.2f msgs=%llu msgs_s=%.0f MiB_s=%.2f"
           " p50_us=%.1f p90_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f",
           opt.conns, opt.size, win, (unsigned long long)lat.n, win > 0 ? lat.n / win : 0,
           win > 0 ? (double)lat.n * (double)opt.size / win / 1048576.0 : 0,
           hist_us(&lat, 0.5), hist_us(&lat, 0.9), hist_us(&lat, 0.99), hist_us(&lat, 0.999),
           (double)lat.max / 1e3);
    printf(" live=%d primed=%d starved=%d conn_min_msgs=%llu conn_max_msgs=%llu oldest_inflight_us=%.0f",
           live, primed, starved, (unsigned long long)dmin, (unsigned long long)dmax,
           (double)oldest / 1e3);
    print_errors();
    printf(" verify=%s connect_s=%.2f lg_cpu_pct=%.0f", err.mismatch ? "failed" : "ok", connect_s,
           win > 0 ? 100 * (cpu1 - cpu0) / win : 0);
    if (opt.server_pid > 0 && scpu0 >= 0 && scpu1 >= 0)
        printf(" srv_cpu_pct=%.0f srv_rss_kib=%ld", win > 0 ? 100 * (scpu1 - scpu0) / win : 0, srss);
    cpustat_print(&k0, &k1);
    printf("\n");
    fflush(stdout);
    return (errors || starved || lat.n == 0 || primed < opt.conns) ? 1 : 0;
}

/* idle: connect, ping once, hold */
static int idle_readable_phase;   /* 0 ping phase, 1 hold phase */
static void idle_readable(int i) {
    if (!idle_readable_phase && opt.ping) { echo_readable(i); return; }
    conn_t *c = &cs[i];
    ssize_t n = recv(c->fd, rbuf, sizeof rbuf, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n > 0) { err.stray++; return; }
    err.closed_by_peer++;
    conn_kill(i, "closed");
}

static int idle_writable(int i) {
    if (!opt.ping) { want_out(i, 0); return 0; }
    return echo_writable_first(i);
}

/* idle_round_trip has every held connection do one more round trip (at
 * most --prime-timeout seconds) and prints how many did. */
static void idle_round_trip(void) {
    uint64_t t0 = now_ns(), end = t0 + sec_ns(opt.prime_timeout), t;
    uint64_t before = 0, after = 0;
    int asked = 0, ok = 0;
    idle_readable_phase = 0;
    for (int i = 0; i < opt.conns; i++) {
        if (cs[i].state != C_UP) continue;
        before += cs[i].done;
        asked++;
        echo_start(i, t0);
    }
    while (!stop_flag && (t = now_ns()) < end) {
        after = 0;
        for (int i = 0; i < opt.conns; i++) after += cs[i].state == C_UP ? cs[i].done : 0;
        if (after - before >= (uint64_t)asked) break;
        loop_once(ms_until(end, t, 50), idle_readable, echo_writable_first);
    }
    for (int i = 0; i < opt.conns; i++)
        if (cs[i].state == C_UP && cs[i].rcvd == opt.size) ok++;
    idle_readable_phase = 1;
    printf("rtt ok=%d failed=%d secs=%.2f\n", ok, asked - ok, (double)(now_ns() - t0) / 1e9);
    fflush(stdout);
}

static int run_idle(void) {
    make_pattern(opt.size);
    stopping = 0;
    uint64_t t_begin = now_ns(), t;
    uint64_t deadline = t_begin + sec_ns(opt.connect_timeout);
    int pinged = 0;
    for (;;) {
        pump_connects();
        t = now_ns();
        pinged = 0;
        for (int i = 0; i < opt.conns; i++) pinged += cs[i].done > 0;
        int settled = next_new >= opt.conns && n_connecting == 0 && (!opt.ping || pinged >= n_up);
        if (settled || t >= deadline || stop_flag) break;
        loop_once(ms_until(deadline, t, 50), idle_readable, idle_writable);
    }
    stopping = 1;
    for (int i = 0; i < opt.conns; i++)
        if (cs[i].state == C_CONNECTING) { err.conn_fail++; conn_kill(i, "connect timeout"); }
    double connect_s = (double)(now_ns() - t_begin) / 1e9;
    if (opt.ping && pinged < n_up) note("only %d of %d connections echoed", pinged, n_up);
    idle_readable_phase = 1;
    printf("ready %d\n", n_up);
    fflush(stdout);
    note("holding %d connections (%d failed) for up to %.0f s", n_up, n_dead, opt.hold);
    uint64_t hold_end = now_ns() + sec_ns(opt.hold);
    while (!stop_flag && (t = now_ns()) < hold_end) {
        if (rtt_flag) {
            rtt_flag = 0;
            idle_round_trip();
        }
        loop_once(ms_until(hold_end, t, 200), idle_readable, NULL);
    }
    printf("mode=idle conns=%d connected=%d pinged=%d closed_by_peer=%llu stray_bytes_events=%llu"
           " connect_s=%.2f",
           opt.conns, n_up + (int)err.closed_by_peer, opt.ping ? pinged : 0,
           (unsigned long long)err.closed_by_peer, (unsigned long long)err.stray, connect_s);
    print_errors();
    printf("\n");
    fflush(stdout);
    return (err.conn_fail || err.closed_by_peer || err.mismatch || (opt.ping && pinged < opt.conns)) ? 1 : 0;
}

/* room_join connects every client (with an input buffer each) and waits
 * until the server has them all in the room: client 0 says "#SYNC#" (again
 * every 200 ms, for late joiners) until every other client has seen it.
 * 1 when every client did within --prime-timeout. */
static int room_join(void (*readable)(int)) {
    uint64_t deadline = now_ns() + sec_ns(opt.connect_timeout), t;
    for (int i = 0; i < opt.conns; i++) {
        cs[i].in = malloc(8192);
        if (!cs[i].in) { perror("malloc"); exit(2); }
    }
    for (;;) {
        pump_connects();
        t = now_ns();
        if ((next_new >= opt.conns && n_connecting == 0) || t >= deadline || stop_flag) break;
        loop_once(ms_until(deadline, t, 50), readable, chat_writable);
    }
    for (int i = 0; i < opt.conns; i++)
        if (cs[i].state == C_CONNECTING) { err.conn_fail++; conn_kill(i, "connect timeout"); }
    uint64_t sync_end = now_ns() + sec_ns(opt.prime_timeout), resend = 0;
    while (cs[0].state == C_UP && !stop_flag && (t = now_ns()) < sync_end) {
        int seen = 0;
        for (int i = 1; i < opt.conns; i++) seen += cs[i].state == C_UP && cs[i].synced;
        if (seen == n_up - 1) return 1;
        if (t >= resend && cs[0].state == C_UP) {
            out_append(&cs[0], "#SYNC#\n", 7);
            chat_flush(0);
            resend = t + 200000000ull;
        }
        loop_once(50, readable, chat_writable);
    }
    note("not every client saw the others join within %.0f s", opt.prime_timeout);
    return 0;
}

static int run_chat(void) {
    uint64_t t;
    chat_sent_by = calloc((size_t)opt.conns, sizeof *chat_sent_by);
    for (int i = 0; i < opt.conns; i++) {
        cs[i].next_from = calloc((size_t)opt.conns, sizeof(uint32_t));
        if (!cs[i].next_from) { perror("malloc"); return 2; }
    }
    int sync_ok = room_join(chat_readable);

    /* load: line k goes out at chat_t0 + k / rate, from client k % conns */
    chat_t0 = now_ns();
    double gap_ns = 1e9 / opt.rate;
    uint64_t load_end = chat_t0 + sec_ns(opt.warmup + opt.duration);
    win_start = chat_t0 + sec_ns(opt.warmup);
    win_end = load_end;
    uint64_t k = 0;
    double cpu0 = 0, scpu0 = -1, cpu1 = 0, scpu1 = -1;
    cpustat_t k0, k1;
    memset(&k0, 0, sizeof k0);
    int in_win = 0;
    char line[128];
    while (!stop_flag && (t = now_ns()) < load_end) {
        if (!in_win && t >= win_start) {
            in_win = 1;
            cpu0 = self_cpu_s();
            scpu0 = proc_cpu_s(opt.server_pid);
            cpustat_read(&k0);
        }
        while (1) {
            uint64_t due = chat_t0 + (uint64_t)((double)k * gap_ns);
            if (due > t || due >= load_end) break;
            int from = (int)(k % (uint64_t)opt.conns);
            k++;
            conn_t *c = &cs[from];
            if (c->state != C_UP) continue;
            uint32_t seq = chat_sent_by[from]++;
            int len = snprintf(line, sizeof line, "hello #CB#M%d.%u.%llu# xxxxxxxx\n", from, seq,
                               (unsigned long long)(due - chat_t0));
            if (out_append(c, line, (size_t)len) < 0) { err.io_err++; conn_kill(from, "queue"); continue; }
            chat_sent++;
            if (due >= win_start) chat_sent_win++;
            chat_flush(from);
        }
        uint64_t next = chat_t0 + (uint64_t)((double)k * gap_ns);
        loop_once(ms_until(next < load_end ? next : load_end, t, 20), chat_readable, chat_writable);
    }
    cpu1 = self_cpu_s();
    scpu1 = proc_cpu_s(opt.server_pid);
    cpustat_read(&k1);
    long srss = proc_rss_kib(opt.server_pid);
    /* drain: late deliveries still count (and their latency shows it) */
    uint64_t drain_end = now_ns() + sec_ns(opt.drain);
    int live_senders = 0;
    for (int i = 0; i < opt.conns; i++) live_senders += cs[i].state == C_UP;
    /* expected: every line sent to every other client still connected */
    for (int from = 0; from < opt.conns; from++) {
        for (int to = 0; to < opt.conns; to++)
            if (to != from && cs[to].state == C_UP) chat_expected += chat_sent_by[from];
    }
    while (!stop_flag && (t = now_ns()) < drain_end && chat_deliv < chat_expected)
        loop_once(ms_until(drain_end, t, 50), chat_readable, chat_writable);
    uint64_t lost = chat_expected > chat_deliv ? chat_expected - chat_deliv : 0;
    double win = opt.duration;
    uint64_t errors = err.conn_fail + err.reset + err.eof + err.io_err + err.mismatch;
    printf("mode=chat clients=%d rate=%.0f duration=%.2f sent=%llu sent_s=%.0f expected=%llu"
           " delivered=%llu deliveries_s=%.0f lost=%llu loss_pct=%.3f dup=%llu reorder=%llu"
           " bad_token=%llu p50_us=%.1f p90_us=%.1f p99_us=%.1f p999_us=%.1f max_us=%.1f"
           " sync=%s live=%d",
           opt.conns, opt.rate, win, (unsigned long long)chat_sent, chat_sent_win / win,
           (unsigned long long)chat_expected, (unsigned long long)chat_deliv,
           chat_deliv_win / win, (unsigned long long)lost,
           chat_expected ? 100.0 * (double)lost / (double)chat_expected : 0,
           (unsigned long long)chat_dup, (unsigned long long)chat_reorder,
           (unsigned long long)chat_bad_token, hist_us(&lat, 0.5), hist_us(&lat, 0.9),
           hist_us(&lat, 0.99), hist_us(&lat, 0.999), (double)lat.max / 1e3,
           sync_ok ? "ok" : "failed", live_senders);
    print_errors();
    printf(" lg_cpu_pct=%.0f", in_win ? 100 * (cpu1 - cpu0) / win : 0);
    if (opt.server_pid > 0 && scpu0 >= 0 && scpu1 >= 0)
        printf(" srv_cpu_pct=%.0f srv_rss_kib=%ld", 100 * (scpu1 - scpu0) / win, srss);
    if (in_win) cpustat_print(&k0, &k1);
    printf("\n");
    fflush(stdout);
    return (errors || lost || chat_dup || chat_reorder || !sync_ok) ? 1 : 0;
}

/* ------------------------------------------------------------ reach */
/* Broadcast reach: client 0 says a line every 1/RATE s, "#RCH#<k>.<ns>#"
 * with ns its CLOCK_REALTIME at the send; every other client notes when
 * line k reached it. The time used is the kernel's receive timestamp
 * (SO_TIMESTAMPNS: on loopback, when the server's write entered the
 * client's socket), so this loop being busy with other clients does not
 * count; the time this loop read the line is kept for comparison. */

#define REACH_NONE UINT32_MAX
static uint32_t *reach_k, *reach_u;   /* [line * conns + client]: µs after the send */
static uint64_t reach_lines, reach_first, reach_got, reach_dup, reach_bad, reach_nostamp;
static uint64_t reach_kstamp;   /* the current read's kernel timestamp, 0: none */

static uint64_t real_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint32_t reach_us(uint64_t t, uint64_t sent) {
    uint64_t us = t > sent ? (t - sent) / 1000 : 0;
    return us >= REACH_NONE ? REACH_NONE - 1 : (uint32_t)us;
}

static void reach_line(int i, char *line, size_t len, uint64_t t) {
    line[len] = 0;
    if (strstr(line, "#SYNC#")) { cs[i].synced = 1; return; }
    char *tok = strstr(line, "#RCH#");
    if (!tok) return;   /* welcome, joins */
    unsigned long long k, ns;
    if (sscanf(tok, "#RCH#%llu.%llu#", &k, &ns) != 2 || k >= reach_lines || i == 0) {
        reach_bad++;
        return;
    }
    size_t at = (size_t)k * (size_t)opt.conns + (size_t)i;
    if (reach_k[at] != REACH_NONE) { reach_dup++; return; }
    if (!reach_kstamp) reach_nostamp++;
    reach_k[at] = reach_us(reach_kstamp ? reach_kstamp : t, ns);
    reach_u[at] = reach_us(t, ns);
    if (k >= reach_first) reach_got++;
}

/* reach_readable reads like recv_some, with the kernel's timestamp of the
 * data (that of the last segment read) in reach_kstamp */
static void reach_readable(int i) {
    char ctl[CMSG_SPACE(sizeof(struct timespec))];
    struct iovec iov = { .iov_base = rbuf, .iov_len = sizeof rbuf };
    struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
                        .msg_controllen = sizeof ctl };
    ssize_t n = recvmsg(cs[i].fd, &m, 0);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
        if (n == 0) err.eof++;
        else if (fail_reason(errno)[0] == 'r') err.reset++;
        else err.io_err++;
        conn_kill(i, "recv");
        return;
    }
    reach_kstamp = 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_TIMESTAMPNS) continue;
        struct timespec ts;
        memcpy(&ts, CMSG_DATA(c), sizeof ts);
        reach_kstamp = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
    }
    split_lines(i, (size_t)n, real_ns(), reach_line);
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

/* q-quantile of n sorted values (nearest rank) */
static uint32_t rank_q(const uint32_t *v, size_t n, double q) {
    size_t r = (size_t)(q * (double)n + 0.999999);
    return n ? v[(r ? r : 1) - 1] : REACH_NONE;
}

/* reach_stats: for each measured line, the time until half, 99% and all
 * of the members had it, from table tab; then over the lines, the median
 * of the first two and the p50, p90 and max of the third. Incomplete lines
 * (a member never got it) count in half and 99% only; -1 is never. */
static void reach_stats(const uint32_t *tab, uint64_t first, const char *pre) {
    size_t m = (size_t)opt.conns - 1, nl = (size_t)(reach_lines - first), full = 0;
    uint32_t *v = malloc(m * sizeof *v), *half = malloc(nl * sizeof *half),
             *p99 = malloc(nl * sizeof *p99), *all = malloc(nl * sizeof *all);
    if (!v || !half || !p99 || !all) { perror("malloc"); exit(2); }
    for (size_t l = 0; l < nl; l++) {
        memcpy(v, tab + (first + l) * (size_t)opt.conns + 1, m * sizeof *v);
        qsort(v, m, sizeof *v, cmp_u32);
        half[l] = rank_q(v, m, 0.5);
        p99[l] = rank_q(v, m, 0.99);
        if (v[m - 1] != REACH_NONE) all[full++] = v[m - 1];
    }
    qsort(half, nl, sizeof *half, cmp_u32);
    qsort(p99, nl, sizeof *p99, cmp_u32);
    qsort(all, full, sizeof *all, cmp_u32);
    /* -1: never (the median line never reached half, or no line all) */
    long long h = rank_q(half, nl, 0.5), q = rank_q(p99, nl, 0.5);
    printf(" %shalf_us=%lld %sp99_us=%lld", pre, h == REACH_NONE ? -1 : h, pre,
           q == REACH_NONE ? -1 : q);
    printf(" %sall_p50_us=%lld %sall_p90_us=%lld %sall_max_us=%lld", pre,
           full ? (long long)rank_q(all, full, 0.5) : -1, pre,
           full ? (long long)rank_q(all, full, 0.9) : -1, pre,
           full ? (long long)all[full - 1] : -1);
    if (!*pre) printf(" complete_lines=%zu", full);
    free(v), free(half), free(p99), free(all);
}

static int run_reach(void) {
    uint64_t warm = (uint64_t)(opt.warmup * opt.rate + 0.5);
    reach_first = warm;
    reach_lines = warm + (uint64_t)(opt.duration * opt.rate + 0.5);
    size_t cells = (size_t)reach_lines * (size_t)opt.conns;
    if (reach_lines <= warm || cells > (16u << 20)) {
        fprintf(stderr, "loadgen: reach wants 1 to %u lines x clients (rate x duration)\n",
                16u << 20);
        return 2;
    }
    reach_k = malloc(cells * sizeof *reach_k);
    reach_u = malloc(cells * sizeof *reach_u);
    if (!reach_k || !reach_u) { perror("malloc"); return 2; }
    memset(reach_k, 0xff, cells * sizeof *reach_k);
    memset(reach_u, 0xff, cells * sizeof *reach_u);
    int sync_ok = room_join(reach_readable);
    int one = 1, live = 0;
    for (int i = 0; i < opt.conns; i++)
        if (cs[i].state == C_UP &&
            setsockopt(cs[i].fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one) < 0)
            note("SO_TIMESTAMPNS: %s", strerror(errno));

    /* line k at t0 + k / rate, from client 0; the first `warm` lines are
     * not measured */
    uint64_t t0 = now_ns(), t, k = 0, end;
    double cpu0 = 0, scpu0 = -1;
    cpustat_t k0, k1;
    memset(&k0, 0, sizeof k0);
    char line[128];
    while (!stop_flag && k < reach_lines && cs[0].state == C_UP) {
        uint64_t due = t0 + (uint64_t)((double)k * 1e9 / opt.rate);
        if ((t = now_ns()) >= due) {
            if (k == warm) {
                cpu0 = self_cpu_s();
                scpu0 = proc_cpu_s(opt.server_pid);
                cpustat_read(&k0);
                for (int i = 1; i < opt.conns; i++) live += cs[i].state == C_UP;
            }
            int len = snprintf(line, sizeof line, "reach #RCH#%llu.%llu#\n",
                               (unsigned long long)k, (unsigned long long)real_ns());
            if (out_append(&cs[0], line, (size_t)len) < 0) break;
            chat_flush(0);
            k++;
            continue;
        }
        loop_once(ms_until(due, t, 20), reach_readable, chat_writable);
    }
    /* drain: until every live member has every measured line */
    uint64_t want = (uint64_t)live * (reach_lines - warm), got;
    end = now_ns() + sec_ns(opt.drain);
    while ((got = reach_got) < want && !stop_flag && (t = now_ns()) < end)
        loop_once(ms_until(end, t, 50), reach_readable, chat_writable);
    double win = (double)(now_ns() - t0) / 1e9 - opt.warmup;
    double cpu1 = self_cpu_s(), scpu1 = proc_cpu_s(opt.server_pid);
    cpustat_read(&k1);
    uint64_t lost = want > got ? want - got : 0;
    printf("mode=reach clients=%d rate=%.1f lines=%llu warm_lines=%llu live=%d expected=%llu"
           " delivered=%llu lost=%llu dup=%llu bad_token=%llu no_kstamp=%llu sync=%s",
           opt.conns, opt.rate, (unsigned long long)(reach_lines - warm),
           (unsigned long long)warm, live, (unsigned long long)want, (unsigned long long)got,
           (unsigned long long)lost, (unsigned long long)reach_dup,
           (unsigned long long)reach_bad, (unsigned long long)reach_nostamp,
           sync_ok ? "ok" : "failed");
    reach_stats(reach_k, warm, "");
    reach_stats(reach_u, warm, "read_");
    print_errors();
    if (win > 0) {
        printf(" lg_cpu_pct=%.0f", 100 * (cpu1 - cpu0) / win);
        if (opt.server_pid > 0 && scpu0 >= 0 && scpu1 >= 0)
            printf(" srv_cpu_pct=%.0f srv_rss_kib=%ld", 100 * (scpu1 - scpu0) / win,
                   proc_rss_kib(opt.server_pid));
        cpustat_print(&k0, &k1);
    }
    printf("\n");
    fflush(stdout);
    uint64_t errors = err.conn_fail + err.reset + err.eof + err.io_err;
    return (errors || lost || reach_dup || !sync_ok || !live) ? 1 : 0;
}

/* ------------------------------------------------------------ main */

static double num(const char *s, const char *what) {
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || v < 0) {
        fprintf(stderr, "loadgen: bad %s: %s\n", what, s);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "echo")) opt.mode = M_ECHO;
    else if (!strcmp(argv[1], "idle")) opt.mode = M_IDLE;
    else if (!strcmp(argv[1], "chat")) opt.mode = M_CHAT;
    else if (!strcmp(argv[1], "reach")) opt.mode = M_REACH, opt.rate = 5;
    else { usage(stderr); return 2; }

    enum { O_CT = 256, O_PT, O_CB, O_HOLD, O_NOPING, O_PID, O_RATE, O_DRAIN, O_SRCF,
           O_SRCN };
    static const struct option lo[] = {
        { "host", 1, 0, 'H' }, { "port", 1, 0, 'p' }, { "conns", 1, 0, 'c' },
        { "size", 1, 0, 's' }, { "duration", 1, 0, 'd' }, { "warmup", 1, 0, 'w' },
        { "quiet", 0, 0, 'q' }, { "connect-timeout", 1, 0, O_CT },
        { "prime-timeout", 1, 0, O_PT }, { "connect-batch", 1, 0, O_CB },
        { "hold", 1, 0, O_HOLD }, { "no-ping", 0, 0, O_NOPING },
        { "server-pid", 1, 0, O_PID }, { "rate", 1, 0, O_RATE }, { "drain", 1, 0, O_DRAIN },
        { "src-first", 1, 0, O_SRCF }, { "src-count", 1, 0, O_SRCN },
        { 0, 0, 0, 0 },
    };
    int ch;
    optind = 2;
    while ((ch = getopt_long(argc, argv, "H:p:c:s:d:w:q", lo, NULL)) != -1) {
        switch (ch) {
        case 'H': opt.host = optarg; break;
        case 'p': opt.port = (int)num(optarg, "port"); break;
        case 'c': opt.conns = (int)num(optarg, "connection count"); break;
        case 's': opt.size = (size_t)num(optarg, "size"); break;
        case 'd': opt.duration = num(optarg, "duration"); break;
        case 'w': opt.warmup = num(optarg, "warmup"); break;
        case 'q': opt.quiet = 1; break;
        case O_CT: opt.connect_timeout = num(optarg, "connect timeout"); break;
        case O_PT: opt.prime_timeout = num(optarg, "prime timeout"); break;
        case O_CB: opt.connect_batch = (int)num(optarg, "connect batch"); break;
        case O_HOLD: opt.hold = num(optarg, "hold"); break;
        case O_NOPING: opt.ping = 0; break;
        case O_PID: opt.server_pid = (int)num(optarg, "server pid"); break;
        case O_RATE: opt.rate = num(optarg, "rate"); break;
        case O_DRAIN: opt.drain = num(optarg, "drain"); break;
        case O_SRCF: opt.src_first = (uint32_t)num(optarg, "source first"); break;
        case O_SRCN: opt.src_count = (uint32_t)num(optarg, "source count"); break;
        default: usage(stderr); return 2;
        }
    }
    if (optind < argc || opt.port <= 0 || opt.port > 65535 || opt.conns < 1 ||
        opt.conns > 1000000 || opt.size < 1 || opt.size > (64u << 20) ||
        opt.connect_batch < 1 || (opt.mode >= M_CHAT && (opt.conns < 2 || opt.rate <= 0)) ||
        opt.src_first + opt.src_count > 0xfffffeu) {
        usage(stderr);
        return 2;
    }
    if (opt.duration > 3600 || opt.warmup > 3600 || opt.hold > 3600) {
        fprintf(stderr, "loadgen: durations are capped at 3600 s\n");
        return 2;
    }
    memset(&srv, 0, sizeof srv);
    srv.sin_family = AF_INET;
    srv.sin_port = htons((uint16_t)opt.port);
    if (inet_pton(AF_INET, opt.host, &srv.sin_addr) != 1) {
        fprintf(stderr, "loadgen: not an IPv4 address: %s\n", opt.host);
        return 2;
    }
    if ((ntohl(srv.sin_addr.s_addr) >> 24) != 127) {
        fprintf(stderr, "loadgen: refusing a non-loopback target %s (127.0.0.0/8 only)\n", opt.host);
        return 2;
    }

    /* enough descriptors for every connection */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)opt.conns + 64) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        if (rl.rlim_cur < (rlim_t)opt.conns + 64)
            note("open-file limit %llu is below %d connections", (unsigned long long)rl.rlim_cur,
                 opt.conns);
    }

    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sa.sa_handler = on_rtt;
    sigaction(SIGUSR1, &sa, NULL);
    /* backstop: the whole run is bounded even if something hangs */
    double bound = opt.connect_timeout + opt.prime_timeout + opt.warmup + opt.duration +
                   opt.drain + (opt.mode == M_IDLE ? opt.hold : 0) + 30;
    alarm((unsigned)bound);

    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) { perror("epoll_create1"); return 2; }
    cs = calloc((size_t)opt.conns, sizeof *cs);
    if (!cs) { perror("calloc"); return 2; }
    for (int i = 0; i < opt.conns; i++) cs[i].fd = -1;

    if (opt.mode == M_IDLE) opt.size = 64;
    int rc = opt.mode == M_ECHO   ? run_echo()
             : opt.mode == M_IDLE ? run_idle()
             : opt.mode == M_CHAT ? run_chat()
                                  : run_reach();
    for (int i = 0; i < opt.conns; i++)
        if (cs[i].fd >= 0) close(cs[i].fd);
    return rc;
}
