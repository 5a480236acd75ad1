package notification

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/daprfn/shop/bindings/email"
	"github.com/daprfn/shop/bindings/memory"
	"github.com/daprfn/shop/runtime"
)

// downMailer fails every Send while down, like an email sink that is out.
type downMailer struct {
	mu   sync.Mutex
	down bool
	sent []string
}

func (m *downMailer) Send(_ context.Context, msg email.Message) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.down {
		return errors.New("sink down")
	}
	m.sent = append(m.sent, msg.ID)
	return nil
}

func (m *downMailer) setDown(down bool) { m.mu.Lock(); m.down = down; m.mu.Unlock() }

func (m *downMailer) Sent() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.sent...)
}

func deadLettered(t *testing.T, orderID string) runtime.Event[[]byte] {
	t.Helper()
	data, err := json.Marshal(OrderEvent{OrderID: orderID, CustomerEmail: "a@example.com", ProductID: "product-1", Quantity: 1})
	require.NoError(t, err)
	return runtime.Event[[]byte]{EventMeta: runtime.EventMeta{ID: orderID}, Data: data}
}

func sweep(s *Service) error {
	return s.SendUnsent(context.Background(), runtime.BindingEvent[struct{}]{})
}

func TestADeadLetterThatCannotBeSentIsKeptAndSentLater(t *testing.T) {
	store, mail := memory.NewStore(), &downMailer{down: true}
	s, err := New(store, mail, "shop@example.com", nil)
	require.NoError(t, err)

	require.NoError(t, s.DeadLetter(context.Background(), deadLettered(t, "order-1")), "kept, so daprd may ack it")
	require.NoError(t, s.DeadLetter(context.Background(), deadLettered(t, "order-2")))
	require.NoError(t, s.DeadLetter(context.Background(), deadLettered(t, "order-1")), "a redelivered dead letter is kept once")
	kept, err := s.unsent().List(context.Background())
	require.NoError(t, err)
	assert.Equal(t, []string{"order-1", "order-2"}, kept)

	err = sweep(s)
	require.Error(t, err, "the sink is still down")
	assert.Equal(t, runtime.Retry, runtime.Classify(err).Outcome)
	assert.Empty(t, mail.Sent())
	it, err := store.Get(context.Background(), UnsentKey("order-1"))
	require.NoError(t, err)
	assert.True(t, it.Found, "still kept")

	mail.setDown(false)
	require.NoError(t, sweep(s))
	assert.Equal(t, []string{"order-1", "order-2"}, mail.Sent(), "sent in the order kept")
	for _, k := range []string{UnsentKey("order-1"), UnsentKey("order-2")} {
		it, err := store.Get(context.Background(), k)
		require.NoError(t, err)
		assert.False(t, it.Found, "%s is forgotten once sent", k)
	}
	kept, err = s.unsent().List(context.Background())
	require.NoError(t, err)
	assert.Empty(t, kept)

	require.NoError(t, sweep(s))
	assert.Len(t, mail.Sent(), 2, "nothing is sent twice")
}

func TestADeadLetterThatCanBeSentIsNotKept(t *testing.T) {
	store, mail := memory.NewStore(), &downMailer{}
	s, err := New(store, mail, "shop@example.com", nil)
	require.NoError(t, err)
	require.NoError(t, s.DeadLetter(context.Background(), deadLettered(t, "order-3")))
	assert.Equal(t, []string{"order-3"}, mail.Sent())
	it, err := store.Get(context.Background(), UnsentKey("order-3"))
	require.NoError(t, err)
	assert.False(t, it.Found)
}

func TestADeadLetterNeitherSentNorKeptIsRetried(t *testing.T) {
	store, mail := memory.NewStore(), &downMailer{down: true}
	s, err := New(store, mail, "shop@example.com", nil)
	require.NoError(t, err)
	store.FailNextTransact(errors.New("state store down"))
	err = s.DeadLetter(context.Background(), deadLettered(t, "order-4"))
	require.Error(t, err)
	assert.Equal(t, runtime.Retry, runtime.Classify(err).Outcome, "daprd must deliver it again")
}

