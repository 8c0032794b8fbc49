/* test_buf.c: unit tests of the chained byte buffer (host/cn_buf.c). Prints
** TAP; run by t/010-buf.t. Every check compares the chain with a flat
** reference copy of the bytes it should hold. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cn_buf.h"
#include "cn_errno.h"
#include "tap.h"

/* -- Helpers ----------------------------------------------------------- */

static uint32_t rng_state = 12345;


static uint32_t rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 17;
  rng_state ^= rng_state << 5;
  return rng_state;
}


static void fill(char *p, size_t n, unsigned seed) {
  size_t i;
  for (i = 0; i < n; i++)
    p[i] = (char)('a' + (i * 7 + seed) % 26);
}


/* same says whether b holds exactly want[0..n), checked three ways: the
** length, a copy out, and a walk over the blocks. */
static int same(const cn_buf_t *b, const char *want, size_t n) {
  char *got;
  size_t sum = 0;
  const cn_block_t *h;
  int r;
  if (cn_buf_len(b) != n) {
    diag("length %zu, expected %zu", cn_buf_len(b), n);
    return 0;
  }
  for (h = b->head; h != NULL; h = h->next) {
    size_t cap = h->cap;
    if (h->cap == CN_BLOCK_REF) {
      cn_sblock_t *sb;
      memcpy(&sb, h->data, sizeof sb);
      cap = sb->len;
    }
    if (h->rpos > h->wpos || h->wpos > cap ||
        (h->cap != CN_BLOCK_DATA && h->cap != CN_SMALL_DATA &&
         h->cap != CN_BLOCK_REF)) {
      diag("block with rpos %u wpos %u", h->rpos, h->wpos);
      return 0;
    }
    sum += h->wpos - h->rpos;
    if (h->next == NULL && h != b->tail) {
      diag("tail is not the last block");
      return 0;
    }
  }
  if (sum != n) {
    diag("blocks hold %zu bytes, length says %zu", sum, n);
    return 0;
  }
  got = malloc(n + 1);
  r = cn_buf_copyout(b, 0, got, n) == n && memcmp(got, want, n) == 0;
  if (!r)
    diag("content differs");
  free(got);
  return r;
}


static size_t nblocks(const cn_buf_t *b) {
  size_t n = 0;
  const cn_block_t *h;
  for (h = b->head; h != NULL; h = h->next)
    n++;
  return n;
}


static int64_t ref_find(const char *s, size_t n, size_t from, const char *d,
                        size_t dn) {
  size_t i;
  if (dn == 0)
    return from <= n ? (int64_t)from : -1;
  for (i = from; i + dn <= n; i++)
    if (memcmp(s + i, d, dn) == 0)
      return (int64_t)i;
  return -1;
}


/* -- Tests ------------------------------------------------------------- */

#define DATA ((size_t)CN_BLOCK_DATA)
#define MOVE_BIG (CN_BLOCK_DATA / 2) /* moved by relinking its block */


static void test_pool(void) {
  cn_pool_t p;
  cn_block_t *b[5];
  int i;
  cn_pool_init(&p, 2);
  for (i = 0; i < 5; i++)
    b[i] = cn_block_get(&p);
  ok(p.nlive == 5 && p.nfree == 0, "the pool counts blocks handed out");
  ok(b[0]->rpos == 0 && b[0]->wpos == 0 && b[0]->next == NULL,
     "a new block is empty");
  for (i = 0; i < 5; i++)
    cn_block_put(&p, b[i]);
  ok(p.nlive == 0 && p.nfree == 2, "the pool keeps at most max_free blocks");
  b[0] = cn_block_get(&p);
  b[0]->rpos = 3;
  b[0]->wpos = 9;
  cn_block_put(&p, b[0]);
  b[0] = cn_block_get(&p);
  ok(b[0]->rpos == 0 && b[0]->wpos == 0 && p.nfree == 1,
     "a reused block comes back empty");
  cn_block_put(&p, b[0]);
  cn_pool_close(&p);
  ok(p.nfree == 0 && p.free == NULL, "closing the pool frees idle blocks");
}


