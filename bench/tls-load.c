/* bench/tls-load.c: a TLS load generator for bench/tls-bench.sh, over
** OpenSSL and epoll, one thread.
**   tls-load echo -p PORT -c CONNS -s SIZE -d SECS -w WARMUP
**       each connection sends SIZE bytes, reads them back (checked), again
**   tls-load get  -p PORT -c CONNS -d SECS -w WARMUP --path /16k
**       HTTP/1.1 keep-alive GETs, reading each Content-Length body
**   tls-load idle -p PORT -c CONNS [--conc N]
**       opens CONNS TLS connections (N handshakes at a time), prints
**       "ready N" and holds them until SIGTERM
** Prints one line of key=value: msgs, msgs_s, mib_s (payload bytes both
** ways for echo, body bytes for get), errors, verify. Certificates are
** not checked (the servers are the bench's own). Exit status 1 when
** anything failed. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
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

#include <openssl/err.h>
#include <openssl/ssl.h>

enum { HANDSHAKE, SEND, RECV, DONE };

typedef struct {
  int fd, state, id;
  SSL *ssl;
  size_t off, want;  /* bytes sent or read of the current message */
  size_t body;       /* get: Content-Length, once the head is read */
  char head[4096];
  size_t hlen;
  unsigned events;   /* epoll interest */
} conn_t;

static const char *mode, *path = "/";
static int port, nconns = 100, size = 64, secs = 5, warmup = 1, conc = 50;
static int efd, errors, mismatch, stop, settled;
static long long msgs, bytes;
static int measuring;
static char *payload, *rbuf;
static SSL_CTX *ctx;
static struct sockaddr_in sa;


static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}


static void on_term(int sig) {
  (void)sig;
  stop = 1;
}


static void watch(conn_t *c, unsigned ev) {
  struct epoll_event e;
  if (ev == c->events)
    return;
  e.events = ev;
  e.data.ptr = c;
  epoll_ctl(efd, c->events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, c->fd, &e);
  c->events = ev;
}


static int open_conn(conn_t *c, int id) {
  int one = 1;
  memset(c, 0, sizeof *c);
  c->id = id;
  c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (c->fd < 0)
    return -1;
  setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0 &&
      errno != EINPROGRESS)
    return -1;
  c->ssl = SSL_new(ctx);
  SSL_set_fd(c->ssl, c->fd);
  SSL_set_connect_state(c->ssl);
  c->state = HANDSHAKE;
  watch(c, EPOLLIN | EPOLLOUT);
  return 0;
}


static void fail(conn_t *c) {
  errors++;
  settled += c->state == HANDSHAKE;
  c->state = DONE;
  epoll_ctl(efd, EPOLL_CTL_DEL, c->fd, NULL);
}


static void start_msg(conn_t *c) {
  c->off = 0;
  c->hlen = 0;
  c->body = (size_t)-1;
  if (strcmp(mode, "get") == 0) {
    int n = snprintf(payload, 512, "GET %s HTTP/1.1\r\nHost: bench\r\n\r\n",
                     path);
    c->want = (size_t)n;
  } else {
    c->want = (size_t)size;
  }
  c->state = SEND;
}


/* got takes n bytes of a reply; returns 1 when the message is complete. */
static int got(conn_t *c, const char *p, size_t n) {
  if (strcmp(mode, "echo") == 0) {
    if (memcmp(p, payload + c->off, n) != 0)
      mismatch++;
    c->off += n;
    return c->off == (size_t)size;
  }
  if (c->body == (size_t)-1) { /* the head, then maybe some body */
    size_t room = sizeof c->head - 1 - c->hlen, take = n < room ? n : room;
    char *end, *cl;
    memcpy(c->head + c->hlen, p, take);
    c->hlen += take;
    c->head[c->hlen] = '\0';
    if ((end = strstr(c->head, "\r\n\r\n")) == NULL) {
      if (c->hlen == sizeof c->head - 1)
        fail(c);
      return 0;
    }
    cl = strcasestr(c->head, "content-length:");
    c->body = cl != NULL ? (size_t)atol(cl + 15) : 0;
    n = c->hlen - (size_t)(end + 4 - c->head) + (n - take);
  }
  c->off += n;
  if (c->off > c->body)
    return fail(c), 0;
  return c->off == c->body;
}


