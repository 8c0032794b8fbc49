/* cn_log.c: log lines to stderr, one write(2) per line so that lines from
** several workers never interleave. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cn.h"

int cn_log_level = CN_LOG_INFO;

static const char *const level_names[] = {"error", "warn", "info", "debug"};


/* cn_log_parse_level returns the level named s, or -1. */
int cn_log_parse_level(const char *s) {
  int i;
  for (i = 0; i < 4; i++)
    if (strcmp(s, level_names[i]) == 0)
      return i;
  return -1;
}


void cn_log(int level, const char *fmt, ...) {
  char small[1024], *buf = small;
  const char *tag = level == CN_LOG_WARN    ? "warning: "
                    : level == CN_LOG_DEBUG ? "debug: "
                                            : "";
  int pre, n;
  va_list ap;
  if (level > cn_log_level)
    return;
  pre = snprintf(small, sizeof small, "coronet: %s", tag);
  va_start(ap, fmt);
  n = vsnprintf(small + pre, sizeof small - (size_t)pre - 1, fmt, ap);
  va_end(ap);
  if (n < 0)
    return;
  if ((size_t)(pre + n) >= sizeof small - 1) {
    buf = malloc((size_t)(pre + n) + 2);
    if (buf == NULL) {
      buf = small;
      n = (int)(sizeof small) - pre - 2;
    } else {
      memcpy(buf, small, (size_t)pre);
      va_start(ap, fmt);
      vsnprintf(buf + pre, (size_t)n + 1, fmt, ap);
      va_end(ap);
    }
  }
  buf[pre + n] = '\n';
  if (write(2, buf, (size_t)(pre + n) + 1) < 0) {
    /* nowhere left to report it */
  }
  if (buf != small)
    free(buf);
}