static void test_empty(void) {
  cn_pool_t p;
  cn_buf_t b;
  char c;
  cn_pool_init(&p, 8);
  cn_buf_init(&b, &p);
  ok(cn_buf_len(&b) == 0 && b.head == NULL && p.nlive == 0,
     "an empty buffer holds no block");
  ok(cn_buf_copyout(&b, 0, &c, 1) == 0, "copyout of an empty buffer is 0");
  ok(cn_buf_find(&b, 0, "x", 1) == -1, "find in an empty buffer is -1");
  ok(cn_buf_peek(&b, 0) != NULL && cn_buf_peek(&b, 1) == NULL,
     "peek of 0 bytes succeeds and of 1 byte fails on an empty buffer");
  cn_buf_consume(&b, 10);
  ok(cn_buf_len(&b) == 0, "consuming from an empty buffer is harmless");
  cn_buf_append(&b, "", 0);
  ok(b.head == NULL && p.nlive == 0, "appending nothing takes no block");
  cn_buf_reset(&b);
  cn_pool_close(&p);
}


static void test_append_consume(void) {
  cn_pool_t p;
  cn_buf_t b;
  size_t n = DATA * 3 + 100;
  char *src = malloc(n);
  cn_pool_init(&p, 8);
  cn_buf_init(&b, &p);
  fill(src, n, 1);
  ok(cn_buf_append(&b, src, n) == 0, "append of 3 blocks and a bit succeeds");
  ok(same(&b, src, n), "the chain holds the appended bytes in order");
  ok(nblocks(&b) == 4 && p.nlive == 4,
     "bytes fill whole blocks before taking another");
  cn_buf_consume(&b, DATA - 1);
  ok(same(&b, src + DATA - 1, n - DATA + 1) && nblocks(&b) == 4,
     "consuming all but one byte of a block keeps the block");
  cn_buf_consume(&b, 2);
  ok(same(&b, src + DATA + 1, n - DATA - 1) && nblocks(&b) == 3 &&
       p.nlive == 3,
     "consuming across a block boundary returns the emptied block");
  cn_buf_consume(&b, n);
  ok(cn_buf_len(&b) == 0 && b.head == NULL && b.tail == NULL && p.nlive == 0,
     "consuming more than the length empties the buffer and every block");
  ok(p.nfree == 4, "emptied blocks go back to the pool");
  cn_buf_append(&b, "xyz", 3);
  ok(same(&b, "xyz", 3) && p.nfree == 3, "a new append reuses a pooled block");
  cn_buf_reset(&b);
  ok(b.head == NULL && cn_buf_len(&b) == 0 && p.nlive == 0,
     "reset returns every block");
  free(src);
  cn_pool_close(&p);
}


static void test_reserve_commit(void) {
  cn_pool_t p;
  cn_buf_t b;
  char *dst;
  size_t room;
  cn_pool_init(&p, 8);
  cn_buf_init(&b, &p);
  ok(cn_buf_reserve(&b, &dst, &room) == 0 && room == DATA,
     "reserve on an empty buffer offers a whole block");
  ok(cn_buf_len(&b) == 0, "reserved bytes are not part of the buffer");
  memcpy(dst, "hello", 5);
  cn_buf_commit(&b, 5);
  ok(same(&b, "hello", 5), "commit adds the bytes written");
  ok(cn_buf_reserve(&b, &dst, &room) == 0 && room == DATA - 5,
     "reserve offers the rest of the tail block");
  cn_buf_commit(&b, 0);
  cn_buf_consume(&b, 5);
  ok(b.head == NULL && p.nlive == 0, "consuming everything drops the block");
  ok(cn_buf_reserve(&b, &dst, &room) == 0, "reserve again");
  cn_buf_trim(&b);
  ok(b.head == NULL && p.nlive == 0,
     "trim returns a reserved block that got no bytes (an idle conn holds none)");
  cn_buf_append(&b, "ab", 2);
  cn_buf_trim(&b);
  ok(same(&b, "ab", 2), "trim keeps a buffer that holds bytes");
  cn_buf_consume(&b, 1);
  cn_buf_append(&b, "c", 1);
  ok(same(&b, "bc", 2), "append after a partial consume");
  {
    char *full = malloc(DATA);
    fill(full, DATA, 3);
    cn_buf_reset(&b);
    cn_buf_append(&b, full, DATA);
    cn_buf_reserve(&b, &dst, &room);
    ok(room == DATA && nblocks(&b) == 2,
       "reserve adds a block when the tail is full");
    memcpy(dst, "Z", 1);
    cn_buf_commit(&b, 1);
    full = realloc(full, DATA + 1);
    full[DATA] = 'Z';
    ok(same(&b, full, DATA + 1), "a commit into the new block follows on");
    free(full);
  }
  cn_buf_reset(&b);
  cn_pool_close(&p);
}