func TestManyKeptEmailsAreSentAndForgottenInChunks(t *testing.T) {
	store, mail := memory.NewStore(), &downMailer{down: true}
	s, err := New(store, mail, "shop@example.com", nil)
	require.NoError(t, err)
	const n = 250
	for i := range n {
		require.NoError(t, s.DeadLetter(context.Background(), deadLettered(t, fmt.Sprintf("order-%03d", i))))
	}
	mail.setDown(false)
	require.NoError(t, sweep(s))
	assert.Len(t, mail.Sent(), n)
	kept, err := s.unsent().List(context.Background())
	require.NoError(t, err)
	assert.Empty(t, kept)
	for _, k := range store.Keys() {
		assert.NotContains(t, k, "unsent-order-", "every kept record is deleted")
	}
}

// gateMailer holds every Send until released, reporting each one entered.
type gateMailer struct {
	downMailer
	entered chan string
	release chan struct{}
}

func (m *gateMailer) Send(ctx context.Context, msg email.Message) error {
	m.entered <- msg.ID
	<-m.release
	return m.downMailer.Send(ctx, msg)
}

func TestTwoReplicasSweepsSendAKeptEmailOnce(t *testing.T) {
	store := memory.NewStore()
	a := &gateMailer{entered: make(chan string, 1), release: make(chan struct{})}
	b := &downMailer{}
	replicaA, err := New(store, a, "shop@example.com", nil)
	require.NoError(t, err)
	replicaB, err := New(store, b, "shop@example.com", nil)
	require.NoError(t, err)
	require.NoError(t, replicaB.keep(context.Background(), "order-5", OrderEvent{OrderID: "order-5", CustomerEmail: "a@example.com", ProductID: "product-1", Quantity: 1}))

	done := make(chan error, 1)
	go func() { done <- sweep(replicaA) }()
	assert.Equal(t, "order-5", <-a.entered, "replica A claimed it and is sending")
	require.NoError(t, sweep(replicaB), "a claimed event is not B's to send, and not an error")
	assert.Empty(t, b.Sent(), "replica B left it to A")
	close(a.release)
	require.NoError(t, <-done)
	assert.Equal(t, []string{"order-5"}, a.Sent())
	kept, err := replicaA.unsent().List(context.Background())
	require.NoError(t, err)
	assert.Empty(t, kept)
}

// cancelingMailer cancels the delivery while the email is on its way, as
// daprd does to the deliveries in flight when it stops, and sends it.
type cancelingMailer struct {
	downMailer
	cancel context.CancelFunc
}

func (m *cancelingMailer) Send(ctx context.Context, msg email.Message) error {
	m.cancel()
	return m.downMailer.Send(ctx, msg)
}

// ctxStore fails a call whose context is done, as a call to the sidecar does.
type ctxStore struct{ *memory.Store }

func (s ctxStore) Save(ctx context.Context, key string, value []byte, etag string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.Store.Save(ctx, key, value, etag)
}

func TestAConfirmationSentAsItsDeliveryIsCanceledIsRecordedAndNotSentAgain(t *testing.T) {
	store := ctxStore{memory.NewStore()}
	ctx, cancel := context.WithCancel(context.Background())
	mail := &cancelingMailer{cancel: cancel}
	s, err := New(store, mail, "shop@example.com", nil)
	require.NoError(t, err)

	ev := runtime.Event[OrderEvent]{EventMeta: runtime.EventMeta{ID: "order-7"},
		Data: OrderEvent{OrderID: "order-7", CustomerEmail: "a@example.com", ProductID: "product-1", Quantity: 1}}
	require.NoError(t, s.Send(ctx, ev), "the email went out and was recorded")
	require.Error(t, ctx.Err(), "the delivery was canceled meanwhile")
	it, err := store.Get(context.Background(), SentKey("order-7"))
	require.NoError(t, err)
	assert.True(t, it.Found, "recorded though the delivery was canceled")

	mail.cancel = func() {}
	require.NoError(t, s.Send(context.Background(), ev), "the redelivery")
	assert.Equal(t, []string{"order-7"}, mail.Sent(), "sent once")
}
