/* io-load.c: the load side of bench/io-bench.sh's relay benchmark, plain
** blocking sockets, a thread per connection, 127.0.0.1 only.
**
**   io-load sink PORT             reads each connection to its EOF, then
**                                 answers the byte count (8 bytes) and closes
**   io-load echo PORT             sends every byte back; EOF -> shutdown
**   io-load blast PORT CONNS MIB  pushes MIB MiB in all over CONNS
**                                 connections to PORT (a relay to a sink),
**                                 half-closes, checks each count the sink
**                                 answers; prints "MiB_s=... secs=...
**                                 verify=ok|FAIL"
**
**   cc -O2 -pthread -o /tmp/io-load bench/io-load.c
*/
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define CHUNK 65536

static int port;
static uint64_t per_conn;
static int failures;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct sockaddr_in loopback(int p) {
  struct sockaddr_in a;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_port = htons((uint16_t)p);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return a;
}

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t k = write(fd, p, n);
    if (k <= 0)
      return -1;
    p += k;
    n -= (size_t)k;
  }
  return 0;
}

static void fail(void) {
  pthread_mutex_lock(&lock);
  failures++;
  pthread_mutex_unlock(&lock);
}

/* -- Servers --------------------------------------------------------- */

static void *sink_conn(void *arg) {
  int fd = (int)(intptr_t)arg;
  static __thread char buf[CHUNK];
  uint64_t total = 0;
  ssize_t k;
  while ((k = read(fd, buf, sizeof buf)) > 0)
    total += (uint64_t)k;
  write_all(fd, (const char *)&total, sizeof total);
  close(fd);
  return NULL;
}

static void *echo_conn(void *arg) {
  int fd = (int)(intptr_t)arg, one = 1;
  static __thread char buf[CHUNK];
  ssize_t k;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  while ((k = read(fd, buf, sizeof buf)) > 0)
    if (write_all(fd, buf, (size_t)k) < 0)
      break;
  shutdown(fd, SHUT_WR);
  close(fd);
  return NULL;
}

static int serve(void *(*fn)(void *)) {
  struct sockaddr_in a = loopback(port);
  int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 1024) < 0) {
    perror("io-load: listen");
    return 1;
  }
  for (;;) {
    pthread_t t;
    int fd = accept(s, NULL, NULL);
    if (fd < 0)
      continue;
    if (pthread_create(&t, NULL, fn, (void *)(intptr_t)fd) != 0) {
      close(fd);
      continue;
    }
    pthread_detach(t);
  }
}

/* -- Blaster --------------------------------------------------------- */

static void *blast_conn(void *arg) {
  static __thread char buf[CHUNK];
  struct sockaddr_in a = loopback(port);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  uint64_t left = per_conn, got = 0;
  size_t have = 0;
  ssize_t k;
  (void)arg;
  memset(buf, 'x', sizeof buf);
  if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
    fail();
    close(fd);
    return NULL;
  }
  while (left > 0) {
    size_t n = left < CHUNK ? (size_t)left : CHUNK;
    if (write_all(fd, buf, n) < 0)
      break;
    left -= n;
  }
  shutdown(fd, SHUT_WR);
  while (have < sizeof got &&
         (k = read(fd, (char *)&got + have, sizeof got - have)) > 0)
    have += (size_t)k;
  if (left != 0 || have != sizeof got || got != per_conn)
    fail();
  close(fd);
  return NULL;
}

static int blast(int conns, double mib) {
  pthread_t *t = calloc((size_t)conns, sizeof *t);
  double t0, secs;
  int i;
  per_conn = (uint64_t)(mib * 1048576.0 / conns);
  t0 = now();
  for (i = 0; i < conns; i++)
    pthread_create(&t[i], NULL, blast_conn, NULL);
  for (i = 0; i < conns; i++)
    pthread_join(t[i], NULL);
  secs = now() - t0;
  printf("conns=%d MiB=%.0f secs=%.3f MiB_s=%.1f verify=%s\n", conns,
         (double)per_conn * conns / 1048576.0, secs,
         (double)per_conn * conns / 1048576.0 / secs, failures ? "FAIL" : "ok");
  free(t);
  return failures != 0;
}

int main(int argc, char **argv) {
  signal(SIGPIPE, SIG_IGN);
  if (argc >= 3)
    port = atoi(argv[2]);
  if (argc == 3 && strcmp(argv[1], "sink") == 0)
    return serve(sink_conn);
  if (argc == 3 && strcmp(argv[1], "echo") == 0)
    return serve(echo_conn);
  if (argc == 5 && strcmp(argv[1], "blast") == 0)
    return blast(atoi(argv[3]), atof(argv[4]));
  fprintf(stderr, "usage: io-load sink PORT | echo PORT | "
                  "blast PORT CONNS MIB\n");
  return 2;
}
