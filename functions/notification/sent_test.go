package notification

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/daprfn/shop/bindings/memory"
	"github.com/daprfn/shop/runtime"
)

func orderEvent(id string) runtime.Event[OrderEvent] {
	return runtime.Event[OrderEvent]{EventMeta: runtime.EventMeta{ID: id}, Data: OrderEvent{OrderID: id, CustomerEmail: id + "@example.com", ProductID: "product-1", Quantity: 1}}
}

// announced lists the emails of every "emails sent" event published, and
// checks each event's envelope and signature.
func announced(t *testing.T, pub *memory.Publisher, key []byte) []EmailSent {
	t.Helper()
	var out []EmailSent
	for _, p := range pub.Published() {
		assert.Equal(t, "emails", p.Topic)
		assert.Equal(t, SentEventType, p.Event.Type)
		assert.Equal(t, "notification-service", p.Event.Source)
		data, ok := p.Event.Data.(EmailsSent)
		require.True(t, ok, "%T", p.Event.Data)
		if key != nil {
			assert.True(t, data.SignedBy(key), "signed with the deployment's key")
		} else {
			assert.Empty(t, data.Signature, "no credential, no signature")
		}
		out = append(out, data.Emails...)
	}
	return out
}

func TestEverySentConfirmationIsAnnouncedSigned(t *testing.T) {
	key := SentSigningKey("internal")
	pub := &memory.Publisher{}
	events, err := NewSentEvents(SentEventsConfig{Publisher: pub, Pubsub: "pubsub", Topic: "emails", Source: "notification-service", Key: key})
	require.NoError(t, err)
	mail := &downMailer{}
	s, err := New(memory.NewStore(), mail, "shop@example.com", nil)
	require.NoError(t, err)
	s.AnnounceTo(events)

	for _, id := range []string{"order-1", "order-2"} {
		require.NoError(t, s.Send(context.Background(), orderEvent(id)))
	}
	require.NoError(t, s.Send(context.Background(), orderEvent("order-1")), "a redelivery sends nothing")
	events.Close()

	got := announced(t, pub, key)
	require.Len(t, got, 2, "each confirmation sent, once: %v", got)
	for i, id := range []string{"order-1", "order-2"} {
		assert.Equal(t, id, got[i].OrderID)
		assert.Equal(t, id+"@example.com", got[i].To)
		assert.Equal(t, "Order confirmation "+id, got[i].Subject)
		assert.False(t, got[i].SentAt.IsZero())
	}
	forged := EmailsSent{Emails: got}.Signed(key)
	forged.Emails[0].To = "someone@example.com"
	assert.False(t, forged.SignedBy(key), "a changed email breaks the signature")
	assert.False(t, EmailsSent{Emails: got}.SignedBy(key), "an unsigned event is not signed")
}

// A pub/sub that hangs or fails never holds up nor fails an email; what
// queues while one publish is in flight goes in the next, and past
// MaxQueued confirmations are no longer announced.
func TestAnnouncingNeverHoldsUpAnEmail(t *testing.T) {
	inFlight, release := make(chan struct{}, 10), make(chan struct{})
	pub := &memory.Publisher{Deliver: func(ctx context.Context, _ memory.Published) error {
		inFlight <- struct{}{}
		<-release
		return nil
	}}
	events, err := NewSentEvents(SentEventsConfig{Publisher: pub, Pubsub: "pubsub", Topic: "emails", Source: "notification-service", MaxQueued: 50})
	require.NoError(t, err)
	mail := &downMailer{}
	s, err := New(memory.NewStore(), mail, "shop@example.com", nil)
	require.NoError(t, err)
	s.AnnounceTo(events)

	require.NoError(t, s.Send(context.Background(), orderEvent("order-0")))
	<-inFlight // its publish hangs
	for i := 1; i < 80; i++ {
		require.NoError(t, s.Send(context.Background(), orderEvent(fmt.Sprintf("order-%d", i))), "sent while the pub/sub hangs")
	}
	assert.Len(t, mail.Sent(), 80)
	close(release)
	events.Close()
	got := announced(t, pub, nil)
	assert.Len(t, pub.Published(), 2, "the first publish, then one with what queued meanwhile")
	assert.Len(t, got, 1+50, "the first, and MaxQueued of those sent while it hung")
	assert.Equal(t, "order-50", got[len(got)-1].OrderID, "the later ones were not announced")

	failing := &memory.Publisher{}
	failing.FailNext(errors.New("pubsub down"))
	events, err = NewSentEvents(SentEventsConfig{Publisher: failing, Pubsub: "pubsub", Topic: "emails", Source: "notification-service"})
	require.NoError(t, err)
	s.AnnounceTo(events)
	require.NoError(t, s.Send(context.Background(), orderEvent("order-x")), "a failed announcement is not the email's failure")
	events.Close()
	assert.Empty(t, failing.Published())
	assert.Contains(t, mail.Sent(), "order-x")
}
