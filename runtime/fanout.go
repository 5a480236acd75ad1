package runtime

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
)

// Fan-out: several functions of one App subscribed to one pubsub/topic get
// every event behind one Dapr subscription. They run concurrently, and the
// event's answer to daprd is the least settled of their outcomes:
//
//	outcomes of the functions   answer   what happens next
//	all success                 SUCCESS  done
//	success + retry             RETRY    redelivered; the one that succeeded is not run again
//	success + drop              DROP     dead-lettered; the one that succeeded is not run again
//	retry + drop                RETRY    redelivered; the one that dropped is not run again, and
//	                                     once the other succeeds the answer is DROP
//
// A function's success or drop is remembered per event (its id, source and
// data) for the fanoutMemoSize most recent events of the topic, in memory:
// after a restart, or for an event redelivered after that many newer ones,
// a function that succeeded may run again. Functions on a topic must be
// idempotent anyway: Dapr delivers at least once.

// fanoutMemoSize bounds the events whose settled functions one topic
// remembers.
const fanoutMemoSize = 4096

// settled is a function's final outcome for one event.
type settled uint8

const (
	pending settled = iota
	succeeded
	dropped
)

// fanoutMemo remembers, per event id, which functions have settled; the
// oldest event is forgotten first.
type fanoutMemo struct {
	mu    sync.Mutex
	max   int
	byID  map[string][]settled
	order []string // ring of ids, oldest at next
	next  int
}

func newFanoutMemo(max int) *fanoutMemo {
	return &fanoutMemo{max: max, byID: make(map[string][]settled, max)}
}

// get returns a copy of id's outcomes for n functions.
func (f *fanoutMemo) get(id string, n int) []settled {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]settled, n)
	copy(out, f.byID[id])
	return out
}

// put records id's outcomes.
func (f *fanoutMemo) put(id string, s []settled) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, known := f.byID[id]; !known {
		if len(f.order) < f.max {
			f.order = append(f.order, id)
		} else {
			delete(f.byID, f.order[f.next])
			f.order[f.next] = id
			f.next = (f.next + 1) % f.max
		}
	}
	f.byID[id] = s
}

// len is how many events are remembered.
func (f *fanoutMemo) len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.byID)
}

// fanout runs every function of t that has not settled m's event yet and
// answers the combined outcome (see the table above).
func (t *topicEntry) fanout(ctx context.Context, m *Message) Reply {
	id := memoKey(m)
	state := t.memo.get(id, len(t.handlers))
	errs := make([]error, len(t.handlers))
	var wg sync.WaitGroup
	for i, h := range t.handlers {
		if state[i] != pending {
			continue
		}
		wg.Go(func() {
			// A panic fails this function's delivery, not the process, even
			// in an App without runtime.Recover.
			defer func() {
				if p := recover(); p != nil {
					errs[i] = fmt.Errorf("function %d of %s panicked: %v", i+1, t.name, p)
				}
			}()
			errs[i] = h.Handle(ctx, m).Err
		})
	}
	wg.Wait()
	var retry, drop []error
	for i, err := range errs {
		switch e := Classify(err); {
		case state[i] == dropped:
			drop = append(drop, Poison(fmt.Errorf("function %d of %s dropped the event on an earlier delivery", i+1, t.name)))
		case state[i] == succeeded:
		case e == nil:
			state[i] = succeeded
		case e.Outcome == Drop:
			state[i] = dropped
			drop = append(drop, err)
		default:
			retry = append(retry, err)
		}
	}
	if id != "" {
		t.memo.put(id, state)
	}
	switch {
	case len(retry) > 0:
		return Reply{Err: combined(retry)}
	case len(drop) > 0:
		return Reply{Err: combined(drop)}
	}
	return Reply{}
}

// memoKey names m's event in the memory: its id, source and a digest of its
// data, since anybody who may publish to the topic chooses ids, and another
// event under a genuine one's id must not pass for it. "" for an event
// without id.
func memoKey(m *Message) string {
	if m.Event.ID == "" {
		return ""
	}
	sum := sha256.Sum256(m.Body)
	return m.Event.ID + "\x00" + m.Event.Source + "\x00" + string(sum[:16])
}

// combined keeps a single error as it is (its status and code reach the
// caller); several become one, classified by the first.
func combined(errs []error) error {
	if len(errs) == 1 {
		return errs[0]
	}
	first := *Classify(errs[0])
	first.Err = errors.Join(errs...)
	return &first
}

// shares reports why o cannot share s's subscription: a later function on
// the same topic leaves the subscription's fields empty or repeats them.
func (s Subscription) shares(o Subscription) error {
	route := o.Route
	if route != "" && !strings.HasPrefix(route, "/") {
		route = "/" + route
	}
	differs := func(field, mine, theirs string) error {
		return fmt.Errorf("topic %s/%s: a second function on the topic shares its subscription, whose %s is %q, not %q: leave %s empty or the same",
			s.Pubsub, s.Topic, field, mine, theirs, field)
	}
	switch {
	case route != "" && route != s.Route:
		return differs("Route", s.Route, route)
	case o.DeadLetterTopic != "" && o.DeadLetterTopic != s.DeadLetterTopic:
		return differs("DeadLetterTopic", s.DeadLetterTopic, o.DeadLetterTopic)
	case o.Metadata != nil && !maps.Equal(o.Metadata, s.Metadata):
		return differs("Metadata", fmt.Sprint(s.Metadata), fmt.Sprint(o.Metadata))
	case o.Bulk != nil && (s.Bulk == nil || *o.Bulk != *s.Bulk):
		return differs("Bulk", fmt.Sprint(s.Bulk), fmt.Sprint(*o.Bulk))
	}
	return nil
}
