package runtime_test

import (
	"context"
	"errors"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/daprfn/shop/runtime"
)

// scripted is a topic function that answers its script, one outcome per
// delivery (the last one repeats), and counts its runs.
type scripted struct {
	script []error
	runs   atomic.Int32
}

func (s *scripted) handle(context.Context, runtime.Event[struct{}]) error {
	n := int(s.runs.Add(1)) - 1
	return s.script[min(n, len(s.script)-1)]
}

var (
	errRetry = runtime.RetryLater(errors.New("sink down"))
	errDrop  = runtime.Invalid("poison", "cannot handle this one")
)

func deliver(app *runtime.App, id string) *runtime.Error {
	m := &runtime.Message{Kind: runtime.KindTopic, Body: []byte(`{}`), ContentType: "application/json",
		Event: &runtime.EventMeta{ID: id, Pubsub: "pubsub", Topic: "orders"}}
	return runtime.Classify(app.Dispatch(context.Background(), m).Err)
}

func outcome(e *runtime.Error) string {
	if e == nil {
		return runtime.Success.String()
	}
	return e.Outcome.String()
}

// Two functions on one topic in one App: each gets every event, behind one
// subscription, and the answer to daprd is the least settled of theirs.
func TestFunctionsSharingATopicEachGetEveryEvent(t *testing.T) {
	for _, c := range []struct {
		name   string
		a, b   []error // each delivery's outcome, per function
		answer []string
		runsA  int32 // over all deliveries
		runsB  int32
	}{
		{"success + success", []error{nil}, []error{nil}, []string{"SUCCESS"}, 1, 1},
		{"success + retry: the one that succeeded is not run again", []error{nil}, []error{errRetry, errRetry, nil},
			[]string{"RETRY", "RETRY", "SUCCESS"}, 1, 3},
		{"success + drop: dropped, and the other function had it", []error{nil}, []error{errDrop}, []string{"DROP"}, 1, 1},
		{"retry + drop: redelivered to the one that asked, then dropped", []error{errRetry, nil}, []error{errDrop},
			[]string{"RETRY", "DROP"}, 2, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, b := &scripted{script: c.a}, &scripted{script: c.b}
			app := runtime.New(runtime.Options{})
			runtime.Topic(app, runtime.Subscription{Pubsub: "pubsub", Topic: "orders", Route: "/orders", DeadLetterTopic: "orders-dead"}, a.handle)
			runtime.Topic(app, runtime.Subscription{Pubsub: "pubsub", Topic: "orders"}, b.handle)
			require.NoError(t, app.Err())
			require.Len(t, app.Subscriptions(), 1, "one Dapr subscription for both")
			var answers []string
			for range c.answer {
				answers = append(answers, outcome(deliver(app, "ev-1")))
			}
			assert.Equal(t, c.answer, answers)
			assert.Equal(t, c.runsA, a.runs.Load(), "runs of the first function")
			assert.Equal(t, c.runsB, b.runs.Load(), "runs of the second function")

			// Another event starts afresh.
			before := a.runs.Load()
			deliver(app, "ev-2")
			assert.Equal(t, before+1, a.runs.Load(), "each event is its own")
		})
	}
}

func TestAFailingFunctionsErrorReachesTheCaller(t *testing.T) {
	app := runtime.New(runtime.Options{})
	runtime.Topic(app, runtime.Subscription{Pubsub: "pubsub", Topic: "orders"}, func(context.Context, runtime.Event[struct{}]) error { return nil })
	runtime.Topic(app, runtime.Subscription{Pubsub: "pubsub", Topic: "orders"}, func(context.Context, runtime.Event[struct{}]) error { return errDrop })
	e := deliver(app, "ev-1")
	require.NotNil(t, e)
	assert.Equal(t, "poison", e.Code, "one failing function's error is answered as it is")
}

