package workers

import (
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/require"
)

func TestPoolRunsEveryFunctionConcurrently(t *testing.T) {
	p := New(time.Second)
	const n = 50
	// Every function waits until all n run at once: a pool that bounded
	// concurrency or ran them one by one would never release them.
	var started sync.WaitGroup
	started.Add(n)
	release := make(chan struct{})
	var done sync.WaitGroup
	for range n {
		done.Add(1)
		p.Go(func() {
			defer done.Done()
			started.Done()
			<-release
		})
	}
	started.Wait()
	close(release)
	done.Wait()
}

func TestPoolReusesIdleWorkers(t *testing.T) {
	p := New(time.Minute)
	var ids sync.Map
	var calls atomic.Int32
	for range 20 {
		ch := make(chan struct{})
		p.Go(func() {
			ids.Store(goroutineID(), true)
			calls.Add(1)
			close(ch)
		})
		<-ch
		// Go hands work only to a worker blocked in receive; give the one
		// that just finished the moment to get there. (The probe's no-op
		// makes it busy again for a moment, so now and then the next Go
		// finds no idle worker and starts one: hence a bound below, not 1.)
		require.Eventually(t, func() bool { return idleWorker(p) }, time.Second, time.Millisecond)
	}
	n := 0
	ids.Range(func(any, any) bool { n++; return true })
	require.EqualValues(t, 20, calls.Load())
	require.Less(t, n, 5, "20 functions one after another ran on %d goroutines: idle workers were not reused", n)
}

func TestPoolWorkersEndWhenIdle(t *testing.T) {
	before := runtime.NumGoroutine()
	p := New(20 * time.Millisecond)
	var done sync.WaitGroup
	for range 10 {
		done.Add(1)
		p.Go(func() { defer done.Done(); time.Sleep(5 * time.Millisecond) })
	}
	done.Wait()
	require.Eventually(t, func() bool { return runtime.NumGoroutine() <= before }, 5*time.Second, 10*time.Millisecond)
}

// idleWorker reports whether a worker of p waits for work, by handing it a
// no-op.
func idleWorker(p *Pool) bool {
	ch := make(chan struct{})
	select {
	case p.work <- func() { close(ch) }:
		<-ch
		return true
	default:
		return false
	}
}

// goroutineID parses the running goroutine's id from its stack header
// ("goroutine 42 [running]:").
func goroutineID() string {
	var buf [64]byte
	s := string(buf[:runtime.Stack(buf[:], false)])
	s = s[len("goroutine "):]
	for i, c := range s {
		if c == ' ' {
			return s[:i]
		}
	}
	return s
}

func TestCloseEndsIdleWorkersAndLaterFunctionsStillRun(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := New(time.Hour)
		ran := make(chan struct{})
		p.Go(func() { close(ran) })
		<-ran
		synctest.Wait()
		p.Close()
		synctest.Wait() // the idle worker ended: the bubble would not end otherwise
		again := make(chan struct{})
		p.Go(func() { close(again) })
		<-again
	})
}
