/* ws-load.c: a small WebSocket load generator for bench/http-bench.sh
** (epoll, no dependencies).
**   ws-load echo -p PORT -c CONNS -s SIZE -d SECS [-w WARMUP] [--path P]
**     CONNS sockets each send a masked binary message of SIZE bytes (at
**     most 125) and wait for its echo, over and over; prints one line
**     "msgs_s=N errors=N conns=N".
**   ws-load idle -p PORT -c CONNS [--path P]
**     opens CONNS sockets past the handshake, prints "ready N", and holds
**     them until SIGTERM. */
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

enum { HANDSHAKE, READY };

typedef struct {
  int fd, state;
  size_t got;
  char buf[4096];
} conn_t;

static int port = 0, nconns = 100, size = 64, secs = 5, warmup = 1;
static const char *path = "/";
static volatile sig_atomic_t stop;
static long long count, errors;
static int counting;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static void on_term(int sig) { (void)sig; stop = 1; }

static int dial(void) {
  struct sockaddr_in a;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0
      && errno != EINPROGRESS) {
    close(fd);
    return -1;
  }
  return fd;
}

static void send_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t k = write(fd, p, n);
    if (k < 0) {
      if (errno == EAGAIN || errno == EINTR)
        continue;
      errors++;
      return;
    }
    p += k;
    n -= (size_t)k;
  }
}

static void send_handshake(conn_t *c) {
  char req[512];
  int n = snprintf(req, sizeof req,
                   "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                   "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                   "Sec-WebSocket-Version: 13\r\n\r\n",
                   path, port);
  send_all(c->fd, req, (size_t)n);
}

static void send_message(conn_t *c) {
  char f[256];
  size_t i;
  f[0] = (char)0x82;
  f[1] = (char)(0x80 | size);
  memcpy(f + 2, "\x12\x34\x56\x78", 4);
  for (i = 0; i < (size_t)size; i++)
    f[6 + i] = (char)(('a' + i % 26) ^ f[2 + i % 4]);
  send_all(c->fd, f, 6 + (size_t)size);
}

/* on_readable reads what came; returns -1 when the conn is done for. */
static int on_readable(conn_t *c, int echo) {
  for (;;) {
    ssize_t k = read(c->fd, c->buf + c->got, sizeof c->buf - c->got);
    if (k == 0)
      return -1;
    if (k < 0)
      return errno == EAGAIN ? 0 : -1;
    c->got += (size_t)k;
    if (c->state == HANDSHAKE) {
      char *end = memmem(c->buf, c->got, "\r\n\r\n", 4);
      if (end == NULL)
        continue;
      if (strncmp(c->buf, "HTTP/1.1 101", 12) != 0)
        return -1;
      c->got -= (size_t)(end + 4 - c->buf);
      memmove(c->buf, end + 4, c->got);
      c->state = READY;
      if (echo)
        send_message(c);
    }
    while (c->state == READY && c->got >= 2 + (size_t)size) {
      if ((unsigned char)c->buf[1] != (unsigned)size)
        return -1;
      c->got -= 2 + (size_t)size;
      memmove(c->buf, c->buf + 2 + size, c->got);
      if (counting)
        count++;
      if (echo && !stop)
        send_message(c);
    }
  }
}

static int run(int echo) {
  int ep = epoll_create1(0), i, ready = 0;
  conn_t *cs = calloc((size_t)nconns, sizeof *cs);
  struct epoll_event ev, evs[256];
  double t0, start = 0, end = 0;
  for (i = 0; i < nconns; i++) {
    cs[i].fd = dial();
    if (cs[i].fd < 0) {
      errors++;
      continue;
    }
    ev.events = EPOLLIN;
    ev.data.ptr = &cs[i];
    epoll_ctl(ep, EPOLL_CTL_ADD, cs[i].fd, &ev);
    send_handshake(&cs[i]);
  }
  t0 = now();
  while (!stop) {
    int n = epoll_wait(ep, evs, 256, 100), k;
    double t = now();
    for (k = 0; k < n; k++) {
      conn_t *c = evs[k].data.ptr;
      int was = c->state;
      if (on_readable(c, echo) < 0) {
        errors++;
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
      } else if (was == HANDSHAKE && c->state == READY) {
        ready++;
      }
    }
    if (!echo && ready + errors >= nconns && ready > 0 && start == 0) {
      printf("ready %d\n", ready);
      fflush(stdout);
      start = t;
    }
    if (echo && !counting && start == 0 && t - t0 >= warmup) {
      counting = 1;
      start = t;
    }
    if (echo && counting && t - start >= secs) {
      end = t;
      break;
    }
  }
  if (echo)
    printf("msgs_s=%.0f errors=%lld conns=%d\n",
           end > start ? (double)count / (end - start) : 0.0, errors, ready);
  for (i = 0; i < nconns; i++)
    if (cs[i].fd >= 0)
      close(cs[i].fd);
  free(cs);
  return errors > 0 ? 1 : 0;
}

int main(int argc, char **argv) {
  int i;
  if (argc < 2 || (strcmp(argv[1], "echo") && strcmp(argv[1], "idle"))) {
    fprintf(stderr, "usage: ws-load echo|idle -p PORT [-c N] [-s SIZE] [-d S] "
                    "[-w S] [--path P]\n");
    return 2;
  }
  for (i = 2; i + 1 < argc; i += 2) {
    if (!strcmp(argv[i], "-p")) port = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "-c")) nconns = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "-s")) size = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "-d")) secs = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "-w")) warmup = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--path")) path = argv[i + 1];
  }
  if (size < 1 || size > 125)
    size = 64;
  signal(SIGTERM, on_term);
  signal(SIGPIPE, SIG_IGN);
  return run(strcmp(argv[1], "echo") == 0);
}
