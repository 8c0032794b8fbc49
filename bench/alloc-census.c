/*
** bench/alloc-census.c - a census of a server's live heap blocks, for
** bench/tls-bench.sh's "census" load. Built as a shared object and put in
** front of libc with LD_PRELOAD, it records every block that malloc,
** calloc, realloc, posix_memalign, aligned_alloc and memalign hand out
** (size and call site: four return addresses above the allocator) until
** it is freed. SIGPWR takes a snapshot of the live blocks by site and
** size; the second SIGPWR writes how the second differs from the first
** to the file CENSUS_OUT names, one line per site and size whose count
** changed:
**   COUNT SIZE CHUNK FRAME1 < FRAME2 < FRAME3 < FRAME4
** where CHUNK is the block's size in glibc's heap (its header and
** rounding) and each frame a symbol (dladdr) or object+offset.
** The first snapshot creates the file CENSUS_OUT.first. Snapshots after
** the first two are ignored.
**   cc -O2 -shared -fPIC -o alloc-census.so bench/alloc-census.c -ldl
**   LD_PRELOAD=./alloc-census.so CENSUS_OUT=census.txt server ...
**   kill -PWR $pid; (load); kill -PWR $pid
** A benchmarking aid: one lock around every call, a backtrace per
** allocation. Never for a server measured for speed.
*/
#define _GNU_SOURCE
#include <dlfcn.h>
#include <execinfo.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FRAMES 4
#define BLOCKS (1u << 22) /* live blocks tracked (open addressing) */
#define SITES (1u << 14)
#define KEYS (1u << 16)   /* (site, size) pairs counted per snapshot */

typedef struct { void *p; uint32_t size, site; } block_t;
typedef struct { void *pc[FRAMES]; } site_t;
typedef struct { uint32_t site, size; long n[2]; } key_t_;

static block_t blocks[BLOCKS];
static uint32_t nblocks; /* recorded: at most half the table */
static site_t sites[SITES];
static uint32_t site_slot[SITES]; /* hash of frames -> index + 1 */
static uint32_t nsites = 1;       /* 0: unknown */
static key_t_ keys[KEYS];
static int snaps;
static char out_path[4096]; /* CENSUS_OUT as the process started (nginx
                            ** clears its environment) */
static volatile int lock_;
static __thread int inside; /* this thread is in the census: no record */

static void *(*real_malloc)(size_t);
static void *(*real_calloc)(size_t, size_t);
static void *(*real_realloc)(void *, size_t);
static void (*real_free)(void *);
static int (*real_posix_memalign)(void **, size_t, size_t);
static void *(*real_aligned_alloc)(size_t, size_t);
static void *(*real_memalign)(size_t, size_t);

/* dlsym allocates before the real calloc is known: from here, never
** freed */
static char boot[1 << 16];
static size_t boot_used;

static int booted(const void *p) {
  return (const char *)p >= boot && (const char *)p < boot + sizeof boot;
}

static void *boot_alloc(size_t n) {
  void *p;
  n = (n + 15) & ~(size_t)15;
  if (boot_used + n > sizeof boot) return NULL;
  p = boot + boot_used;
  boot_used += n;
  return p;
}

static void lock(void) {
  while (__atomic_exchange_n(&lock_, 1, __ATOMIC_ACQUIRE)) {
  }
}

static void unlock(void) { __atomic_store_n(&lock_, 0, __ATOMIC_RELEASE); }

static uint32_t hash_ptr(const void *p) {
  uint64_t x = (uint64_t)(uintptr_t)p;
  x ^= x >> 29;
  x *= 0x9E3779B97F4A7C15ull;
  return (uint32_t)(x >> 32);
}

/* site_of(bt) -> the index of the site of frames bt (interned) */
static uint32_t site_of(void *const *bt) {
  uint32_t h = 0, i;
  for (i = 0; i < FRAMES; i++) h = h * 31 + hash_ptr(bt[i]);
  for (i = h & (SITES - 1);; i = (i + 1) & (SITES - 1)) {
    uint32_t s = site_slot[i];
    if (s == 0) break;
    if (memcmp(sites[s - 1].pc, bt, sizeof sites[0].pc) == 0) return s - 1;
  }
  if (nsites >= SITES / 2) return 0; /* full: unknown */
  memcpy(sites[nsites].pc, bt, sizeof sites[0].pc);
  site_slot[i] = nsites + 1;
  return nsites++;
}

