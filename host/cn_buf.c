/* cn_buf.c: chained byte buffer, and the shared blocks that chains show by
** reference. Used by cn_conn.c for read and write chains; tested on its
** own by t/c/test_buf.c. */
#include "cn_buf.h"

#include <stdlib.h>
#include <string.h>

#include "cn_errno.h"

/* Free space below which cn_buf_reserve starts a new block rather than
** offer a read the end of the last one. */
#define RESERVE_MIN 512

/* Bytes below which cn_buf_move copies a block's data instead of relinking
** the block, so that many small moves do not pin many mostly empty blocks. */
#define MOVE_MIN (CN_BLOCK_DATA / 4)


void cn_pool_init(cn_pool_t *p, size_t max_free) {
  p->free = p->free_small = p->free_ref = NULL;
  p->nfree = p->nfree_small = p->nfree_ref = 0;
  p->max_free = max_free;
  p->nlive = 0;
  p->scratch = NULL;
}


/* cn_pool_close frees the pool's idle blocks. Blocks still handed out
** stay the holder's to return or free. */
void cn_pool_close(cn_pool_t *p) {
  cn_block_t *b;
  while ((b = p->free) != NULL) {
    p->free = b->next;
    free(b);
  }
  while ((b = p->free_small) != NULL) {
    p->free_small = b->next;
    free(b);
  }
  while ((b = p->free_ref) != NULL) {
    p->free_ref = b->next;
    free(b);
  }
  p->nfree = p->nfree_small = p->nfree_ref = 0;
  free(p->scratch);
  p->scratch = NULL;
}


static cn_block_t *block_get(cn_pool_t *p, cn_block_t **list, size_t *n,
                             size_t size) {
  cn_block_t *b = *list;
  if (b != NULL) {
    *list = b->next;
    (*n)--;
  } else if ((b = malloc(size)) == NULL) {
    return NULL;
  }
  b->next = NULL;
  b->rpos = b->wpos = 0;
  b->cap = (uint32_t)(size - sizeof(cn_block_t));
  p->nlive++;
  return b;
}


/* ref_size is the size of a block that refers to a shared block. */
#define REF_SIZE (sizeof(cn_block_t) + sizeof(cn_sblock_t *))


static cn_sblock_t *block_sblock(const cn_block_t *b) {
  cn_sblock_t *s;
  memcpy(&s, b->data, sizeof s);
  return s;
}


/* cn_block_get returns an empty block, or NULL when memory runs out. */
cn_block_t *cn_block_get(cn_pool_t *p) {
  return block_get(p, &p->free, &p->nfree,
                   sizeof(cn_block_t) + CN_BLOCK_DATA);
}


void cn_block_put(cn_pool_t *p, cn_block_t *b) {
  int small = b->cap == CN_SMALL_DATA;
  size_t *n = small ? &p->nfree_small : &p->nfree;
  p->nlive--;
  if (b->cap == CN_BLOCK_REF) {
    cn_sblock_unref(block_sblock(b));
    if (p->nfree_ref >= 64 * p->max_free) {
      free(b);
      return;
    }
    b->next = p->free_ref;
    p->free_ref = b;
    p->nfree_ref++;
    return;
  }
  if (*n >= (small ? 16 * p->max_free : p->max_free)) {
    free(b);
    return;
  }
  b->next = small ? p->free_small : p->free;
  *(small ? &p->free_small : &p->free) = b;
  (*n)++;
}


void cn_buf_init(cn_buf_t *b, cn_pool_t *pool) {
  b->head = b->tail = NULL;
  b->len = 0;
  b->pool = pool;
}


/* cn_buf_reset drops every byte and returns every block to the pool. */
void cn_buf_reset(cn_buf_t *b) {
  while (b->head != NULL) {
    cn_block_t *n = b->head->next;
    cn_block_put(b->pool, b->head);
    b->head = n;
  }
  b->tail = NULL;
  b->len = 0;
}


static void buf_link(cn_buf_t *b, cn_block_t *blk) {
  blk->next = NULL;
  if (b->tail != NULL)
    b->tail->next = blk;
  else
    b->head = blk;
  b->tail = blk;
}


