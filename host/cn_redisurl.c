/* cn_redisurl.c: Redis addresses as scripts and --bus write them:
** "host:port", "unix:PATH" or "redis://[[user]:password@]host[:port][/db]".
** Used by cn_busredis.c and, through lcn_redis.c, by coronet.redis. */
#include <stdlib.h>
#include <string.h>

#include "cn.h"


static int hexval(char c) {
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}


/* unescape copies s[0..n), its %XX escapes decoded, into dst (size
** bytes); returns -1 if it does not fit. */
static int unescape(char *dst, size_t size, const char *s, size_t n) {
  size_t i, k = 0;
  for (i = 0; i < n; i++) {
    int hi, lo;
    if (k + 1 >= size)
      return -1;
    if (s[i] == '%' && i + 2 < n && (hi = hexval(s[i + 1])) >= 0 &&
        (lo = hexval(s[i + 2])) >= 0) {
      dst[k++] = (char)(hi * 16 + lo);
      i += 2;
    } else {
      dst[k++] = s[i];
    }
  }
  dst[k] = '\0';
  return 0;
}


/* userinfo fills u's user and password from "[user][:password]". */
static int userinfo(cn_redis_url_t *u, const char *s, size_t n) {
  const char *colon = memchr(s, ':', n);
  size_t ulen = colon != NULL ? (size_t)(colon - s) : n;
  if (unescape(u->user, sizeof u->user, s, ulen) < 0)
    return CN_EADDR;
  if (colon != NULL && unescape(u->password, sizeof u->password, colon + 1,
                                n - ulen - 1) < 0)
    return CN_EADDR;
  return 0;
}


/* cn_redis_url_parse splits url into what to dial (the default port 6379
** added), the user and password (decoded; "" when absent) and the
** database (0 unless the URL names one). An address that is not a URL is
** what to dial as it is. Returns 0 or CN_EADDR. */
int cn_redis_url_parse(const char *url, cn_redis_url_t *u) {
  const char *rest = url + 8, *at, *slash, *end, *close;
  size_t n;
  memset(u, 0, sizeof *u);
  if (strncmp(url, "redis://", 8) != 0) {
    if ((n = strlen(url)) == 0 || n >= sizeof u->dial)
      return CN_EADDR;
    memcpy(u->dial, url, n + 1);
    return 0;
  }
  slash = strchr(rest, '/');
  end = slash != NULL ? slash : rest + strlen(rest);
  for (at = end; at > rest && at[-1] != '@'; at--) {
  }
  if (at > rest && userinfo(u, rest, (size_t)(at - 1 - rest)) < 0)
    return CN_EADDR;
  if (slash != NULL && slash[1] != '\0') {
    char *e;
    long db = strtol(slash + 1, &e, 10);
    if (*e != '\0' || db < 0 || db > 1000000 || slash[1] == '-')
      return CN_EADDR;
    u->db = (int)db;
  }
  n = (size_t)(end - at);
  if (n == 0 || n + 6 >= sizeof u->dial)
    return CN_EADDR;
  memcpy(u->dial, at, n);
  u->dial[n] = '\0';
  close = strchr(u->dial, ']');
  if (strrchr(u->dial, ':') == NULL ||
      (u->dial[0] == '[' && (close == NULL || close[1] != ':')))
    strcat(u->dial, ":6379");
  return 0;
}