/* trace(): the site of the allocation being made (its caller's frames,
** above this function and the allocator's wrapper) */
static __attribute__((noinline)) int trace(void **bt) {
  void *all[FRAMES + 2];
  if (backtrace(all, FRAMES + 2) < FRAMES + 2) return 0;
  memcpy(bt, all + 2, FRAMES * sizeof *bt);
  return 1;
}

/* insert(p, ...) records p's block; beyond half the table's room blocks
** are not recorded (a census of more than 2 million live blocks would
** undercount, never hang) */
static void insert(void *p, size_t size, void *const *bt, int traced) {
  uint32_t i;
  if (nblocks >= BLOCKS / 2) return;
  nblocks++;
  for (i = hash_ptr(p) & (BLOCKS - 1); blocks[i].p; i = (i + 1) & (BLOCKS - 1)) {
  }
  blocks[i].p = p;
  blocks[i].size = size > UINT32_MAX ? UINT32_MAX : (uint32_t)size;
  blocks[i].site = traced ? site_of(bt) : 0;
}

/* forget(p): removes p's block, moving later ones of its run back */
static void forget(void *p) {
  uint32_t i, j;
  for (i = hash_ptr(p) & (BLOCKS - 1); blocks[i].p != p; i = (i + 1) & (BLOCKS - 1))
    if (blocks[i].p == NULL) return; /* not recorded */
  blocks[i].p = NULL;
  nblocks--;
  for (j = (i + 1) & (BLOCKS - 1); blocks[j].p; j = (j + 1) & (BLOCKS - 1)) {
    uint32_t home = hash_ptr(blocks[j].p) & (BLOCKS - 1);
    /* j's block may fill the hole at i when its home is not in (i, j] */
    if ((j > i) ? (home <= i || home > j) : (home <= i && home > j)) {
      blocks[i] = blocks[j];
      blocks[j].p = NULL;
      i = j;
    }
  }
}

static void resolve(void) {
  inside++;
  real_malloc = (void *(*)(size_t))dlsym(RTLD_NEXT, "malloc");
  real_calloc = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "calloc");
  real_realloc = (void *(*)(void *, size_t))dlsym(RTLD_NEXT, "realloc");
  real_free = (void (*)(void *))dlsym(RTLD_NEXT, "free");
  real_posix_memalign =
    (int (*)(void **, size_t, size_t))dlsym(RTLD_NEXT, "posix_memalign");
  real_aligned_alloc =
    (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "aligned_alloc");
  real_memalign = (void *(*)(size_t, size_t))dlsym(RTLD_NEXT, "memalign");
  inside--;
}

/* count(k): adds the live blocks to snapshot k's counts by site and size
** (pairs beyond the table's room are left out) */
static void count(int k) {
  uint32_t i, j, probes;
  for (i = 0; i < BLOCKS; i++) {
    uint32_t h;
    if (blocks[i].p == NULL) continue;
    h = blocks[i].site * 2654435761u ^ blocks[i].size * 40503u;
    for (j = h & (KEYS - 1), probes = 0; probes < KEYS;
         j = (j + 1) & (KEYS - 1), probes++) {
      key_t_ *e = &keys[j];
      if (e->n[0] == 0 && e->n[1] == 0) {
        e->site = blocks[i].site;
        e->size = blocks[i].size;
      } else if (e->site != blocks[i].site || e->size != blocks[i].size) {
        continue;
      }
      e->n[k]++;
      break;
    }
  }
}

static void frame_name(void *pc, char *out, size_t n) {
  Dl_info di;
  if (pc == NULL || !dladdr(pc, &di)) {
    snprintf(out, n, "?");
  } else if (di.dli_sname) {
    snprintf(out, n, "%s", di.dli_sname);
  } else {
    const char *base = di.dli_fname ? strrchr(di.dli_fname, '/') : NULL;
    snprintf(out, n, "%s+%lx", base ? base + 1 : "?",
      (unsigned long)((char *)pc - (char *)di.dli_fbase));
  }
}

