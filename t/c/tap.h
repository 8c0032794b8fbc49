/* tap.h: TAP output for the C unit tests (t/c/test_*.c), each one program
** and one translation unit: ok() prints one numbered result, diag() a
** comment, and the test ends with printf("1..%d\n", tap_count) and
** returns tap_failed != 0. */
#ifndef TAP_H
#define TAP_H

#include <stdarg.h>
#include <stdio.h>

static int tap_count, tap_failed;


static int ok(int cond, const char *fmt, ...) {
  va_list ap;
  tap_count++;
  if (!cond)
    tap_failed++;
  printf("%s %d - ", cond ? "ok" : "not ok", tap_count);
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  printf("\n");
  fflush(stdout);
  return cond;
}


static void diag(const char *fmt, ...) {
  va_list ap;
  printf("# ");
  va_start(ap, fmt);
  vprintf(fmt, ap);
  va_end(ap);
  printf("\n");
}

#endif