/* cn_buf_reserve sets *p, *n to the free space at the end of b, adding a
** block when the last one is full. Bytes written there join b only when
** cn_buf_commit says so. Returns 0 or CN_ENOMEM. */
int cn_buf_reserve(cn_buf_t *b, char **p, size_t *n) {
  cn_block_t *t = b->tail;
  if (t != NULL && t->cap != CN_BLOCK_REF && t->rpos == t->wpos)
    t->rpos = t->wpos = 0; /* empty tail: reuse from the start */
  if (t == NULL || t->cap == CN_BLOCK_REF || t->cap - t->wpos < RESERVE_MIN) {
    if ((t = cn_block_get(b->pool)) == NULL)
      return CN_ENOMEM;
    buf_link(b, t);
  }
  *p = t->data + t->wpos;
  *n = t->cap - t->wpos;
  return 0;
}


/* cn_buf_commit adds n bytes written into the space cn_buf_reserve gave. */
void cn_buf_commit(cn_buf_t *b, size_t n) {
  b->tail->wpos += (uint32_t)n;
  b->len += n;
}


/* cn_buf_trim returns the blocks of an empty buffer to the pool, so that an
** idle connection holds none. */
void cn_buf_trim(cn_buf_t *b) {
  if (b->len == 0)
    cn_buf_reset(b);
}


/* cn_buf_settle moves the few bytes of a buffer that is one big block
** into a small block, returning the big one to the pool: thousands of
** connections with a short message waiting then hold little memory. */
void cn_buf_settle(cn_buf_t *b) {
  cn_block_t *t = b->head, *s;
  size_t n = b->len;
  if (t == NULL || t != b->tail || t->cap != CN_BLOCK_DATA ||
      n > CN_SMALL_DATA)
    return;
  s = block_get(b->pool, &b->pool->free_small, &b->pool->nfree_small,
                CN_SMALL_SIZE);
  if (s == NULL)
    return;
  memcpy(s->data, t->data + t->rpos, n);
  s->wpos = (uint32_t)n;
  b->head = b->tail = s;
  cn_block_put(b->pool, t);
}


/* cn_buf_append copies n bytes from p to the end of b. Returns 0 or
** CN_ENOMEM, in which case b holds a prefix of p. */
int cn_buf_append(cn_buf_t *b, const void *p, size_t n) {
  const char *s = p;
  while (n > 0) {
    char *dst;
    size_t room;
    int err = cn_buf_reserve(b, &dst, &room);
    if (err < 0)
      return err;
    if (room > n)
      room = n;
    memcpy(dst, s, room);
    cn_buf_commit(b, room);
    s += room;
    n -= room;
  }
  return 0;
}


/* cn_buf_consume drops the first n bytes (at most len) of b, returning
** emptied blocks to the pool. */
void cn_buf_consume(cn_buf_t *b, size_t n) {
  if (n > b->len)
    n = b->len;
  b->len -= n;
  while (n > 0) {
    cn_block_t *h = b->head;
    size_t avail = h->wpos - h->rpos;
    if (n < avail) {
      h->rpos += (uint32_t)n;
      return;
    }
    n -= avail;
    b->head = h->next;
    if (b->head == NULL)
      b->tail = NULL;
    cn_block_put(b->pool, h);
  }
}


/* cn_buf_copyout copies up to n bytes starting at offset off into dst,
** leaving b unchanged. Returns the count copied. */
size_t cn_buf_copyout(const cn_buf_t *b, size_t off, void *dst, size_t n) {
  char *d = dst;
  size_t done = 0;
  cn_block_t *h;
  for (h = b->head; h != NULL && done < n; h = h->next) {
    size_t avail = h->wpos - h->rpos;
    if (off >= avail) {
      off -= avail;
      continue;
    }
    avail -= off;
    if (avail > n - done)
      avail = n - done;
    memcpy(d + done, cn_block_bytes(h) + h->rpos + off, avail);
    done += avail;
    off = 0;
  }
  return done;
}


