/* fuzz_buf.c: libFuzzer harness for the buffer chain (host/cn_buf.c). The
** input is a sequence of operations on two chains that share a pool:
** appends, consumes, reserve/commit, peeks, copies, line and delimiter
** searches, moves between the chains, trims, settles and resets. Each
** chain has a flat string beside it that the same operations change the
** simple way; after every operation both must hold the same bytes. */
#include <string.h>

#include "cn_buf.h"
#include "fuzz.h"

#define MODEL_MAX (96 * 1024) /* six blocks: appends stop growing past it */

/* A model is the flat string a chain should hold. */
typedef struct {
  char *s;
  size_t len, cap;
} model_t;

typedef struct {
  cn_buf_t b;
  model_t m;
} chain_t;


static void model_add(model_t *m, const char *p, size_t n) {
  if (n == 0)
    return;
  if (m->len + n > m->cap) {
    size_t cap = m->cap ? m->cap : 1024;
    while (cap < m->len + n)
      cap *= 2;
    m->s = realloc(m->s, cap);
    FUZZ_CHECK(m->s != NULL);
    m->cap = cap;
  }
  memcpy(m->s + m->len, p, n);
  m->len += n;
}


static void model_drop(model_t *m, size_t n) {
  if (n >= m->len) {
    m->len = 0;
    return;
  }
  memmove(m->s, m->s + n, m->len - n);
  m->len -= n;
}


static int64_t model_find(const model_t *m, size_t from, const char *d,
                          size_t dn) {
  size_t i;
  if (dn == 0)
    return from <= m->len ? (int64_t)from : -1;
  for (i = from; i + dn <= m->len; i++)
    if (memcmp(m->s + i, d, dn) == 0)
      return (int64_t)i;
  return -1;
}


/* check_same checks that c's chain holds exactly its model's bytes, seen
** through the length, a copy out and the iovecs a writev would get. */
static void check_same(chain_t *c) {
  static char got[MODEL_MAX + 1];
  uv_buf_t iov[8];
  size_t len = cn_buf_len(&c->b), off = 0;
  FUZZ_CHECK(len == c->m.len);
  FUZZ_CHECK(len <= sizeof got);
  FUZZ_CHECK(cn_buf_copyout(&c->b, 0, got, len + 1) == len);
  FUZZ_CHECK(len == 0 || memcmp(got, c->m.s, len) == 0);
  while (off < len) {
    int i, n = cn_buf_iov(&c->b, off, iov, 8);
    FUZZ_CHECK(n > 0);
    for (i = 0; i < n; i++) {
      FUZZ_CHECK(iov[i].len > 0 && off + iov[i].len <= len);
      FUZZ_CHECK(memcmp(iov[i].base, c->m.s + off, iov[i].len) == 0);
      off += iov[i].len;
    }
  }
  FUZZ_CHECK(cn_buf_iov(&c->b, len, iov, 8) == 0);
}


/* op_append appends a run of the input's bytes, repeated up to a length
** the input chooses: long runs cross blocks, short ones carry delimiters. */
static void op_append(chain_t *c, fuzz_in_t *in) {
  size_t want = fuzz_u16(in), got, i;
  const uint8_t *pat = fuzz_bytes(in, 1 + fuzz_u8(in) % 32, &got);
  char *tmp;
  if (got == 0 || c->m.len + want > MODEL_MAX)
    return;
  tmp = malloc(want + 1);
  FUZZ_CHECK(tmp != NULL);
  for (i = 0; i < want; i++)
    tmp[i] = (char)pat[i % got];
  FUZZ_CHECK(cn_buf_append(&c->b, tmp, want) == 0);
  model_add(&c->m, tmp, want);
  free(tmp);
}


/* op_reserve writes into the reserved space (some of it) and commits. */
static void op_reserve(chain_t *c, fuzz_in_t *in) {
  size_t want = fuzz_u16(in), room;
  char *p;
  unsigned fillc = fuzz_u8(in);
  if (c->m.len + want > MODEL_MAX)
    return;
  FUZZ_CHECK(cn_buf_reserve(&c->b, &p, &room) == 0);
  FUZZ_CHECK(room > 0);
  if (want > room)
    want = room;
  memset(p, (int)fillc, room);  /* the whole reservation is writable */
  memset(p, (int)fillc + 1, want);
  cn_buf_commit(&c->b, want);
  model_add(&c->m, p, want);
}


