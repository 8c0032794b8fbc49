/* cn_shared.c: dictionaries shared by every worker of the process, found
** by name. Each has a mutex (every call is atomic), a hash table of
** entries (string keys; string, number or boolean values; an optional
** expiry) and a least-recently-used list, and a byte bound: set and
** replace evict from the cold end to make room, add fails instead. Lua
** binding in lcn_shared.c. */
#include <stdlib.h>
#include <string.h>

#include "cn.h"

typedef struct entry_s entry_t;

struct entry_s {
  entry_t *hnext;      /* hash chain */
  entry_t *prev, *next; /* LRU list, most recent first */
  uint32_t hash, klen;
  size_t vlen;
  uint64_t expires; /* ms (uv_hrtime based), 0 = never */
  double num;
  int type; /* CN_SHARED_* */
  char bytes[]; /* the key, then a string value */
};

struct cn_shared_s {
  cn_shared_t *next; /* the registry */
  uv_mutex_t lock;
  int refs; /* under the registry lock */
  entry_t **buckets;
  size_t nbuckets, count;
  entry_t *mru, *lru;
  size_t used, capacity;
  char name[];
};

static struct {
  uv_mutex_t lock;
  cn_shared_t *dicts;
} reg;

static uv_once_t reg_once = UV_ONCE_INIT;

#define MIN_BYTES 4096


static void reg_init(void) { uv_mutex_init(&reg.lock); }


static uint64_t now_ms(void) { return uv_hrtime() / 1000000; }


/* -- Opening and closing ------------------------------------------------ */


/* cn_shared_open returns the dictionary called name, making it with room
** for bytes (at least MIN_BYTES) if it does not exist yet; a dictionary
** keeps the size it was made with. Each open is balanced by a
** cn_shared_release. NULL when memory runs out. */
cn_shared_t *cn_shared_open(const char *name, size_t bytes) {
  cn_shared_t *d;
  size_t n = strlen(name);
  uv_once(&reg_once, reg_init);
  uv_mutex_lock(&reg.lock);
  for (d = reg.dicts; d != NULL; d = d->next)
    if (strcmp(d->name, name) == 0)
      break;
  if (d == NULL && (d = calloc(1, sizeof *d + n + 1)) != NULL) {
    memcpy(d->name, name, n + 1);
    uv_mutex_init(&d->lock);
    d->capacity = bytes < MIN_BYTES ? MIN_BYTES : bytes;
    d->next = reg.dicts;
    reg.dicts = d;
  }
  if (d != NULL)
    d->refs++;
  uv_mutex_unlock(&reg.lock);
  return d;
}


static void drop_all(cn_shared_t *d) {
  entry_t *e, *next;
  for (e = d->mru; e != NULL; e = next) {
    next = e->next;
    free(e);
  }
  d->mru = d->lru = NULL;
  d->count = d->used = 0;
  if (d->buckets != NULL)
    memset(d->buckets, 0, d->nbuckets * sizeof *d->buckets);
}


/* cn_shared_release drops a reference from cn_shared_open; the last one
** frees the dictionary. */
void cn_shared_release(cn_shared_t *d) {
  cn_shared_t **p;
  uv_mutex_lock(&reg.lock);
  if (--d->refs > 0) {
    uv_mutex_unlock(&reg.lock);
    return;
  }
  for (p = &reg.dicts; *p != d; p = &(*p)->next) {
  }
  *p = d->next;
  uv_mutex_unlock(&reg.lock);
  drop_all(d);
  free(d->buckets);
  uv_mutex_destroy(&d->lock);
  free(d);
}


const char *cn_shared_name(const cn_shared_t *d) { return d->name; }


/* -- Entries (under the dictionary's lock) ------------------------------ */


static size_t entry_cost(size_t klen, size_t vlen) {
  return sizeof(entry_t) + klen + vlen;
}


static entry_t **slot(cn_shared_t *d, const char *k, size_t n, uint32_t h) {
  entry_t **p = &d->buckets[h & (d->nbuckets - 1)];
  for (; *p != NULL; p = &(*p)->hnext)
    if ((*p)->hash == h && (*p)->klen == n && memcmp((*p)->bytes, k, n) == 0)
      break;
  return p;
}


static void lru_unlink(cn_shared_t *d, entry_t *e) {
  if (e->prev != NULL)
    e->prev->next = e->next;
  else
    d->mru = e->next;
  if (e->next != NULL)
    e->next->prev = e->prev;
  else
    d->lru = e->prev;
}


static void lru_push(cn_shared_t *d, entry_t *e) {
  e->prev = NULL;
  e->next = d->mru;
  if (d->mru != NULL)
    d->mru->prev = e;
  else
    d->lru = e;
  d->mru = e;
}


