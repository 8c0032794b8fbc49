/* fuzz.h: what every libFuzzer harness in t/fuzz/ shares: the entry point's
** prototype, a reader that turns the fuzzer's bytes into operations, and
** a check that aborts with a message (libFuzzer then saves the input).
** Harnesses are built by `make fuzz` (clang, libFuzzer) and, for replaying
** the committed corpus and regressions in `make test`, by t/fuzz/replay.c. */
#ifndef CN_FUZZ_H
#define CN_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A fuzz_in_t hands out the input's bytes front to back; past the end it
** gives zeros, so that every input is a valid operation sequence. */
typedef struct {
  const uint8_t *p;
  size_t n;
} fuzz_in_t;

static inline int fuzz_more(const fuzz_in_t *in) { return in->n > 0; }


static inline unsigned fuzz_u8(fuzz_in_t *in) {
  if (in->n == 0)
    return 0;
  in->n--;
  return *in->p++;
}


static inline unsigned fuzz_u16(fuzz_in_t *in) {
  unsigned hi = fuzz_u8(in);
  return hi << 8 | fuzz_u8(in);
}


/* fuzz_bytes takes up to n bytes; *got says how many there were. */
static inline const uint8_t *fuzz_bytes(fuzz_in_t *in, size_t n, size_t *got) {
  const uint8_t *p = in->p;
  if (n > in->n)
    n = in->n;
  in->p += n;
  in->n -= n;
  *got = n;
  return p;
}

/* FUZZ_CHECK aborts with the condition's text and place when it is false. */
#define FUZZ_CHECK(cond)                                                     \
  do {                                                                       \
    if (!(cond)) {                                                           \
      fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__,       \
              #cond);                                                        \
      abort();                                                               \
    }                                                                        \
  } while (0)

#endif