static void test_copyout(void) {
  cn_pool_t p;
  cn_buf_t b;
  size_t n = DATA * 2 + 10, offs[] = {0, 1, DATA - 1, DATA, DATA + 1, n - 4};
  char *src = malloc(n), *dst = malloc(n);
  size_t i;
  cn_pool_init(&p, 8);
  cn_buf_init(&b, &p);
  fill(src, n, 5);
  cn_buf_append(&b, src, n);
  cn_buf_consume(&b, 3);
  for (i = 0; i < sizeof offs / sizeof offs[0]; i++) {
    size_t off = offs[i], k = n - 3 - off > 50 ? 50 : n - 3 - off;
    memset(dst, 0, n);
    ok(cn_buf_copyout(&b, off, dst, 50) == k &&
         memcmp(dst, src + 3 + off, k) == 0,
       "copyout at offset %zu gives the right %zu bytes", off, k);
  }
  ok(cn_buf_copyout(&b, n, dst, 10) == 0, "copyout past the end gives 0");
  ok(same(&b, src + 3, n - 3), "copyout leaves the buffer unchanged");
  free(src);
  free(dst);
  cn_buf_reset(&b);
  cn_pool_close(&p);
}


static void test_peek(void) {
  cn_pool_t p;
  cn_buf_t b;
  size_t n = DATA * 2 + 10;
  char *src = malloc(n);
  const char *s;
  cn_pool_init(&p, 8);
  cn_buf_init(&b, &p);
  fill(src, n, 9);
  cn_buf_append(&b, src, n);
  s = cn_buf_peek(&b, 10);
  ok(s != NULL && memcmp(s, src, 10) == 0,
     "peek inside the head block returns its bytes");
  cn_buf_consume(&b, DATA - 4);
  s = cn_buf_peek(&b, 10);
  ok(s != NULL && memcmp(s, src + DATA - 4, 10) == 0,
     "peek across a block boundary gathers the bytes");
  ok(same(&b, src + DATA - 4, n - DATA + 4),
     "the buffer is unchanged by a gathering peek");
  s = cn_buf_peek(&b, DATA);
  ok(s != NULL && memcmp(s, src + DATA - 4, DATA) == 0,
     "peek of a whole block's worth across blocks");
  ok(same(&b, src + DATA - 4, n - DATA + 4), "still unchanged");
  ok(cn_buf_peek(&b, DATA + 1) == NULL, "peek of more than a block fails");
  ok(cn_buf_peek(&b, n) == NULL, "peek of more than the length fails");
  cn_buf_consume(&b, cn_buf_len(&b) - 3);
  s = cn_buf_peek(&b, 3);
  ok(s != NULL && memcmp(s, src + n - 3, 3) == 0, "peek of the last bytes");
  cn_buf_reset(&b);
  /* a peek that gathers everything: the tail must follow */
  cn_buf_append(&b, src, DATA + 5);
  cn_buf_consume(&b, DATA - 5);
  s = cn_buf_peek(&b, 10);
  ok(s != NULL && memcmp(s, src + DATA - 5, 10) == 0 &&
       same(&b, src + DATA - 5, 10),
     "peek that gathers the whole buffer keeps head and tail right");
  cn_buf_append(&b, "!", 1);
  {
    char want[11];
    memcpy(want, src + DATA - 5, 10);
    want[10] = '!';
    ok(same(&b, want, 11), "append after a gathering peek lands at the end");
  }
  free(src);
  cn_buf_reset(&b);
  ok(p.nlive == 0, "no block is lost by peeks");
  cn_pool_close(&p);
}


