package storefront

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
)

// The server-sent events the page reads.
const (
	eventOrder      = "order"      // a Step, with an id
	eventDeadLetter = "deadletter" // a DeadLetter, with an id
	eventStock      = "stock"      // the latest Stock
	eventCounters   = "counters"   // the latest counters of every app
	eventSkipped    = "skipped"    // {"events": N}: N feed events this page will not get
)

// maxPages is the most pages following the feed at once; more are refused
// (503) rather than slowing every page down.
const maxPages = 1000

// feed is what the pages follow: the recent order steps and dead letters,
// numbered and kept in a ring of bounded size for pages that reconnect, and
// the latest stock and counters. Every event is encoded once, as the
// server-sent event frame every page gets.
type feed struct {
	epoch string // ids are epoch-n: after a restart, an old page's id is not ours

	mu       sync.Mutex
	last     uint64   // the newest event's n; the first is 1
	ring     [][]byte // frames of events last-len+1 .. last, at index n % cap
	size     int      // events in the ring
	stock    []byte   // the latest stock frame, and its version
	stockV   uint64
	counters []byte
	countV   uint64
	changed  chan struct{} // closed at every change, then replaced
	pages    int
	closed   bool

	first chan struct{} // receives when a page opens while none was open
	done  chan struct{} // closed by close
}

func newFeed(history int) *feed {
	return &feed{epoch: strings.ToLower(rand.Text()[:8]), ring: make([][]byte, history),
		changed: make(chan struct{}), first: make(chan struct{}, 1), done: make(chan struct{})}
}

// frame encodes one server-sent event; id "" for none.
func frame(id, event string, data any) []byte {
	b, err := json.Marshal(data)
	if err != nil {
		panic(fmt.Sprintf("storefront: %T does not encode: %v", data, err)) // our own types: a bug
	}
	var f bytes.Buffer
	if id != "" {
		f.WriteString("id: " + id + "\n")
	}
	f.WriteString("event: " + event + "\ndata: ")
	f.Write(b) // JSON holds no raw newline
	f.WriteString("\n\n")
	return f.Bytes()
}

func (f *feed) id(n uint64) string { return f.epoch + "-" + strconv.FormatUint(n, 10) }

// add appends an event to the feed.
func (f *feed) add(event string, data any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.last++
	f.ring[f.last%uint64(len(f.ring))] = frame(f.id(f.last), event, data)
	f.size = min(f.size+1, len(f.ring))
	f.notifyLocked()
}

func (f *feed) setStock(s Stock) {
	b := frame("", eventStock, s)
	f.mu.Lock()
	defer f.mu.Unlock()
	if !bytes.Equal(b, f.stock) {
		f.stock, f.stockV = b, f.stockV+1
		f.notifyLocked()
	}
}

func (f *feed) setCounters(c []AppCounters) {
	b := frame("", eventCounters, map[string]any{"apps": c})
	f.mu.Lock()
	defer f.mu.Unlock()
	if !bytes.Equal(b, f.counters) {
		f.counters, f.countV = b, f.countV+1
		f.notifyLocked()
	}
}

func (f *feed) notifyLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

// changes returns a channel closed at the next change.
func (f *feed) changes() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.changed
}

// cursor is the n of the last event a page had, from its Last-Event-ID: 0
// for a new page, or an id of another run of the storefront.
func (f *feed) cursor(lastEventID string) (n uint64, resumed bool) {
	epoch, num, ok := strings.Cut(lastEventID, "-")
	if !ok || epoch != f.epoch {
		return 0, false
	}
	n, err := strconv.ParseUint(num, 10, 64)
	if err != nil {
		return 0, false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return min(n, f.last), true
}

// page is one page's place in the feed.
type page struct {
	after          uint64 // the last event it got
	stockV, countV uint64 // the versions it got
	resumed        bool   // it had events before: tell it what it misses
}

// next appends to buf what p has not had: the latest stock and counters if
// they changed, then at most limit events after p.after (the newest ones,
// preceded by a skipped event when p misses others).
func (f *feed) next(buf []byte, p *page, limit int) []byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p.stockV != f.stockV {
		buf, p.stockV = append(buf, f.stock...), f.stockV
	}
	if p.countV != f.countV {
		buf, p.countV = append(buf, f.counters...), f.countV
	}
	oldest := f.last - uint64(f.size) + 1 // = last+1 when the ring is empty
	from := max(p.after+1, oldest)
	if f.last >= from && f.last-from+1 > uint64(limit) {
		from = f.last - uint64(limit) + 1
	}
	if skipped := from - (p.after + 1); skipped > 0 && p.resumed {
		buf = append(buf, frame("", eventSkipped, map[string]uint64{"events": skipped})...)
	}
	for n := from; n <= f.last; n++ {
		buf = append(buf, f.ring[n%uint64(len(f.ring))]...)
	}
	p.after, p.resumed = f.last, true
	return buf
}

// join counts a page in; leave counts it out. ok is false when maxPages
// pages follow the feed already, or the feed is closed.
func (f *feed) join() (leave func(), ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed || f.pages >= maxPages {
		return nil, false
	}
	f.pages++
	if f.pages == 1 {
		select {
		case f.first <- struct{}{}:
		default:
		}
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			f.mu.Lock()
			f.pages--
			f.mu.Unlock()
		})
	}, true
}

// watched reports whether a page follows the feed.
func (f *feed) watched() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pages > 0
}

// opened receives when a page opens while none was open.
func (f *feed) opened() <-chan struct{} { return f.first }

// close ends every page's stream and refuses new ones.
func (f *feed) close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.closed {
		f.closed = true
		close(f.done)
	}
}
