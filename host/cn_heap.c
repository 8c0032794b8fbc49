/* cn_heap.c: gives the C heap's freed memory back to the system. glibc
** keeps what free() returns inside its arenas and gives back only the
** top of the main one: after a burst (connections that closed with full
** buffers, a run of TLS handshakes whose record buffers were released) a
** process stays at its peak RSS for ever. The control thread looks at
** the arenas' free bytes every CHECK_MS and, when they grew by TRIM_MIN
** since the lowest it saw after the last trim, calls malloc_trim(0),
** which releases every whole free page. A trim that released little
** doubles the time to the next look (up to BACKOFF_MAX times CHECK_MS):
** a heap that churns without settling is not walked in vain. Other
** systems and allocators (a sanitizer's) leave this to themselves. */
#include <stdio.h>
#include <unistd.h>

#include "cn.h"

/* A sanitizer's allocator is not glibc's: nothing to trim there. */
#if defined(__SANITIZE_ADDRESS__)
#define SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANITIZED 1
#endif
#endif

#if defined(__GLIBC__) && !defined(SANITIZED) && \
  (__GLIBC__ > 2 || __GLIBC_MINOR__ >= 33)
#include <malloc.h>
#define HAVE_TRIM 1
#else
#define HAVE_TRIM 0
#endif

#define CHECK_MS 2000          /* how often the free bytes are looked at */
#define TRIM_MIN (1024 * 1024) /* freed bytes worth a trim */
#define BACKOFF_MAX 8          /* CHECK_MS times this at most between looks */

/* The process's one scavenger, on the control thread's loop; workers
** read its counters. */
static struct {
  uv_timer_t timer;
  size_t low;       /* the fewest free bytes seen since the last trim */
  unsigned backoff; /* CHECK_MS times this to the next look */
  uint64_t trims, released; /* atomic: read by any thread */
} heap;


/* rss: the process's resident bytes, or 0. */
static size_t rss(void) {
  unsigned long size, resident;
  FILE *f = fopen("/proc/self/statm", "r");
  int n;
  if (f == NULL)
    return 0;
  n = fscanf(f, "%lu %lu", &size, &resident);
  fclose(f);
  return n == 2 ? (size_t)resident * (size_t)sysconf(_SC_PAGESIZE) : 0;
}


#if HAVE_TRIM
static void check_cb(uv_timer_t *t) {
  size_t free_now = mallinfo2().fordblks, before, after;
  uint64_t t0;
  (void)t;
  if (free_now < heap.low)
    heap.low = free_now;
  if (free_now - heap.low >= TRIM_MIN) {
    before = rss();
    t0 = uv_hrtime();
    malloc_trim(0);
    after = rss();
    __atomic_add_fetch(&heap.trims, 1, __ATOMIC_RELAXED);
    if (before > after)
      __atomic_add_fetch(&heap.released, before - after, __ATOMIC_RELAXED);
    heap.low = free_now;
    cn_log(CN_LOG_DEBUG, "heap: %.1f MiB free, trimmed in %.1f ms: RSS %.1f "
           "-> %.1f MiB", free_now / 1048576.0, (uv_hrtime() - t0) / 1e6,
           before / 1048576.0, after / 1048576.0);
    heap.backoff = before < after + TRIM_MIN && heap.backoff < BACKOFF_MAX
                     ? heap.backoff * 2 : 1;
  }
  uv_timer_start(&heap.timer, check_cb, CHECK_MS * heap.backoff, 0);
}
#endif


/* cn_heap_start begins the looks on loop (the control thread's); the
** timer never keeps the loop alive. cn_heap_close closes it. */
void cn_heap_start(uv_loop_t *loop) {
  heap.low = 0;
  heap.backoff = 1;
  uv_timer_init(loop, &heap.timer);
  uv_unref((uv_handle_t *)&heap.timer);
#if HAVE_TRIM
  uv_timer_start(&heap.timer, check_cb, CHECK_MS, 0);
#endif
}


void cn_heap_close(void) {
  uv_close((uv_handle_t *)&heap.timer, NULL);
}


/* cn_heap_stats fills st; in_use walks the arenas (mallinfo2: their
** locks, for a fraction of a millisecond on a large heap). */
void cn_heap_stats(cn_heap_stats_t *st) {
  st->trims = __atomic_load_n(&heap.trims, __ATOMIC_RELAXED);
  st->released = __atomic_load_n(&heap.released, __ATOMIC_RELAXED);
  st->rss = rss();
#if HAVE_TRIM
  {
    struct mallinfo2 mi = mallinfo2();
    st->in_use = mi.uordblks + mi.hblkhd;
  }
#else
  st->in_use = 0;
#endif
}