static void op_consume(chain_t *c, fuzz_in_t *in) {
  size_t n = fuzz_u16(in);
  if (fuzz_u8(in) & 1)
    n = c->m.len - n % (c->m.len + 1);  /* leave a few bytes */
  cn_buf_consume(&c->b, n);
  model_drop(&c->m, n);
}


static void op_peek(chain_t *c, fuzz_in_t *in) {
  size_t n = fuzz_u16(in);
  const char *p;
  if (fuzz_u8(in) & 1)
    n = c->m.len - n % (c->m.len + 1);
  p = cn_buf_peek(&c->b, n);
  if (n > c->m.len || n > CN_BLOCK_DATA) {
    FUZZ_CHECK(p == NULL);
    return;
  }
  FUZZ_CHECK(p != NULL);
  FUZZ_CHECK(n == 0 || memcmp(p, c->m.s, n) == 0);
}


static void op_copyout(chain_t *c, fuzz_in_t *in) {
  size_t off = fuzz_u16(in), n = fuzz_u16(in), want;
  char *tmp = malloc(n + 1);
  FUZZ_CHECK(tmp != NULL);
  want = off >= c->m.len ? 0 : c->m.len - off;
  if (want > n)
    want = n;
  FUZZ_CHECK(cn_buf_copyout(&c->b, off, tmp, n) == want);
  FUZZ_CHECK(want == 0 || memcmp(tmp, c->m.s + off, want) == 0);
  free(tmp);
}


/* op_find searches for a delimiter from the input (or a line end) from an
** offset, as read_line and read_until do. */
static void op_find(chain_t *c, fuzz_in_t *in) {
  static const char *const ends[] = {"\n", "\r\n", "\r\n\r\n"};
  unsigned kind = fuzz_u8(in);
  size_t from = fuzz_u16(in) % (c->m.len + 2), dn;
  const char *d;
  char buf[8];
  if (kind % 4 < 3) {
    d = ends[kind % 4];
    dn = strlen(d);
  } else {
    const uint8_t *p = fuzz_bytes(in, kind / 4 % 6, &dn);
    memcpy(buf, p, dn);
    d = buf;
  }
  FUZZ_CHECK(cn_buf_find(&c->b, from, d, dn) == model_find(&c->m, from, d,
                                                           dn));
}


static void op_move(chain_t *dst, chain_t *src, fuzz_in_t *in) {
  size_t n = fuzz_u16(in) * (fuzz_u8(in) % 4 + 1), moved;
  if (dst->m.len + (n < src->m.len ? n : src->m.len) > MODEL_MAX)
    return;
  moved = cn_buf_move(&dst->b, &src->b, n);
  FUZZ_CHECK(moved == (n < src->m.len ? n : src->m.len));
  model_add(&dst->m, src->m.s, moved);
  model_drop(&src->m, moved);
}


static void op_tidy(chain_t *c, fuzz_in_t *in) {
  switch (fuzz_u8(in) % 3) {
  case 0:
    cn_buf_trim(&c->b);
    break;
  case 1:
    cn_buf_settle(&c->b);
    break;
  default:
    cn_buf_reset(&c->b);
    c->m.len = 0;
  }
}


int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  fuzz_in_t in = {data, size};
  cn_pool_t pool;
  chain_t ch[2];
  int i;
  cn_pool_init(&pool, 4);
  memset(ch, 0, sizeof ch);
  cn_buf_init(&ch[0].b, &pool);
  cn_buf_init(&ch[1].b, &pool);
  while (fuzz_more(&in)) {
    unsigned op = fuzz_u8(&in);
    chain_t *c = &ch[op >> 7], *other = &ch[!(op >> 7)];
    switch (op % 8) {
    case 0: op_append(c, &in); break;
    case 1: op_reserve(c, &in); break;
    case 2: op_consume(c, &in); break;
    case 3: op_peek(c, &in); break;
    case 4: op_copyout(c, &in); break;
    case 5: op_find(c, &in); break;
    case 6: op_move(c, other, &in); break;
    default: op_tidy(c, &in);
    }
    check_same(c);
    if (op % 8 == 6)
      check_same(other);
  }
  for (i = 0; i < 2; i++) {
    cn_buf_reset(&ch[i].b);
    free(ch[i].m.s);
  }
  FUZZ_CHECK(pool.nlive == 0);  /* every block came back */
  cn_pool_close(&pool);
  return 0;
}