/* cn_buf_peek returns the first n buffered bytes as one contiguous span, or
** NULL if fewer than n are buffered or n exceeds a block. Bytes split
** across blocks are gathered into a fresh head block. The span stays valid
** until the next call that modifies b. */
const char *cn_buf_peek(cn_buf_t *b, size_t n) {
  cn_block_t *h = b->head, *nb;
  if (n > b->len || n > CN_BLOCK_DATA)
    return NULL;
  if (n == 0)
    return "";
  if (h->wpos - h->rpos >= n)
    return cn_block_bytes(h) + h->rpos;
  if ((nb = cn_block_get(b->pool)) == NULL)
    return NULL;
  cn_buf_copyout(b, 0, nb->data, n);
  nb->wpos = (uint32_t)n;
  cn_buf_consume(b, n);
  nb->next = b->head;
  b->head = nb;
  if (b->tail == NULL)
    b->tail = nb;
  b->len += n;
  return nb->data;
}


static int match_at(const cn_block_t *h, size_t pos, const char *d, size_t dn) {
  size_t i;
  for (i = 0; i < dn; i++, pos++) {
    while (h != NULL && pos >= h->wpos) {
      h = h->next;
      if (h != NULL)
        pos = h->rpos;
    }
    if (h == NULL || cn_block_bytes(h)[pos] != d[i])
      return 0;
  }
  return 1;
}


/* cn_buf_find returns the offset of the first d[0..dn) that starts at or
** after offset from, or -1. */
int64_t cn_buf_find(const cn_buf_t *b, size_t from, const char *d,
                    size_t dn) {
  size_t base = 0;
  const cn_block_t *h;
  if (dn == 0)
    return from <= b->len ? (int64_t)from : -1;
  for (h = b->head; h != NULL; h = h->next) {
    size_t avail = h->wpos - h->rpos;
    const char *bytes = cn_block_bytes(h);
    const char *start = bytes + h->rpos, *end = start + avail, *p;
    if (from >= base + avail) {
      base += avail;
      continue;
    }
    p = start + (from > base ? from - base : 0);
    while (p < end && (p = memchr(p, d[0], (size_t)(end - p))) != NULL) {
      if (dn == 1 || match_at(h, (size_t)(p - bytes), d, dn))
        return (int64_t)(base + (size_t)(p - start));
      p++;
    }
    base += avail;
  }
  return -1;
}


/* cn_buf_move moves the first n bytes (at most src's length) of src to the
** end of dst: large blocks and references to shared blocks are relinked,
** small remainders copied. Returns the count moved; less than asked only
** when memory runs out. */
size_t cn_buf_move(cn_buf_t *dst, cn_buf_t *src, size_t n) {
  size_t moved = 0;
  if (n > src->len)
    n = src->len;
  while (moved < n) {
    cn_block_t *h = src->head;
    size_t avail = h->wpos - h->rpos, take = n - moved;
    if (avail == 0) { /* a reservation left it empty: drop it */
      src->head = h->next;
      cn_block_put(src->pool, h);
      continue;
    }
    if (avail <= take && (avail >= MOVE_MIN || h->cap == CN_BLOCK_REF)) {
      src->head = h->next;
      if (src->head == NULL)
        src->tail = NULL;
      src->len -= avail;
      buf_link(dst, h);
      dst->len += avail;
      moved += avail;
      continue;
    }
    if (take > avail)
      take = avail;
    if (cn_buf_append(dst, cn_block_bytes(h) + h->rpos, take) < 0)
      break;
    cn_buf_consume(src, take);
    moved += take;
  }
  return moved;
}


/* cn_buf_iov fills at most max buffers with b's bytes after the first skip.
** Returns the count filled. */
int cn_buf_iov(const cn_buf_t *b, size_t skip, uv_buf_t *iov, int max) {
  int n = 0;
  const cn_block_t *h;
  for (h = b->head; h != NULL && n < max; h = h->next) {
    size_t avail = h->wpos - h->rpos;
    if (skip >= avail) {
      skip -= avail;
      continue;
    }
    iov[n].base = (char *)cn_block_bytes(h) + h->rpos + skip;
    iov[n].len = avail - skip;
    skip = 0;
    n++;
  }
  return n;
}


/* cn_buf_span returns the first n bytes of b when they lie in one block
** (a pointer into it, valid until b changes; "" when n is 0), else NULL:
** the caller gathers them another way. */
const char *cn_buf_span(const cn_buf_t *b, size_t n) {
  const cn_block_t *h = b->head;
  if (n == 0)
    return "";
  if (h == NULL || h->wpos - h->rpos < n)
    return NULL;
  return cn_block_bytes(h) + h->rpos;
}


