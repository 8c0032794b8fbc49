// chan_bench: channel send/receive pairs per second between two
// goroutines, unbuffered and buffered, for comparison with
// bench/chan_bench.lua. Run with GOMAXPROCS=1 (bench/tasks-bench.sh does).
//
//	go run bench/chan_bench.go [-n PAIRS] [-cap N] [-r RUNS]
//
// Prints one line per case: "go unbuffered pairs=N secs=S rate=R
// cpu_rate=C": rate by the wall clock, cpu_rate by the process's CPU time
// (both the best of the runs).
package main

import (
	"flag"
	"fmt"
	"runtime"
	"syscall"
	"time"
)

// cpuSecs returns the CPU time (user+system) this process has used: on a
// shared machine it is steadier than the wall clock.
func cpuSecs() float64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return float64(ru.Utime.Sec+ru.Stime.Sec) +
		float64(ru.Utime.Usec+ru.Stime.Usec)/1e6
}

// run returns the wall and CPU seconds of n pairs.
func run(n, capacity int) (float64, float64) {
	ch := make(chan int, capacity)
	done := make(chan int)
	go func() {
		sum := 0
		for v := range ch {
			sum += v
		}
		done <- sum
	}()
	start, cpu0 := time.Now(), cpuSecs()
	for i := 0; i < n; i++ {
		ch <- i
	}
	close(ch)
	sum := <-done
	secs, cpu := time.Since(start).Seconds(), cpuSecs()-cpu0
	if sum != n*(n-1)/2 {
		panic("lost values")
	}
	return secs, cpu
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
		secs, cpu := run(*n, c.cap)
		for r := 1; r < *reps; r++ {
			s, u := run(*n, c.cap)
			if s < secs {
				secs = s
			}
			if u < cpu {
				cpu = u
			}
		}
		fmt.Printf("go %s pairs=%d secs=%.4f rate=%.0f cpu_rate=%.0f "+
			"gomaxprocs=%d\n", c.name, *n, secs, float64(*n)/secs,
			float64(*n)/cpu, runtime.GOMAXPROCS(0))
	}
}