static void entry_remove(cn_shared_t *d, entry_t *e) {
  entry_t **p = slot(d, e->bytes, e->klen, e->hash);
  *p = e->hnext;
  lru_unlink(d, e);
  d->count--;
  d->used -= entry_cost(e->klen, e->vlen);
  free(e);
}


static int expired(const entry_t *e, uint64_t now) {
  return e->expires != 0 && e->expires <= now;
}


/* find returns the live entry for k, removing it if it expired. */
static entry_t *find(cn_shared_t *d, const char *k, size_t n, uint64_t now) {
  entry_t *e;
  if (d->nbuckets == 0)
    return NULL;
  e = *slot(d, k, n, cn_hash_bytes(k, n));
  if (e != NULL && expired(e, now)) {
    entry_remove(d, e);
    return NULL;
  }
  return e;
}


static int grow(cn_shared_t *d) {
  size_t n = d->nbuckets ? d->nbuckets * 2 : 64, i;
  entry_t **b = calloc(n, sizeof *b);
  if (b == NULL)
    return CN_ENOMEM;
  for (i = 0; i < d->nbuckets; i++) {
    entry_t *e, *next;
    for (e = d->buckets[i]; e != NULL; e = next) {
      next = e->hnext;
      e->hnext = b[e->hash & (n - 1)];
      b[e->hash & (n - 1)] = e;
    }
  }
  free(d->buckets);
  d->buckets = b;
  d->nbuckets = n;
  return 0;
}


/* make_room frees bytes until need more fit: expired entries first,
** then, when evict is set, the least recently used. Returns 0 or
** CN_ENOSPACE. */
static int make_room(cn_shared_t *d, size_t need, int evict, uint64_t now) {
  entry_t *e, *prev;
  for (e = d->lru; e != NULL && d->used + need > d->capacity; e = prev) {
    prev = e->prev;
    if (expired(e, now))
      entry_remove(d, e);
  }
  while (evict && d->lru != NULL && d->used + need > d->capacity)
    entry_remove(d, d->lru);
  return d->used + need <= d->capacity ? 0 : CN_ENOSPACE;
}


/* store puts v under k in place of old (NULL: none). Returns 0, or
** CN_ENOSPACE when v cannot fit (old is then kept), or CN_ENOMEM. */
static int store(cn_shared_t *d, entry_t *old, const char *k, size_t n,
                 const cn_shared_val_t *v, double ttl, int evict,
                 uint64_t now) {
  size_t vlen = v->type == CN_SHARED_STRING ? v->len : 0;
  size_t cost = entry_cost(n, vlen);
  uint32_t h = cn_hash_bytes(k, n);
  entry_t *e;
  int rc;
  if (cost > d->capacity)
    return CN_ENOSPACE;
  if (old != NULL)
    entry_remove(d, old);
  if ((rc = make_room(d, cost, evict, now)) < 0)
    return rc;
  if (d->count >= d->nbuckets && grow(d) < 0)
    return CN_ENOMEM;
  if ((e = malloc(cost)) == NULL)
    return CN_ENOMEM;
  e->hash = h;
  e->klen = (uint32_t)n;
  e->vlen = vlen;
  e->type = v->type;
  e->num = v->num;
  e->expires = ttl > 0 ? now + (uint64_t)(ttl * 1000 + 0.5) : 0;
  if (e->expires == now && ttl > 0)
    e->expires = now + 1;
  memcpy(e->bytes, k, n);
  if (vlen > 0)
    memcpy(e->bytes + n, v->str, vlen);
  e->hnext = d->buckets[h & (d->nbuckets - 1)];
  d->buckets[h & (d->nbuckets - 1)] = e;
  lru_push(d, e);
  d->count++;
  d->used += cost;
  return 0;
}


/* -- Operations ------------------------------------------------------------ */


/* copy_value fills out with e's value; a string is copied to *buf, the
** caller's *cap bytes, or else to a new malloc'd *buf that the caller
** frees. */
static int copy_value(const entry_t *e, cn_shared_val_t *out, char **buf,
                      size_t *cap) {
  out->type = e->type;
  out->num = e->num;
  out->len = e->vlen;
  out->str = NULL;
  if (e->type != CN_SHARED_STRING)
    return 0;
  if (e->vlen > *cap) {
    char *b = malloc(e->vlen);
    if (b == NULL)
      return CN_ENOMEM;
    *buf = b;
    *cap = e->vlen;
  }
  if (e->vlen > 0)
    memcpy(*buf, e->bytes + e->klen, e->vlen);
  out->str = *buf;
  return 0;
}