/* cn_buf_reserve_read is cn_buf_reserve for a socket read of about want
** bytes: where a new block would be needed it offers the pool's scratch
** buffer instead (see CN_READ_SCRATCH), want bytes of it but at least a
** block's worth. The read's bytes join b with cn_buf_commit_read. Returns
** 0 or CN_ENOMEM. */
int cn_buf_reserve_read(cn_buf_t *b, size_t want, char **p, size_t *n) {
  cn_block_t *t = b->tail;
  cn_pool_t *pool = b->pool;
  if (t != NULL && t->cap != CN_BLOCK_REF && t->wpos > t->rpos &&
      t->cap - t->wpos >= RESERVE_MIN)
    return cn_buf_reserve(b, p, n); /* the rest of the last block */
  if (pool->scratch == NULL &&
      (pool->scratch = malloc(CN_READ_SCRATCH)) == NULL)
    return cn_buf_reserve(b, p, n);
  *p = pool->scratch;
  *n = want < CN_BLOCK_DATA ? CN_BLOCK_DATA
       : want < CN_READ_SCRATCH ? want : CN_READ_SCRATCH;
  return 0;
}


/* cn_buf_commit_read adds the n bytes a read put where cn_buf_reserve_read
** said: in place, or copied from the scratch buffer (a few bytes into a
** small block when b was empty). Returns 0, or CN_ENOMEM when some of them
** could not be kept. */
int cn_buf_commit_read(cn_buf_t *b, const char *p, size_t n) {
  cn_pool_t *pool = b->pool;
  cn_block_t *s;
  if (p != pool->scratch) {
    cn_buf_commit(b, n);
    return 0;
  }
  if (b->len > 0 || n > CN_SMALL_DATA ||
      (s = block_get(pool, &pool->free_small, &pool->nfree_small,
                     CN_SMALL_SIZE)) == NULL)
    return cn_buf_append(b, p, n);
  cn_buf_reset(b); /* an emptied block may be left */
  memcpy(s->data, p, n);
  s->wpos = (uint32_t)n;
  buf_link(b, s);
  b->len = n;
  return 0;
}


/* -- Shared blocks ------------------------------------------------------ */


/* cn_sblock_alloc returns a shared block of n bytes for the caller to
** fill before anyone else sees it, with one reference (the caller's), or
** NULL when memory runs out. */
cn_sblock_t *cn_sblock_alloc(size_t n) {
  cn_sblock_t *s = malloc(sizeof *s + n);
  if (s == NULL)
    return NULL;
  s->refs = 1;
  s->len = n;
  return s;
}


/* cn_sblock_new returns a shared block holding a copy of p[0..n), with
** one reference (the caller's), or NULL when memory runs out. */
cn_sblock_t *cn_sblock_new(const void *p, size_t n) {
  cn_sblock_t *s = cn_sblock_alloc(n);
  if (s != NULL && n > 0)
    memcpy(s->data, p, n);
  return s;
}


void cn_sblock_ref(cn_sblock_t *s) {
  __atomic_add_fetch(&s->refs, 1, __ATOMIC_RELAXED);
}


void cn_sblock_unref(cn_sblock_t *s) {
  if (__atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) == 0)
    free(s);
}


/* cn_buf_append_shared adds s's bytes [off, off+n) to the end of b by
** reference (b holds a reference to s until they are consumed). Returns 0
** or CN_ENOMEM. */
int cn_buf_append_shared(cn_buf_t *b, cn_sblock_t *s, size_t off, size_t n) {
  cn_pool_t *p = b->pool;
  cn_block_t *r;
  if (n == 0)
    return 0;
  if (off + n > s->len || off + n > UINT32_MAX)
    return CN_ENOMEM;
  r = block_get(p, &p->free_ref, &p->nfree_ref, REF_SIZE);
  if (r == NULL)
    return CN_ENOMEM;
  r->cap = CN_BLOCK_REF;
  r->rpos = (uint32_t)off;
  r->wpos = (uint32_t)(off + n);
  memcpy(r->data, &s, sizeof s);
  cn_sblock_ref(s);
  buf_link(b, r);
  b->len += n;
  return 0;
}
