/* cn_buf.h: chained byte buffer over a per-worker pool of fixed-size
** blocks. Engine in cn_buf.c; no Lua. */
#ifndef CN_BUF_H
#define CN_BUF_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <uv.h>

#ifndef CN_BLOCK_SIZE
#define CN_BLOCK_SIZE 16384 /* data bytes per block: a 16 KiB message fits */
#endif

typedef struct cn_block_s cn_block_t;
typedef struct cn_pool_s cn_pool_t;
typedef struct cn_buf_s cn_buf_t;

#ifndef CN_SMALL_SIZE
#define CN_SMALL_SIZE 1024 /* small blocks hold a few waiting bytes */
#endif

/* A block holds its bytes in data, or, when cap is CN_BLOCK_REF, refers
** to a shared block whose bytes it shows: data then holds the pointer.
** Readers take a block's bytes from cn_block_bytes, never from data. */
struct cn_block_s {
  cn_block_t *next;
  uint32_t rpos, wpos; /* unread bytes are bytes[rpos, wpos) */
  uint32_t cap;        /* CN_BLOCK_DATA, CN_SMALL_DATA or CN_BLOCK_REF */
  char data[];
};

#define CN_BLOCK_DATA CN_BLOCK_SIZE
#define CN_SMALL_DATA (CN_SMALL_SIZE - (int)sizeof(cn_block_t))
#define CN_BLOCK_REF 0

/* A shared block: immutable bytes with an atomic reference count, which
** any number of chains, of any worker, show by reference
** (cn_buf_append_shared): one copy of a message for every connection it
** goes to. */
typedef struct cn_sblock_s {
  uint32_t refs;
  size_t len;
  char data[];
} cn_sblock_t;

static inline const char *cn_block_bytes(const cn_block_t *b) {
  cn_sblock_t *s;
  if (b->cap != CN_BLOCK_REF)
    return b->data;
  memcpy(&s, b->data, sizeof s);
  return s->data;
}

/* A pool hands out blocks and keeps up to max_free returned ones (and 16
** times as many small ones). */
struct cn_pool_s {
  cn_block_t *free;
  size_t nfree, max_free;
  size_t nlive; /* blocks handed out and not yet returned */
  cn_block_t *free_small;
  size_t nfree_small;
  cn_block_t *free_ref; /* blocks that refer to shared blocks */
  size_t nfree_ref;
  char *scratch; /* CN_READ_SCRATCH bytes for reads, made on first use */
};

/* Socket reads that would need a new block land in a scratch buffer this
** big first: a read then stops short of filling its buffer (as libuv's
** suggested 64 KiB), so libuv need not try another read that finds
** nothing, as it does after one that filled a 16 KiB block exactly. */
#define CN_READ_SCRATCH 65536

struct cn_buf_s {
  cn_block_t *head, *tail;
  size_t len;
  cn_pool_t *pool;
};

void cn_pool_init(cn_pool_t *p, size_t max_free);
void cn_pool_close(cn_pool_t *p);
cn_block_t *cn_block_get(cn_pool_t *p);
void cn_block_put(cn_pool_t *p, cn_block_t *b);

void cn_buf_init(cn_buf_t *b, cn_pool_t *pool);
void cn_buf_reset(cn_buf_t *b);
int cn_buf_append(cn_buf_t *b, const void *p, size_t n);
int cn_buf_reserve(cn_buf_t *b, char **p, size_t *n);
void cn_buf_commit(cn_buf_t *b, size_t n);
void cn_buf_trim(cn_buf_t *b);
void cn_buf_settle(cn_buf_t *b);
void cn_buf_consume(cn_buf_t *b, size_t n);
size_t cn_buf_copyout(const cn_buf_t *b, size_t off, void *dst, size_t n);
const char *cn_buf_peek(cn_buf_t *b, size_t n);
int64_t cn_buf_find(const cn_buf_t *b, size_t from, const char *d, size_t dn);
size_t cn_buf_move(cn_buf_t *dst, cn_buf_t *src, size_t n);
int cn_buf_iov(const cn_buf_t *b, size_t skip, uv_buf_t *iov, int max);
const char *cn_buf_span(const cn_buf_t *b, size_t n);
int cn_buf_reserve_read(cn_buf_t *b, size_t want, char **p, size_t *n);
int cn_buf_commit_read(cn_buf_t *b, const char *p, size_t n);

cn_sblock_t *cn_sblock_alloc(size_t n);
cn_sblock_t *cn_sblock_new(const void *p, size_t n);
void cn_sblock_ref(cn_sblock_t *s);
void cn_sblock_unref(cn_sblock_t *s);
int cn_buf_append_shared(cn_buf_t *b, cn_sblock_t *s, size_t off, size_t n);

static inline size_t cn_buf_len(const cn_buf_t *b) { return b->len; }

#endif
