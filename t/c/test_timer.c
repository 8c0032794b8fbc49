/* test_timer.c: the timing wheel (host/cn_timer.c) against a model. Prints
** TAP; run by t/526-timer-model.t. The loop's clock is driven by hand:
** random starts, moves and stops of timers, deadlines taken from a clock
** that runs ahead of the loop's cached time (as lcn_deadline_in's does),
** and loop turns as libuv runs them (timers, then prepare, which arms).
** After every turn: no timer fired before its deadline, none fired twice
** or while stopped, every timer due is fired once the turns catch up, and
** the uv timer is armed no later than the earliest pending deadline (a
** later arming is a timer that sleeps past its time). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cn_timer.c"
#include "tap.h"

#define NT 3000

typedef struct {
  cn_timer_t node; /* first */
  uint64_t when;
  int pending;
} mt_t;

static mt_t tm[NT];
static uint64_t loop_time; /* what the model says the loop's time is */
static long bad_early, bad_twice;
static void fired(cn_timer_t *node) {
  mt_t *m = (mt_t *)node;
  if (!m->pending)
    bad_twice++;
  if (m->when > loop_time)
    bad_early++;
  m->pending = 0;
}


static uint64_t rnd(uint64_t n) {
  uint64_t r = ((uint64_t)rand() << 31) ^ (uint64_t)rand();
  return n ? r % n : 0;
}


/* a delay as tasks ask for them: mostly short, some long, a few huge */
static uint64_t delay(void) {
  switch (rnd(8)) {
  case 0: return 0;
  case 1: return rnd(64);
  case 2: return rnd(1000);
  case 3: return 900 + rnd(200); /* around sleep(1) */
  case 4: return rnd(5000);
  case 5: return rnd(300000);
  case 6: return rnd(20000000);
  default: return rnd(10);
  }
}


/* turn runs loop turns at the loop's time t until nothing more is due:
** libuv's timers phase (the wheel's uv timer when armed and due), then its
** prepare phase. Returns the number of turns. */
static int turns(cn_timers_t *ts, uint64_t t) {
  int n = 0;
  loop_time = t;
  ts->h.loop->time = t;
  for (;;) {
    n++;
    if (ts->armed && ts->armed_when <= t)
      timer_cb(&ts->h);
    arm(ts);
    if (!ts->armed || ts->armed_when > t)
      return n;
  }
}


int main(int argc, char **argv) {
  uv_loop_t loop;
  cn_timers_t ts;
  uint64_t real, start;
  long step, steps = argc > 1 ? atol(argv[1]) : 200000, late = 0, lost = 0;
  long counted = 0, overslept = 0, missed = 0;
  int i;
  srand(argc > 2 ? (unsigned)atoi(argv[2]) : 1);
  uv_loop_init(&loop);
  cn_timers_init(&ts, &loop);
  start = real = loop.time = 1000000 + rnd(1u << 30); /* any phase */
  for (i = 0; i < NT; i++)
    tm[i].node.cb = fired;
  for (step = 0; step < steps; step++) {
    int k = (int)rnd(NT);
    switch (rnd(6)) {
    case 0:
    case 1: /* start or move a timer, from the precise clock */
      tm[k].when = real + delay();
      tm[k].pending = 1;
      cn_timer_start(&ts, &tm[k].node, tm[k].when);
      break;
    case 2: /* stop one */
      if (cn_timer_stop(&ts, &tm[k].node) != tm[k].pending)
        lost++;
      tm[k].pending = 0;
      break;
    case 3: /* the precise clock runs on; the loop's cached time lags */
      real += rnd(4) == 0 ? rnd(70000) : rnd(100);
      break;
    case 4: /* a blocking call updates the loop's time */
      loop.time = real;
      break;
    default: /* a loop turn (or several, on a burst) */
      loop.time = real;
      turns(&ts, real);
      for (i = 0; i < NT; i++)
        if (tm[i].pending && tm[i].when <= real)
          missed++;
      break;
    }
    /* after a turn the wheel must be armed for its earliest timer */
    {
      uint64_t first = UINT64_MAX;
      long n = 0;
      int j;
      for (j = 0; j < NT; j++)
        if (tm[j].pending) {
          n++;
          if (tm[j].when < first)
            first = tm[j].when;
        }
      if ((long)ts.n != n)
        counted++;
      if (n > 0) {
        arm(&ts);
        if (!ts.armed || ts.armed_when > (first > loop.time ? first
                                                            : loop.time))
          overslept++;
      }
    }
  }
  /* let time run out: everything pending fires, in turns */
  for (i = 0; i < 40; i++) {
    real += 1000000;
    turns(&ts, real);
  }
  for (i = 0; i < NT; i++)
    if (tm[i].pending && tm[i].when <= real)
      late++;
  diag("%ld steps over %.0f s of loop time", steps,
       (double)(real - start) / 1e3);
  ok(bad_early == 0, "no timer fired before its deadline (%ld did)",
     bad_early);
  ok(bad_twice == 0, "no timer fired twice or while stopped (%ld did)",
     bad_twice);
  ok(lost == 0, "stop says whether a timer was pending (%ld wrong)", lost);
  ok(counted == 0, "the wheel's count matches the pending timers (%ld "
     "steps off)", counted);
  ok(overslept == 0, "the uv timer is armed no later than the earliest "
     "deadline (%ld steps later)", overslept);
  ok(missed == 0, "after the turns at a time, nothing due is left (%ld "
     "times something was)", missed);
  ok(late == 0, "every timer due fired (%ld left)", late);
  printf("1..%d\n", tap_count);
  cn_timers_close(&ts);
  uv_run(&loop, UV_RUN_DEFAULT);
  uv_loop_close(&loop);
  return tap_failed != 0;
}