static void test_find(void) {
  cn_pool_t p;
  cn_buf_t b;
  size_t n = DATA * 2 + 100;
  char *src = malloc(n);
  size_t at[] = {0, 1, DATA - 3, DATA - 2, DATA - 1, DATA, DATA * 2 - 1,
                 n - 4};
  size_t i;
  cn_pool_init(&p, 8);
  cn_buf_init(&b, &p);
  for (i = 0; i < sizeof at / sizeof at[0]; i++) {
    memset(src, 'x', n);
    memcpy(src + at[i], "\r\n\r\n", 4);
    cn_buf_reset(&b);
    cn_buf_append(&b, src, n);
    ok(cn_buf_find(&b, 0, "\r\n\r\n", 4) == (int64_t)at[i],
       "a 4-byte delimiter at offset %zu is found", at[i]);
    ok(cn_buf_find(&b, 0, "\n", 1) == (int64_t)at[i] + 1,
       "a 1-byte delimiter at offset %zu is found", at[i] + 1);
    ok(cn_buf_find(&b, at[i] + 1, "\r\n\r\n", 4) == -1,
       "searching after it finds nothing");
    ok(cn_buf_find(&b, at[i] + 2, "\r\n", 2) == (int64_t)at[i] + 2,
       "the second pair is found from its own offset");
  }
  /* false starts: a prefix of the delimiter just before a block boundary */
  memset(src, 'x', n);
  memcpy(src + DATA - 2, "ab", 2);
  memcpy(src + DATA + 1, "abc", 3);
  cn_buf_reset(&b);
  cn_buf_append(&b, src, n);
  ok(cn_buf_find(&b, 0, "abc", 3) == (int64_t)DATA + 1,
     "a partial match ending at a block boundary is not taken");
  ok(cn_buf_find(&b, 0, "zz", 2) == -1, "a missing delimiter is -1");
  ok(cn_buf_find(&b, 5, "", 0) == 5, "an empty delimiter matches at from");
  ok(cn_buf_find(&b, n + 1, "x", 1) == -1, "from past the end is -1");
  /* after a consume, offsets are relative to the first unread byte */
  cn_buf_consume(&b, 10);
  ok(cn_buf_find(&b, 0, "abc", 3) == (int64_t)DATA + 1 - 10,
     "offsets count from the first unread byte");
  /* a delimiter as the very last bytes */
  cn_buf_reset(&b);
  cn_buf_append(&b, "hello\r", 6);
  ok(cn_buf_find(&b, 0, "\r\n", 2) == -1,
     "half a delimiter at the end is not a match");
  cn_buf_append(&b, "\n", 1);
  ok(cn_buf_find(&b, 0, "\r\n", 2) == 5,
     "completed by the next append, it is found");
  free(src);
  cn_buf_reset(&b);
  cn_pool_close(&p);
}


/* issue #12 (found by t/fuzz/fuzz_buf.c): a block a reservation left empty
** at the head of the source, with bytes after it, made cn_buf_move spin. */
static void test_move_past_empty(cn_pool_t *p) {
  cn_buf_t a, b;
  char *w, big[MOVE_BIG];
  size_t room;
  cn_buf_init(&a, p);
  cn_buf_init(&b, p);
  cn_buf_reserve(&a, &w, &room);
  cn_buf_commit(&a, 0);  /* a holds one empty block */
  fill(big, sizeof big, 3);
  cn_buf_append(&b, big, sizeof big);
  cn_buf_move(&a, &b, sizeof big);  /* relinked after the empty block */
  ok(cn_buf_move(&b, &a, sizeof big) == sizeof big && same(&b, big, sizeof big),
     "move skips an empty block at the head of the source");
  cn_buf_reset(&b);
  ok(p->nlive == 0, "and returns it to the pool");
}