func TestASecondFunctionOnATopicSharesItsSubscription(t *testing.T) {
	noop := func(context.Context, runtime.Event[struct{}]) error { return nil }
	app := runtime.New(runtime.Options{})
	runtime.Topic(app, runtime.Subscription{Pubsub: "pubsub", Topic: "orders", Route: "/orders", DeadLetterTopic: "dead"}, noop)
	runtime.Topic(app, runtime.Subscription{Pubsub: "pubsub", Topic: "orders", Route: "orders", DeadLetterTopic: "dead"}, noop) // the same, said again
	require.NoError(t, app.Err())
	runtime.Topic(app, runtime.Subscription{Pubsub: "pubsub", Topic: "orders", Route: "/elsewhere"}, noop)
	runtime.Topic(app, runtime.Subscription{Pubsub: "pubsub", Topic: "orders", DeadLetterTopic: "other-dead"}, noop)
	runtime.Topic(app, runtime.Subscription{Pubsub: "pubsub", Topic: "orders", Bulk: &runtime.BulkDelivery{MaxMessages: 5}}, noop)
	err := app.Err()
	require.Error(t, err)
	for _, want := range []string{`whose Route is "/orders", not "/elsewhere"`, `whose DeadLetterTopic is "dead", not "other-dead"`, "whose Bulk is"} {
		assert.Contains(t, err.Error(), want)
	}
	assert.Len(t, app.Subscriptions(), 1)
}

// The settled functions of an event are remembered for a bounded number of
// events: memory does not grow with the traffic.
func TestTheFanOutMemoryIsBounded(t *testing.T) {
	a, b := &scripted{script: []error{nil}}, &scripted{script: []error{errRetry}}
	app := runtime.New(runtime.Options{})
	runtime.Topic(app, runtime.Subscription{Pubsub: "pubsub", Topic: "orders"}, a.handle)
	runtime.Topic(app, runtime.Subscription{Pubsub: "pubsub", Topic: "orders"}, b.handle)
	deliver(app, "first")
	deliver(app, "first")
	require.Equal(t, int32(1), a.runs.Load(), "remembered while recent")
	for i := range runtime.FanoutMemoSize {
		deliver(app, "later-"+strconv.Itoa(i))
	}
	before := a.runs.Load()
	deliver(app, "first")
	assert.Equal(t, before+1, a.runs.Load(), "forgotten once FanoutMemoSize newer events came: it runs again (at least once)")
	assert.LessOrEqual(t, runtime.FanoutMemoLen(app, "pubsub", "orders"), runtime.FanoutMemoSize)
}

// Publishers choose event ids: another event under a genuine one's id is
// not taken for it, so a function that succeeded on the impostor still gets
// the genuine event.
func TestTheFanOutMemoryTellsEventsOfOneIdApart(t *testing.T) {
	a, b := &scripted{script: []error{nil}}, &scripted{script: []error{errRetry, nil}}
	app := runtime.New(runtime.Options{})
	runtime.Topic(app, runtime.Subscription{Pubsub: "pubsub", Topic: "orders"}, a.handle)
	runtime.Topic(app, runtime.Subscription{Pubsub: "pubsub", Topic: "orders"}, b.handle)
	send := func(body string) string {
		m := &runtime.Message{Kind: runtime.KindTopic, Body: []byte(body), ContentType: "application/json",
			Event: &runtime.EventMeta{ID: "ev-1", Source: "order-service", Pubsub: "pubsub", Topic: "orders"}}
		return outcome(runtime.Classify(app.Dispatch(context.Background(), m).Err))
	}
	assert.Equal(t, "RETRY", send(`{"n":1}`))
	assert.Equal(t, int32(1), a.runs.Load())
	assert.Equal(t, "SUCCESS", send(`{"n":2}`), "another event under the same id")
	assert.Equal(t, int32(2), a.runs.Load(), "is run as the new event it is")
	assert.Equal(t, "SUCCESS", send(`{"n":1}`), "the genuine one's redelivery")
	assert.Equal(t, int32(2), a.runs.Load(), "skips the function that had it")
}
