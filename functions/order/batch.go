package order

import (
	"sync"
	"time"
)

// batcher collects values and hands them to flush in batches: when max have
// gathered or every interval, whichever comes first, and once more on close.
// flush runs on the batcher's own goroutine, one batch at a time.
type batcher[T any] struct {
	in        chan T
	closed    chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

func newBatcher[T any](every time.Duration, max int, flush func([]T)) *batcher[T] {
	b := &batcher[T]{in: make(chan T, 4096), closed: make(chan struct{}), done: make(chan struct{})}
	go b.run(every, max, flush)
	return b
}

// add queues v; after close it is dropped.
func (b *batcher[T]) add(v T) {
	select {
	case b.in <- v:
	case <-b.closed:
	}
}

// close flushes what is queued and stops the batcher.
func (b *batcher[T]) close() {
	b.closeOnce.Do(func() { close(b.closed) })
	<-b.done
}

func (b *batcher[T]) run(every time.Duration, max int, flush func([]T)) {
	defer close(b.done)
	tick := time.NewTicker(every)
	defer tick.Stop()
	var batch []T
	send := func() {
		if len(batch) > 0 {
			flush(batch)
			batch = batch[:0]
		}
	}
	for {
		select {
		case v := <-b.in:
			batch = append(batch, v)
			if len(batch) >= max {
				send()
			}
		case <-tick.C:
			send()
		case <-b.closed:
			for {
				select {
				case v := <-b.in:
					batch = append(batch, v)
				default:
					send()
					return
				}
			}
		}
	}
}