/* cn_shared_get fills out with k's value (type CN_SHARED_NIL when there is
** none). A string goes to *buf when it fits its *cap bytes, else to a new
** malloc'd *buf the caller frees. Returns 0 or CN_ENOMEM. */
int cn_shared_get(cn_shared_t *d, const char *k, size_t n,
                  cn_shared_val_t *out, char **buf, size_t *cap) {
  entry_t *e;
  int rc = 0;
  uv_mutex_lock(&d->lock);
  e = find(d, k, n, now_ms());
  out->type = CN_SHARED_NIL;
  if (e != NULL) {
    lru_unlink(d, e);
    lru_push(d, e);
    rc = copy_value(e, out, buf, cap);
  }
  uv_mutex_unlock(&d->lock);
  return rc;
}


/* cn_shared_set stores v under k for ttl seconds (0: for good) as mode
** says: CN_SHARED_SET always (evicting the least recently used entries to
** make room), CN_SHARED_ADD only when k has no value (making room only
** from expired entries), CN_SHARED_REPLACE only when it has. A nil value
** deletes. Returns 0, CN_EEXIST, CN_ENOTFOUND, CN_ENOSPACE or
** CN_ENOMEM. */
int cn_shared_set(cn_shared_t *d, const char *k, size_t n,
                  const cn_shared_val_t *v, double ttl, int mode) {
  uint64_t now = now_ms();
  entry_t *e;
  int rc = 0;
  uv_mutex_lock(&d->lock);
  e = find(d, k, n, now);
  if (mode == CN_SHARED_ADD && e != NULL)
    rc = CN_EEXIST;
  else if (mode == CN_SHARED_REPLACE && e == NULL)
    rc = CN_ENOTFOUND;
  else if (v->type == CN_SHARED_NIL && e != NULL)
    entry_remove(d, e);
  else if (v->type != CN_SHARED_NIL)
    rc = store(d, e, k, n, v, ttl, mode != CN_SHARED_ADD, now);
  uv_mutex_unlock(&d->lock);
  return rc;
}


/* cn_shared_incr adds by to k's number and sets *result to the sum. A
** missing k starts at *init when init is not NULL, else CN_ENOTFOUND; a
** value that is not a number gives CN_ENOTNUM. Returns 0 or an error. */
int cn_shared_incr(cn_shared_t *d, const char *k, size_t n, double by,
                   const double *init, double *result) {
  uint64_t now = now_ms();
  entry_t *e;
  int rc = 0;
  uv_mutex_lock(&d->lock);
  e = find(d, k, n, now);
  if (e == NULL && init == NULL) {
    rc = CN_ENOTFOUND;
  } else if (e == NULL) {
    cn_shared_val_t v = {CN_SHARED_NUMBER, *init + by, NULL, 0};
    *result = v.num;
    rc = store(d, NULL, k, n, &v, 0, 1, now);
  } else if (e->type != CN_SHARED_NUMBER) {
    rc = CN_ENOTNUM;
  } else {
    e->num += by;
    *result = e->num;
    lru_unlink(d, e);
    lru_push(d, e);
  }
  uv_mutex_unlock(&d->lock);
  return rc;
}


/* cn_shared_keys returns up to max (0: every) live keys, most recently
** used first, as one malloc'd block of (size_t length, bytes) records
** that the caller frees; *count says how many. NULL with *count 0 when
** there are none or memory runs out. */
char *cn_shared_keys(cn_shared_t *d, size_t max, size_t *count) {
  uint64_t now = now_ms();
  size_t total = 0, k = 0;
  entry_t *e;
  char *block = NULL, *p;
  uv_mutex_lock(&d->lock);
  for (e = d->mru; e != NULL && (max == 0 || k < max); e = e->next)
    if (!expired(e, now)) {
      total += sizeof(size_t) + e->klen;
      k++;
    }
  if (k > 0 && (block = malloc(total)) != NULL) {
    p = block;
    k = 0;
    for (e = d->mru; e != NULL && (max == 0 || k < max); e = e->next) {
      size_t len = e->klen;
      if (expired(e, now))
        continue;
      memcpy(p, &len, sizeof len);
      memcpy(p + sizeof len, e->bytes, len);
      p += sizeof len + len;
      k++;
    }
  }
  uv_mutex_unlock(&d->lock);
  *count = block != NULL ? k : 0;
  return block;
}


/* cn_shared_flush removes every entry. */
void cn_shared_flush(cn_shared_t *d) {
  uv_mutex_lock(&d->lock);
  drop_all(d);
  uv_mutex_unlock(&d->lock);
}


/* cn_shared_usage sets the bytes in use and the capacity. */
void cn_shared_usage(cn_shared_t *d, size_t *used, size_t *capacity) {
  uv_mutex_lock(&d->lock);
  *used = d->used;
  *capacity = d->capacity;
  uv_mutex_unlock(&d->lock);
}
