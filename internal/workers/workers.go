package workers

import (
	"sync"
	"time"
)

// Pool runs functions on reused goroutines. It never bounds concurrency: Go
// hands a function to an idle worker if there is one, else starts a new
// one; a worker idle for longer than the pool's idle time ends. The zero
// Pool is not usable; New makes one.
type Pool struct {
	idle   time.Duration
	work   chan func()   // unbuffered: a send succeeds only into an idle worker
	closed chan struct{} // closed by Close: no worker waits any more
	once   sync.Once
}

// DefaultIdle is how long a worker waits for its next function.
const DefaultIdle = 10 * time.Second

// New returns a Pool whose workers wait up to idle (DefaultIdle when 0)
// for their next function.
func New(idle time.Duration) *Pool {
	if idle <= 0 {
		idle = DefaultIdle
	}
	return &Pool{idle: idle, work: make(chan func()), closed: make(chan struct{})}
}

// Go runs f on a worker without waiting for it.
func (p *Pool) Go(f func()) {
	select {
	case p.work <- f:
	default:
		go p.worker(f)
	}
}

// Close ends the idle workers, and every worker once its function returns.
// A closed Pool still runs functions, each on a goroutine of its own.
func (p *Pool) Close() { p.once.Do(func() { close(p.closed) }) }

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
		case <-p.closed:
			return
		}
	}
}