static void test_move(void) {
  cn_pool_t p;
  cn_buf_t a, b;
  size_t n = DATA * 3 + 7;
  char *src = malloc(n), *want = malloc(n + 10);
  size_t before;
  cn_pool_init(&p, 16);
  cn_buf_init(&a, &p);
  cn_buf_init(&b, &p);
  fill(src, n, 11);
  cn_buf_append(&a, src, n);
  cn_buf_append(&b, "head:", 5);
  before = p.nlive;
  ok(cn_buf_move(&b, &a, n) == n, "move of everything moves every byte");
  memcpy(want, "head:", 5);
  memcpy(want + 5, src, n);
  ok(same(&b, want, n + 5) && cn_buf_len(&a) == 0 && a.head == NULL,
     "the destination holds both, in order; the source is empty");
  ok(p.nlive <= before, "whole blocks were relinked, not copied");
  cn_buf_reset(&b);
  cn_buf_append(&a, src, n);
  ok(cn_buf_move(&b, &a, 100) == 100 && same(&b, src, 100) &&
       same(&a, src + 100, n - 100),
     "a small move copies the bytes");
  ok(cn_buf_move(&b, &a, DATA) == DATA && same(&b, src, DATA + 100) &&
       same(&a, src + DATA + 100, n - DATA - 100),
     "a move across blocks keeps both sides right");
  ok(cn_buf_move(&b, &a, n * 2) == n - DATA - 100 && same(&b, src, n) &&
       cn_buf_len(&a) == 0,
     "a move of more than the source moves what is there");
  cn_buf_append(&b, "end", 3);
  memcpy(want, src, n);
  memcpy(want + n, "end", 3);
  ok(same(&b, want, n + 3), "appends after a move go to the end");
  cn_buf_reset(&a);
  cn_buf_reset(&b);
  ok(p.nlive == 0, "no block is lost by moves");
  free(src);
  free(want);
  test_move_past_empty(&p);
  cn_pool_close(&p);
}


static void test_iov(void) {
  cn_pool_t p;
  cn_buf_t b;
  size_t n = DATA * 2 + 5, total = 0;
  char *src = malloc(n), *got = malloc(n);
  uv_buf_t iov[8];
  int i, k;
  cn_pool_init(&p, 8);
  cn_buf_init(&b, &p);
  fill(src, n, 13);
  cn_buf_append(&b, src, n);
  cn_buf_consume(&b, 1);
  k = cn_buf_iov(&b, 0, iov, 8);
  for (i = 0; i < k; i++) {
    memcpy(got + total, iov[i].base, iov[i].len);
    total += iov[i].len;
  }
  ok(k == 3 && total == n - 1 && memcmp(got, src + 1, total) == 0,
     "iov covers every unread byte, one buffer per block");
  k = cn_buf_iov(&b, DATA, iov, 8);
  ok(k == 2 && iov[0].len == DATA - 1 && iov[0].base[0] == src[DATA + 1] &&
       iov[1].len == 5,
     "iov skips bytes into the second block");
  k = cn_buf_iov(&b, 0, iov, 1);
  ok(k == 1 && iov[0].len == DATA - 1, "iov stops at max buffers");
  k = cn_buf_iov(&b, n, iov, 8);
  ok(k == 0, "iov past the end is empty");
  free(src);
  free(got);
  cn_buf_reset(&b);
  cn_pool_close(&p);
}


