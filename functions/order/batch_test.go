package order

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

// recorder collects the batches a batcher flushes.
type recorder struct {
	mu      sync.Mutex
	batches [][]int
}

func (r *recorder) flush(vs []int) {
	r.mu.Lock()
	r.batches = append(r.batches, append([]int(nil), vs...))
	r.mu.Unlock()
}

func (r *recorder) got() [][]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]int(nil), r.batches...)
}

func TestBatcherFlushesBySizeAndOnClose(t *testing.T) {
	var r recorder
	b := newBatcher(time.Hour, 3, r.flush)
	for i := range 4 {
		b.add(i)
	}
	assert.Eventually(t, func() bool { return len(r.got()) == 1 }, time.Second, time.Millisecond, "a full batch goes at once")
	b.close()
	b.add(9) // after close: dropped, does not block
	assert.Equal(t, [][]int{{0, 1, 2}, {3}}, r.got(), "close flushes what is queued")
}

func TestBatcherFlushesOnTheTick(t *testing.T) {
	var r recorder
	b := newBatcher(10*time.Millisecond, 100, r.flush)
	defer b.close()
	b.add(1)
	assert.Eventually(t, func() bool { return len(r.got()) == 1 }, time.Second, time.Millisecond, "a partial batch goes on the tick")
	assert.Equal(t, [][]int{{1}}, r.got())
}
