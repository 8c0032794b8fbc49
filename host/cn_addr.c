/* cn_addr.c: parsing, resolving and formatting of listen and dial
** addresses: HOST:PORT, [IPV6]:PORT, :PORT and unix:PATH. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "cn.h"


static int parse_port(const char *s, int *port) {
  char *end;
  long v;
  if (*s == '\0')
    return CN_EADDR;
  v = strtol(s, &end, 10);
  if (*end != '\0' || v < 0 || v > 65535)
    return CN_EADDR;
  *port = (int)v;
  return 0;
}


/* cn_addr_parse splits s into a host and port or a unix path. Numeric
** hosts are converted at once (a->sslen > 0); names wait for
** cn_addr_resolve or an asynchronous lookup. ":PORT" means 0.0.0.0. A
** "tls://" prefix sets a->tls. Returns 0 or CN_EADDR. */
int cn_addr_parse(const char *s, cn_addr_t *a) {
  const char *colon;
  size_t hlen;
  int tls = strncmp(s, "tls://", 6) == 0;
  memset(a, 0, sizeof *a);
  a->tls = tls;
  s += tls ? 6 : 0;
  if (strncmp(s, "unix:", 5) == 0) {
    size_t n = strlen(s + 5);
    if (n == 0 || n >= sizeof a->path)
      return CN_EADDR;
    a->family = AF_UNIX;
    memcpy(a->path, s + 5, n + 1);
    return 0;
  }
  if (s[0] == '[') {
    const char *close = strchr(s, ']');
    if (close == NULL || close[1] != ':')
      return CN_EADDR;
    hlen = (size_t)(close - s - 1);
    colon = close + 1;
    s++;
  } else {
    colon = strrchr(s, ':');
    if (colon == NULL || memchr(s, ':', (size_t)(colon - s)) != NULL)
      return CN_EADDR;
    hlen = (size_t)(colon - s);
  }
  if (hlen >= sizeof a->host || parse_port(colon + 1, &a->port) < 0)
    return CN_EADDR;
  memcpy(a->host, s, hlen);
  a->host[hlen] = '\0';
  if (hlen == 0)
    strcpy(a->host, "0.0.0.0");
  if (uv_ip4_addr(a->host, a->port, (struct sockaddr_in *)&a->ss) == 0) {
    a->family = AF_INET;
    a->sslen = sizeof(struct sockaddr_in);
  } else if (uv_ip6_addr(a->host, a->port, (struct sockaddr_in6 *)&a->ss) ==
             0) {
    a->family = AF_INET6;
    a->sslen = sizeof(struct sockaddr_in6);
  }
  return 0;
}


/* cn_addr_resolve looks up a host name with getaddrinfo, blocking; only
** for start-up, before any loop runs. Returns 0 or a UV_E* code. */
int cn_addr_resolve(cn_addr_t *a) {
  struct addrinfo hints, *res;
  int rc;
  if (a->family == AF_UNIX || a->sslen > 0)
    return 0;
  memset(&hints, 0, sizeof hints);
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  rc = getaddrinfo(a->host, NULL, &hints, &res);
  if (rc != 0)
    return cn_addr_lookup_err(rc == EAI_NONAME ? UV_EAI_NONAME : UV_EAI_FAIL);
  memcpy(&a->ss, res->ai_addr, res->ai_addrlen);
  a->sslen = (int)res->ai_addrlen;
  a->family = res->ai_family;
  if (a->family == AF_INET)
    ((struct sockaddr_in *)&a->ss)->sin_port = htons((uint16_t)a->port);
  else
    ((struct sockaddr_in6 *)&a->ss)->sin6_port = htons((uint16_t)a->port);
  freeaddrinfo(res);
  return 0;
}


/* cn_addr_lookup_err returns the error to report for a failed lookup:
** out of file descriptors, getaddrinfo cannot read /etc/hosts and fails
** as if the name were unknown; that is UV_EMFILE, not "unknown node". */
int cn_addr_lookup_err(int err) {
  int fd;
  if (err == UV_ECANCELED || err == UV_ENOMEM)
    return err;
  if ((fd = fcntl(0, F_DUPFD_CLOEXEC, 0)) >= 0) {
    close(fd);
    return err;
  }
  return errno == EMFILE ? UV_EMFILE : errno == ENFILE ? UV_ENFILE : err;
}


/* cn_addr_format writes sa as "1.2.3.4:80", "[::1]:80" or "unix:PATH". */
void cn_addr_format(const struct sockaddr *sa, char *buf, size_t size) {
  char ip[64];
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
    uv_ip4_name(in, ip, sizeof ip);
    snprintf(buf, size, "%s:%d", ip, ntohs(in->sin_port));
  } else if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    uv_ip6_name(in6, ip, sizeof ip);
    snprintf(buf, size, "[%s]:%d", ip, ntohs(in6->sin6_port));
  } else if (sa->sa_family == AF_UNIX) {
    snprintf(buf, size, "unix:%s", ((const struct sockaddr_un *)sa)->sun_path);
  } else {
    snprintf(buf, size, "?");
  }
}


/* cn_addr_set_port makes a's port the one socket fd is bound to (after a
** bind to port 0). */
void cn_addr_set_port(cn_addr_t *a, uv_os_sock_t fd) {
  struct sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
    return;
  a->port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
  if (a->family == AF_INET)
    ((struct sockaddr_in *)&a->ss)->sin_port = htons((uint16_t)a->port);
  else
    ((struct sockaddr_in6 *)&a->ss)->sin6_port = htons((uint16_t)a->port);
}