static void test_small(void) {
  cn_pool_t p;
  cn_buf_t b;
  char *dst, big[3000];
  size_t room, live;
  cn_pool_init(&p, 8);
  cn_buf_init(&b, &p);
  cn_buf_settle(&b);
  ok(b.head == NULL && p.nlive == 0, "settle of an empty buffer does nothing");
  cn_buf_append(&b, "0123456789", 10);
  ok(b.head->cap == CN_BLOCK_DATA, "bytes first land in a big block");
  cn_buf_settle(&b);
  ok(b.head != NULL && b.head->cap == CN_SMALL_DATA && b.head == b.tail,
     "settle moves a short message into a small block");
  ok(same(&b, "0123456789", 10), "with the same bytes");
  ok(p.nlive == 1 && p.nfree == 1,
     "the big block went back to the pool (%zu live, %zu free)", p.nlive,
     p.nfree);
  cn_buf_settle(&b);
  ok(b.head->cap == CN_SMALL_DATA && same(&b, "0123456789", 10),
     "settling a small block again changes nothing");
  ok(cn_buf_reserve(&b, &dst, &room) == 0 && room == CN_SMALL_DATA - 10,
     "reserve offers the rest of the small block");
  fill(big, sizeof big, 17);
  memcpy(big, "0123456789", 10);
  cn_buf_append(&b, big + 10, sizeof big - 10);
  ok(same(&b, big, sizeof big) && nblocks(&b) == 2,
     "appends fill the small block, then take a big one");
  cn_buf_consume(&b, sizeof big);
  ok(b.head == NULL && p.nlive == 0 && p.nfree_small == 1,
     "consumed, the small block goes back to its own free list");
  /* settle is only for one big block holding little */
  cn_buf_append(&b, big, CN_SMALL_DATA + 1);
  cn_buf_settle(&b);
  ok(b.head->cap == CN_BLOCK_DATA && same(&b, big, CN_SMALL_DATA + 1),
     "more bytes than a small block holds: no settle");
  cn_buf_consume(&b, 1000);
  cn_buf_settle(&b);
  ok(b.head->cap == CN_SMALL_DATA && same(&b, big + 1000, CN_SMALL_DATA - 999),
     "after a partial consume the unread rest settles");
  cn_buf_reset(&b);
  {
    char *full = malloc(DATA + 10);
    fill(full, DATA + 10, 4);
    cn_buf_append(&b, full, DATA + 10);
    cn_buf_consume(&b, DATA - 5);
    live = p.nlive;
    cn_buf_settle(&b);
    ok(p.nlive == live && nblocks(&b) == 2 && b.head->cap == CN_BLOCK_DATA &&
         same(&b, full + DATA - 5, 15),
       "15 bytes over two blocks are not settled");
    free(full);
  }
  cn_buf_reset(&b);
  /* reserve never offers a sliver at the end of a block */
  {
    char *fillb = malloc(DATA);
    fill(fillb, DATA, 6);
    cn_buf_append(&b, fillb, DATA - 100);
    ok(cn_buf_reserve(&b, &dst, &room) == 0 && room == DATA &&
         nblocks(&b) == 2,
       "with 100 bytes left in the tail, reserve starts a new block");
    cn_buf_commit(&b, 0);
    cn_buf_trim(&b);
    ok(same(&b, fillb, DATA - 100), "the bytes are unchanged");
    free(fillb);
  }
  cn_buf_reset(&b);
  ok(p.nlive == 0, "no block is lost");
  cn_pool_close(&p);
  ok(p.free == NULL && p.free_small == NULL, "closing frees both free lists");
}


