-- t/526-timer-model.t: the timing wheel (host/cn_timer.c) against a model
-- (t/c/test_timer.c): 200,000 random starts, moves, stops, clock steps and
-- loop turns (seed 1; test_timer STEPS SEED runs others); no timer early, none lost, none twice, and the
-- loop's timer armed no later than the earliest deadline.
require("lib.ctest").run("timer", 200000, 1)