/* step advances c as far as it can without blocking. */
static void step(conn_t *c) {
  for (;;) {
    int r, e;
    size_t k;
    if (c->state == HANDSHAKE) {
      if ((r = SSL_do_handshake(c->ssl)) == 1) {
        settled++;
        if (strcmp(mode, "idle") == 0) {
          c->state = DONE;
          watch(c, EPOLLIN);
          return;
        }
        start_msg(c);
        continue;
      }
    } else if (c->state == SEND) {
      if (SSL_write_ex(c->ssl, payload + c->off, c->want - c->off, &k) == 1) {
        c->off += k;
        if (c->off == c->want) {
          c->off = 0;
          c->state = RECV;
        }
        continue;
      }
      r = 0;
    } else if (c->state == RECV) {
      if (SSL_read_ex(c->ssl, rbuf, 65536, &k) == 1) {
        if (measuring)
          bytes += (long long)k;
        if (got(c, rbuf, k)) {
          if (measuring)
            msgs++;
          start_msg(c);
        }
        if (c->state == DONE)
          return;
        continue;
      }
      r = 0;
    } else {
      return;
    }
    e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ) {
      watch(c, EPOLLIN);
      return;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
      watch(c, EPOLLIN | EPOLLOUT);
      return;
    }
    fail(c);
    return;
  }
}


static int opt(int argc, char **argv, int *i, const char *name) {
  return strcmp(argv[*i], name) == 0 && *i + 1 < argc && ++*i;
}


int main(int argc, char **argv) {
  struct epoll_event ev[256];
  conn_t *conns;
  double t0, start, end;
  int i, opened = 0;
  if (argc < 2) {
    fprintf(stderr, "usage: tls-load echo|get|idle -p PORT [-c N] [-s SIZE] "
                    "[-d SECS] [-w SECS] [--path P] [--conc N]\n");
    return 2;
  }
  mode = argv[1];
  for (i = 2; i < argc; i++) {
    if (opt(argc, argv, &i, "-p"))
      port = atoi(argv[i]);
    else if (opt(argc, argv, &i, "-c"))
      nconns = atoi(argv[i]);
    else if (opt(argc, argv, &i, "-s"))
      size = atoi(argv[i]);
    else if (opt(argc, argv, &i, "-d"))
      secs = atoi(argv[i]);
    else if (opt(argc, argv, &i, "-w"))
      warmup = atoi(argv[i]);
    else if (opt(argc, argv, &i, "--path"))
      path = argv[i];
    else if (opt(argc, argv, &i, "--conc"))
      conc = atoi(argv[i]);
  }
  signal(SIGPIPE, SIG_IGN);
  signal(SIGTERM, on_term);
  signal(SIGINT, on_term);
  ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
                          SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                          SSL_MODE_RELEASE_BUFFERS);
  payload = malloc(size > 512 ? (size_t)size : 512);
  rbuf = malloc(65536);
  for (i = 0; i < size; i++)
    payload[i] = (char)('a' + i % 26);
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
  efd = epoll_create1(0);
  conns = calloc((size_t)nconns, sizeof *conns);
  t0 = now();
  start = t0 + warmup;
  end = start + secs;
  while (!stop) {
    int n;
    /* open connections, at most conc handshakes at a time */
    while (opened < nconns && opened - settled < conc) {
      if (open_conn(&conns[opened], opened) < 0)
        errors++;
      opened++;
    }
    n = epoll_wait(efd, ev, 256, 100);
    for (i = 0; i < n; i++) {
      conn_t *c = ev[i].data.ptr;
      if (c->state == DONE && strcmp(mode, "idle") == 0) {
        char b;
        if (recv(c->fd, &b, 1, MSG_PEEK) == 0)
          fail(c); /* the server went away */
        continue;
      }
      step(c);
    }
    if (strcmp(mode, "idle") == 0) {
      if (settled >= nconns) {
        printf("ready %d errors=%d\n", settled - errors, errors);
        fflush(stdout);
        while (!stop)
          pause();
      }
      continue;
    }
    if (!measuring && now() >= start) {
      measuring = 1;
      start = now();
    }
    if (measuring && now() >= end)
      break;
  }
  end = now();
  if (strcmp(mode, "idle") != 0)
    printf("mode=%s conns=%d size=%d secs=%.2f msgs=%lld msgs_s=%.0f "
           "mib_s=%.1f errors=%d verify=%s\n",
           mode, nconns, size, end - start, msgs, msgs / (end - start),
           bytes / (end - start) / 1048576.0 * (mode[0] == 'e' ? 2 : 1),
           errors, mismatch ? "mismatch" : "ok");
  return errors > 0 || mismatch > 0;
}