/* test_random runs random operations on a chain and on a flat copy and
** compares them after each. */
static void test_random(void) {
  cn_pool_t p;
  cn_buf_t a, b;
  size_t cap = DATA * 12, alen = 0, blen = 0;
  char *ra = malloc(cap), *rb = malloc(cap * 2), *tmp = malloc(cap);
  int step, bad = 0, findbad = 0, peekbad = 0;
  static const char *const delims[] = {"\n", "\r\n", "ab", "xyz", "\r\n\r\n"};
  cn_pool_init(&p, 4);
  cn_buf_init(&a, &p);
  cn_buf_init(&b, &p);
  for (step = 0; step < 20000 && !bad; step++) {
    uint32_t op = rnd() % 8;
    size_t k;
    if (op == 7) { /* a shared block, or part of it, by reference */
      size_t n = rnd() % (DATA * 2), off, len;
      cn_sblock_t *sb;
      for (size_t i = 0; i < n; i++)
        tmp[i] = "\r\nabxyzc"[rnd() % 8];
      sb = cn_sblock_new(tmp, n);
      off = n ? rnd() % n : 0;
      len = n - off ? rnd() % (n - off) + 1 : 0;
      if (alen + len <= cap && cn_buf_append_shared(&a, sb, off, len) == 0) {
        memcpy(ra + alen, tmp + off, len);
        alen += len;
      }
      cn_sblock_unref(sb);
    } else if (op <= 1) { /* append 0..3 blocks of random letters and delimiters */
      k = rnd() % (op == 0 ? 64 : DATA * 3);
      if (alen + k > cap)
        k = cap - alen;
      for (size_t i = 0; i < k; i++) {
        uint32_t r = rnd() % 40;
        tmp[i] = r < 3 ? "\r\nab"[r] : r < 5 ? 'x' + (char)(r - 3) : 'c';
      }
      cn_buf_append(&a, tmp, k);
      memcpy(ra + alen, tmp, k);
      alen += k;
    } else if (op == 2) {
      k = rnd() % (alen + 1);
      cn_buf_consume(&a, k);
      memmove(ra, ra + k, alen - k);
      alen -= k;
    } else if (op == 3) {
      const char *d = delims[rnd() % 5];
      size_t from = alen ? rnd() % alen : 0;
      int64_t got = cn_buf_find(&a, from, d, strlen(d));
      int64_t want = ref_find(ra, alen, from, d, strlen(d));
      if (got != want && !findbad++)
        diag("step %d: find \"%s\" from %zu: %lld, expected %lld", step, d,
             from, (long long)got, (long long)want);
    } else if (op == 4) {
      const char *s;
      k = rnd() % (DATA + 10);
      s = cn_buf_peek(&a, k);
      if ((k <= alen && k <= DATA) != (s != NULL) ||
          (s != NULL && memcmp(s, ra, k) != 0)) {
        if (!peekbad++)
          diag("step %d: peek %zu of %zu wrong", step, k, alen);
      }
    } else if (op == 6) {
      cn_buf_settle(&a);
    } else {
      k = rnd() % (alen + 1);
      if (blen + k <= cap * 2) {
        size_t m = cn_buf_move(&b, &a, k);
        memcpy(rb + blen, ra, m);
        blen += m;
        memmove(ra, ra + m, alen - m);
        alen -= m;
        if (m != k && !bad++)
          diag("step %d: moved %zu of %zu", step, m, k);
      } else {
        cn_buf_consume(&b, blen / 2);
        memmove(rb, rb + blen / 2, blen - blen / 2);
        blen -= blen / 2;
      }
    }
    if (!same(&a, ra, alen) || !same(&b, rb, blen)) {
      diag("step %d (op %u): chain and reference differ", step, op);
      bad++;
    }
  }
  ok(!bad, "20000 random appends (shared blocks too), consumes, peeks, "
          "settles and moves match a flat copy");
  ok(!findbad, "random finds match a naive search");
  ok(!peekbad, "random peeks match the reference");
  cn_buf_reset(&a);
  cn_buf_reset(&b);
  ok(p.nlive == 0, "after the random run every block is back in the pool");
  ok(p.nfree <= p.max_free, "the pool kept at most max_free idle blocks");
  free(ra);
  free(rb);
  free(tmp);
  cn_pool_close(&p);
}


