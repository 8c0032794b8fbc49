// chan_bench: channel send/receive pairs per second between two
// goroutines, unbuffered and buffered, for comparison with
// bench/chan_bench.lua. Run with GOMAXPROCS=1 (bench/tasks-bench.sh does).
//
//	go run bench/chan_bench.go [-n PAIRS] [-cap N] [-r RUNS]
//
// Prints one line per case: "go unbuffered pairs=N secs=S rate=R".
package main

import (
	"flag"
	"fmt"
	"runtime"
	"time"
)

func run(n, capacity int) float64 {
	ch := make(chan int, capacity)
	done := make(chan int)
	go func() {
		sum := 0
		for v := range ch {
			sum += v
		}
		done <- sum
	}()
	start := time.Now()
	for i := 0; i < n; i++ {
		ch <- i
	}
	close(ch)
	sum := <-done
	secs := time.Since(start).Seconds()
	if sum != n*(n-1)/2 {
		panic("lost values")
	}
	return secs
}

func main() {
	n := flag.Int("n", 2000000, "send/receive pairs per case")
	capacity := flag.Int("cap", 128, "capacity of the buffered channel")
	reps := flag.Int("r", 3, "runs per case; the fastest is reported")
	flag.Parse()
	for _, c := range []struct {
		name string
		cap  int
	}{{"unbuffered", 0}, {fmt.Sprintf("buffered(%d)", *capacity), *capacity}} {
		run(*n/10, c.cap) // warm-up
		secs := run(*n, c.cap)
		for r := 1; r < *reps; r++ {
			if s := run(*n, c.cap); s < secs {
				secs = s
			}
		}
		fmt.Printf("go %s pairs=%d secs=%.4f rate=%.0f gomaxprocs=%d\n",
			c.name, *n, secs, float64(*n)/secs, runtime.GOMAXPROCS(0))
	}
}
