/* cn_buf.h: chained byte buffer over a per-worker pool of fixed-size
** blocks. Engine in cn_buf.c; no Lua. */
#ifndef CN_BUF_H
#define CN_BUF_H

#include <stddef.h>
#include <stdint.h>
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

struct cn_block_s {
  cn_block_t *next;
  uint32_t rpos, wpos; /* unread bytes are data[rpos, wpos) */
  uint32_t cap;        /* CN_BLOCK_DATA or CN_SMALL_DATA */
  char data[];
};

#define CN_BLOCK_DATA CN_BLOCK_SIZE
#define CN_SMALL_DATA (CN_SMALL_SIZE - (int)sizeof(cn_block_t))

/* A pool hands out blocks and keeps up to max_free returned ones (and 16
** times as many small ones). */
struct cn_pool_s {
  cn_block_t *free;
  size_t nfree, max_free;
  size_t nlive; /* blocks handed out and not yet returned */
  cn_block_t *free_small;
  size_t nfree_small;
};

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

static inline size_t cn_buf_len(const cn_buf_t *b) { return b->len; }

#endif
