package workers

import (
	"sync"
	"time"
)

// Pool runs functions on reused goroutines. It never bounds concurrency: Go
// hands a function to an idle worker if there is one, else starts a new
// one; a worker idle for longer than the pool's idle time ends, and every
// idle worker ends once the pool is closed. The zero Pool is not usable;
// New makes one.
type Pool struct {
	idle time.Duration
	work chan func() // unbuffered: a send succeeds only into an idle worker
	quit chan struct{}
	once sync.Once
}

// DefaultIdle is how long a worker waits for its next function.
const DefaultIdle = 10 * time.Second

// New returns a Pool whose workers wait up to idle (DefaultIdle when 0)
// for their next function.
func New(idle time.Duration) *Pool {
	if idle <= 0 {
		idle = DefaultIdle
	}
	return &Pool{idle: idle, work: make(chan func()), quit: make(chan struct{})}
}

// Go runs f on a worker without waiting for it. After Close, f runs on a
// goroutine of its own that ends with it.
func (p *Pool) Go(f func()) {
	select {
	case <-p.quit:
		go f()
		return
	default:
	}
	select {
	case p.work <- f:
	default:
		go p.worker(f)
	}
}

// Close ends the idle workers, and the busy ones when they finish.
func (p *Pool) Close() { p.once.Do(func() { close(p.quit) }) }

func (p *Pool) worker(f func()) {
	t := time.NewTimer(p.idle)
	defer t.Stop()
	for {
		f()
		f = nil // let f's captures go while idle
		t.Reset(p.idle)
		select {
		case f = <-p.work:
		case <-t.C:
			return
		case <-p.quit:
			return
		}
	}
}
