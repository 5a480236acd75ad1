package order

import (
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestBatcherFlushesBySizeByTimeAndOnClose(t *testing.T) {
	var mu sync.Mutex
	var batches [][]int
	b := newBatcher(50*time.Millisecond, 3, func(vs []int) {
		mu.Lock()
		batches = append(batches, append([]int(nil), vs...))
		mu.Unlock()
	})
	got := func() [][]int { mu.Lock(); defer mu.Unlock(); return append([][]int(nil), batches...) }
	for i := range 3 {
		b.add(i)
	}
	assert.Eventually(t, func() bool { return len(got()) == 1 }, time.Second, time.Millisecond, "a full batch goes at once")
	b.add(3)
	assert.Eventually(t, func() bool { return len(got()) == 2 }, time.Second, time.Millisecond, "a partial batch goes on the tick")
	b.add(4)
	b.close()
	b.add(5) // after close: dropped, does not block
	assert.Equal(t, [][]int{{0, 1, 2}, {3}, {4}}, got(), "close flushes what is queued")
}