static void write_census(void) {
  const char *path = out_path;
  FILE *f;
  uint32_t j;
  int i;
  if (!*path || (f = fopen(path, "w")) == NULL) return;
  for (j = 0; j < KEYS; j++) {
    key_t_ *e = &keys[j];
    long d = e->n[1] - e->n[0];
    size_t chunk = ((size_t)e->size + 8 + 15) & ~(size_t)15;
    if (d == 0) continue;
    fprintf(f, "%ld %u %zu", d, e->size, chunk < 32 ? 32 : chunk);
    for (i = 0; i < FRAMES; i++) {
      char name[160];
      frame_name(e->site ? sites[e->site].pc[i] : NULL, name, sizeof name);
      fprintf(f, "%s%s", i ? " < " : " ", name);
    }
    fputc('\n', f);
  }
  fclose(f);
}

/* mark(): CENSUS_OUT.first says the first snapshot was taken */
static void mark(void) {
  char first[sizeof out_path + 8];
  FILE *f;
  if (!*out_path) return;
  snprintf(first, sizeof first, "%s.first", out_path);
  if ((f = fopen(first, "w")) != NULL) fclose(f);
}

/* The snapshot runs in the handler: when the thread it interrupts is in
** the census or another holds the lock it does nothing, and the caller
** sends the signal again (CENSUS_OUT.first, then CENSUS_OUT, tells it
** that a snapshot was taken). */
static void on_signal(int sig) {
  (void)sig;
  if (inside || snaps > 1 || __atomic_exchange_n(&lock_, 1, __ATOMIC_ACQUIRE))
    return;
  inside++;
  count(snaps);
  if (++snaps == 2) write_census();
  else mark();
  inside--;
  unlock();
}

__attribute__((constructor)) static void census_init(void) {
  const char *path = getenv("CENSUS_OUT");
  if (path) snprintf(out_path, sizeof out_path, "%s", path);
  signal(SIGPWR, on_signal);
}

/* Each wrapper traces its caller, then makes the real call and updates
** the table under the lock, so that no other thread can be handed a
** freed address before its block is forgotten. Inside the census (the
** snapshot's own stdio, backtrace's first call) blocks are not recorded. */
#define TRACED(call, p, n) \
  do { \
    void *bt_[FRAMES]; \
    int traced_ = trace(bt_); \
    lock(); \
    call; \
    if ((p) != NULL) insert((p), (n), bt_, traced_); \
    unlock(); \
  } while (0)

void *malloc(size_t n) {
  void *p;
  if (real_malloc == NULL) resolve();
  if (real_malloc == NULL) return boot_alloc(n);
  if (inside) return real_malloc(n);
  inside++;
  TRACED(p = real_malloc(n), p, n);
  inside--;
  return p;
}

void *calloc(size_t a, size_t b) {
  void *p;
  if (real_calloc == NULL) return boot_alloc(a * b); /* boot is zeroed */
  if (inside) return real_calloc(a, b);
  inside++;
  TRACED(p = real_calloc(a, b), p, a * b);
  inside--;
  return p;
}

void free(void *p) {
  if (p == NULL || booted(p)) return;
  if (real_free == NULL) resolve();
  if (inside) {
    real_free(p);
    return;
  }
  lock();
  forget(p);
  real_free(p);
  unlock();
}

void *realloc(void *p, size_t n) {
  void *q;
  if (real_realloc == NULL) resolve();
  if (booted(p)) {
    size_t room = (size_t)(boot + sizeof boot - (char *)p);
    q = malloc(n);
    if (q) memcpy(q, p, n < room ? n : room);
    return q;
  }
  if (inside) return real_realloc(p, n);
  inside++;
  TRACED(q = real_realloc(p, n); if (p && (q || n == 0)) forget(p), q, n);
  inside--;
  return q;
}

int posix_memalign(void **out, size_t align, size_t n) {
  int rc;
  void *p = NULL;
  if (real_posix_memalign == NULL) resolve();
  if (inside) return real_posix_memalign(out, align, n);
  inside++;
  TRACED(rc = real_posix_memalign(&p, align, n), p, n);
  inside--;
  if (rc == 0) *out = p;
  return rc;
}

/* aligned_alloc and memalign: the same arguments, the same record */
#define ALIGNED(name, real) \
  void *name(size_t align, size_t n) { \
    void *p; \
    if (real == NULL) resolve(); \
    if (inside) return real(align, n); \
    inside++; \
    TRACED(p = real(align, n), p, n); \
    inside--; \
    return p; \
  }
ALIGNED(aligned_alloc, real_aligned_alloc)
ALIGNED(memalign, real_memalign)
