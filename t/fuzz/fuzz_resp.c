/* fuzz_resp.c: libFuzzer harness for the RESP parser (host/cn_resp.c).
** The first input byte picks the limits and how the rest is cut; the rest
** is a reply stream. It is parsed three ways: in one piece, in pieces of
** varying size, and from a buffer chain with cn_resp_feed_buf. All three
** must see the same events and the same reply ends, and the events must
** be well formed (strings get exactly their declared bytes, aggregates
** their declared elements, nesting within the limit). Seeds in
** t/fuzz/corpus/resp/. */
#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* libuv's headers need POSIX types */
#endif
#include <string.h>

#include "cn_buf.h"
#include "cn_resp.h"
#include "fuzz.h"

typedef struct {
  uint64_t hash;     /* of every event, in order */
  int depth;         /* open aggregates */
  int64_t left[CN_RESP_MAX_DEPTH + 1]; /* elements each still expects */
  int64_t want;      /* bytes the open string still expects (-1: a line) */
  int in_string;
  size_t replies;
} trace_t;


static void mix(trace_t *t, uint64_t v) {
  t->hash = (t->hash ^ v) * 0x100000001b3ULL;
}


/* counted notes that an element ended inside the open aggregates. */
static void counted(trace_t *t) {
  if (t->depth > 0)
    FUZZ_CHECK(--t->left[t->depth - 1] >= 0); /* no more than declared */
}


static int on_value(void *ud, int type, int64_t n) {
  trace_t *t = ud;
  mix(t, (uint64_t)type);
  mix(t, (uint64_t)n);
  FUZZ_CHECK(!t->in_string);
  switch (type) {
  case CN_RESP_INT:
  case CN_RESP_BOOL:
  case CN_RESP_NULL:
    counted(t);
    return 0;
  case CN_RESP_ARRAY:
  case CN_RESP_SET:
  case CN_RESP_PUSH:
  case CN_RESP_MAP:
  case CN_RESP_ATTR:
    FUZZ_CHECK(n >= 0 && t->depth < CN_RESP_MAX_DEPTH);
    t->left[t->depth++] =
      type == CN_RESP_MAP || type == CN_RESP_ATTR ? 2 * n : n;
    return 0;
  default:
    t->in_string = 1;
    t->want = n;
    return 0;
  }
}


static int on_data(void *ud, const char *p, size_t n) {
  trace_t *t = ud;
  size_t i;
  FUZZ_CHECK(t->in_string && n > 0);
  if (t->want >= 0) {
    t->want -= (int64_t)n;
    FUZZ_CHECK(t->want >= 0); /* no more bytes than declared */
  }
  for (i = 0; i < n; i++)
    mix(t, (unsigned char)p[i]);
  return 0;
}


static int on_end(void *ud, int type) {
  trace_t *t = ud;
  mix(t, 0x100u + (unsigned)type);
  if (t->in_string) {
    FUZZ_CHECK(t->want <= 0); /* no fewer bytes than declared */
    t->in_string = 0;
    counted(t);
    return 0;
  }
  FUZZ_CHECK(t->depth > 0 && t->left[t->depth - 1] == 0); /* all there */
  t->depth--;
  if (type != CN_RESP_ATTR) /* an attribute does not count */
    counted(t);
  return 0;
}


static const cn_resp_hooks_t hooks = {on_value, on_data, on_end};


static void setup(cn_resp_t *p, trace_t *t, uint8_t sel) {
  cn_resp_init(p);
  memset(t, 0, sizeof *t);
  t->hash = 0xcbf29ce484222325ULL;
  if (sel & 1) { /* small limits, so that inputs reach them */
    p->max_bulk = 64;
    p->max_reply = 4096;
    p->max_count = 16;
    p->max_depth = 4;
  }
  p->hooks = &hooks;
  p->ud = t;
}


/* run feeds data all at once, or (sel & 2) in pieces of 1 to 8 bytes;
** returns len, or less when the parser failed. */
static size_t run(cn_resp_t *p, trace_t *t, const uint8_t *data, size_t len,
                  uint8_t sel, uint64_t *ends) {
  size_t off = 0, used;
  uint32_t x = sel | 1u;
  int rc;
  while (off < len) {
    size_t n = len - off;
    if (sel & 2) { /* pieces of 1 to 8 bytes */
      x ^= x << 13, x ^= x >> 17, x ^= x << 5;
      n = 1 + x % 8 < n ? 1 + x % 8 : n;
    }
    rc = cn_resp_feed(p, (const char *)data + off, n, &used);
    off += used;
    if (rc < 0)
      return off;
    if (rc == CN_RESP_DONE) {
      t->replies++;
      mix(t, off);
      *ends = *ends * 31 + off;
    } else {
      FUZZ_CHECK(used == n); /* MORE takes every byte */
    }
  }
  return len;
}


/* run_chain feeds data through a buffer chain, a few bytes appended at a
** time, as a connection's read chain fills. */
static size_t run_chain(cn_resp_t *p, trace_t *t, const uint8_t *data,
                        size_t len, uint64_t *ends) {
  cn_pool_t pool;
  cn_buf_t b;
  size_t added = 0, fed = 0, consumed = 0, used, result = len;
  int rc;
  cn_pool_init(&pool, 4);
  cn_buf_init(&b, &pool);
  while (added < len) {
    size_t n = len - added < 7 ? len - added : 7;
    FUZZ_CHECK(cn_buf_append(&b, data + added, n) == 0);
    added += n;
    for (;;) {
      rc = cn_resp_feed_buf(p, &b, fed, &used);
      if (rc < 0) {
        result = consumed + fed + used;
        goto out;
      }
      if (rc == CN_RESP_MORE) {
        fed += used;
        break;
      }
      consumed += fed + used;
      cn_buf_consume(&b, fed + used);
      fed = 0;
      t->replies++;
      mix(t, consumed);
      *ends = *ends * 31 + consumed;
    }
  }
out:
  cn_buf_reset(&b);
  cn_pool_close(&pool);
  return result;
}


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  cn_resp_t p1, p2, p3;
  trace_t t1, t2, t3;
  uint64_t e1 = 0, e2 = 0, e3 = 0;
  size_t r1, r2, r3;
  uint8_t sel;
  if (size < 1)
    return 0;
  sel = data[0];
  data++;
  size--;
  setup(&p1, &t1, sel);
  setup(&p2, &t2, sel);
  setup(&p3, &t3, sel);
  r1 = run(&p1, &t1, data, size, (uint8_t)(sel & ~2u), &e1);
  r2 = run(&p2, &t2, data, size, (uint8_t)(sel | 2u), &e2);
  r3 = run_chain(&p3, &t3, data, size, &e3);
  /* the cuts change neither what was parsed nor, when all was, the events */
  FUZZ_CHECK((r1 == size) == (r2 == size) && (r1 == size) == (r3 == size));
  FUZZ_CHECK(e1 == e2 && e1 == e3);
  FUZZ_CHECK(t1.replies == t2.replies && t1.replies == t3.replies);
  FUZZ_CHECK(r1 < size || (t1.hash == t2.hash && t1.hash == t3.hash));
  return 0;
}