/* test_shared: chains show shared blocks by reference, and every read
** (copyout, peek, find, iov, consume, move) sees their bytes as its own. */
static void test_shared(void) {
  cn_pool_t p;
  cn_buf_t a, b;
  char want[64];
  const char *s;
  uv_buf_t iov[8];
  cn_sblock_t *sb = cn_sblock_new("shared line\n", 12);
  cn_pool_init(&p, 8);
  cn_buf_init(&a, &p);
  cn_buf_init(&b, &p);
  cn_buf_append(&a, "head ", 5);
  ok(cn_buf_append_shared(&a, sb, 0, 12) == 0 &&
       cn_buf_append_shared(&b, sb, 0, 12) == 0,
     "a shared block joins two chains");
  ok(sb->refs == 3, "each chain holds a reference (refs %u)", sb->refs);
  cn_buf_append(&a, "tail", 4);
  ok(same(&a, "head shared line\ntail", 21), "copyout sees the bytes in "
     "order, before and after");
  ok(a.tail->cap != CN_BLOCK_REF, "an append after a shared block goes to "
     "a block of its own");
  ok(cn_buf_find(&a, 0, "line\nta", 7) == 12, "find matches across a "
     "shared block and the next");
  ok(cn_buf_iov(&a, 3, iov, 8) == 3 && iov[1].len == 12 &&
       memcmp(iov[1].base, "shared line\n", 12) == 0,
     "iov points into the shared bytes");
  s = cn_buf_peek(&b, 6);
  ok(s != NULL && memcmp(s, "shared", 6) == 0, "peek inside a shared block");
  s = cn_buf_peek(&a, 9);
  ok(s != NULL && memcmp(s, "head shar", 9) == 0 && sb->refs == 3 &&
       same(&a, "head shared line\ntail", 21),
     "a gathering peek copies and keeps the reference for the rest");
  cn_buf_consume(&a, 12);
  ok(same(&a, "line\ntail", 9), "consume inside a shared block");
  ok(cn_buf_move(&b, &a, 3) == 3 && same(&b, "shared line\nlin", 15) &&
       same(&a, "e\ntail", 6),
     "a move of part of a shared block copies");
  cn_buf_consume(&a, 2);
  ok(sb->refs == 2, "consuming its last byte drops the chain's reference");
  cn_buf_reset(&a);
  cn_buf_append_shared(&a, sb, 7, 4);
  ok(same(&a, "line", 4), "a chain can show part of a shared block");
  ok(cn_buf_move(&b, &a, 4) == 4 && b.tail->cap == CN_BLOCK_REF &&
       sb->refs == 3, "a move of a whole reference relinks it");
  memcpy(want, "shared line\nlinline", 19);
  ok(same(&b, want, 19), "and the bytes follow");
  ok(cn_buf_append_shared(&a, sb, 5, 20) == CN_ENOMEM && cn_buf_len(&a) == 0,
     "a range past the shared block's end is refused");
  cn_buf_reset(&b);
  ok(sb->refs == 1 && p.nlive == 0, "reset returns every reference");
  cn_sblock_unref(sb);
  cn_pool_close(&p);
}


static void test_errors(void) {
  ok(strcmp(cn_strerror(CN_EOF), "eof") == 0, "CN_EOF reads \"eof\"");
  ok(strcmp(cn_strerror(CN_ECLOSED), "closed") == 0,
     "CN_ECLOSED reads \"closed\"");
  ok(strcmp(cn_strerror(CN_ETIMEOUT), "timeout") == 0,
     "CN_ETIMEOUT reads \"timeout\"");
  ok(strcmp(cn_strerror(CN_ELINE), "line too long") == 0,
     "CN_ELINE reads \"line too long\"");
  ok(strcmp(cn_strerror(CN_EBUSYR), "busy reading") == 0,
     "CN_EBUSYR reads \"busy reading\"");
  ok(strcmp(cn_strerror(UV_ECONNRESET), "reset") == 0 &&
       strcmp(cn_strerror(UV_EPIPE), "reset") == 0,
     "ECONNRESET and EPIPE read \"reset\"");
  ok(strcmp(cn_err_name(CN_ECLOSED), "ECLOSED") == 0 &&
       strcmp(cn_err_name(UV_ECONNREFUSED), "ECONNREFUSED") == 0,
     "error names come from one table, libuv's pass through");
}


int main(void) {
  test_pool();
  test_empty();
  test_append_consume();
  test_reserve_commit();
  test_copyout();
  test_peek();
  test_find();
  test_move();
  test_iov();
  test_small();
  test_shared();
  test_random();
  test_errors();
  printf("1..%d\n", tap_count);
  return tap_failed ? 1 : 0;
}
