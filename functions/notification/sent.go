package notification

import (
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/daprfn/shop/bindings"
	"github.com/daprfn/shop/runtime"
	"github.com/daprfn/shop/runtime/batch"
)

// EmailSent is one confirmation the notification sent.
type EmailSent struct {
	OrderID string    `json:"orderId"`
	To      string    `json:"to"`
	Subject string    `json:"subject"`
	SentAt  time.Time `json:"sentAt"`
}

// EmailsSent is the data of an "emails sent" event: the confirmations sent
// since the previous event, each once or, after a redelivery, again.
type EmailsSent struct {
	Emails []EmailSent `json:"emails"`
	// Signature is the notification's HMAC of every email's fields, keyed
	// by SentSigningKey: a reader tells its events from ones posted to the topic
	// by hand. Empty when the deployment has no internal credential.
	Signature string `json:"signature,omitempty"`
}

// SentEventType is the CloudEvent type of an "emails sent" event.
const SentEventType = "com.daprfn.notification.emails-sent"

// SentKeyPurpose names the key derived from the deployment's internal
// credential (runtime.DeriveKey) that signs "emails sent" events.
const SentKeyPurpose = "emails-sent/v1"

// SentSigningKey is the signing key of "emails sent" events for the
// internal credential token; nil when token is empty.
func SentSigningKey(token string) []byte { return runtime.DeriveKey(token, SentKeyPurpose) }

func (e EmailsSent) fields() []string {
	out := make([]string, 0, 4*len(e.Emails))
	for _, m := range e.Emails {
		out = append(out, m.OrderID, m.To, m.Subject, m.SentAt.UTC().Format(time.RFC3339Nano))
	}
	return out
}

// Signed returns e with its Signature under key; with no key, unsigned.
func (e EmailsSent) Signed(key []byte) EmailsSent {
	e.Signature = ""
	if len(key) > 0 {
		e.Signature = runtime.Sign(key, e.fields()...)
	}
	return e
}

// SignedBy reports whether e carries a valid signature under key.
func (e EmailsSent) SignedBy(key []byte) bool { return runtime.Verify(key, e.Signature, e.fields()...) }

// Announcer hears of every confirmation sent. Sent must return at once:
// whoever listens never holds up an email.
type Announcer interface {
	Sent(EmailSent)
}

// AnnounceTo has the function tell a of every confirmation it sends. Call
// it before serving.
func (s *Service) AnnounceTo(a Announcer) { s.announcer = a }

// SentEventsConfig configures SentEvents.
type SentEventsConfig struct {
	Publisher     bindings.Publisher
	Pubsub, Topic string // where the events go (required)
	Source        string // the CloudEvent source: the app-id
	Key           []byte // SentSigningKey of the internal credential; nil signs nothing
	// Timeout bounds one publish (default 2s); what it could not publish
	// is dropped.
	Timeout time.Duration
	// MaxQueued is the most confirmations waiting to be announced (default
	// 10 000); more are dropped while the pub/sub is slow or down.
	MaxQueued int
	Log       *slog.Logger
}

// SentEvents is an Announcer that publishes "emails sent" events, best
// effort: Sent only queues, and one publish carries every confirmation
// queued while the previous one was in flight (at most 100), so a busy
// notification adds far fewer than one publish per email. A publish that
// fails or times out is logged and its confirmations dropped: the emails
// are out either way, and only a live view waits for these events.
type SentEvents struct {
	cfg   SentEventsConfig
	group *batch.Group[EmailSent, struct{}]
}

// NewSentEvents returns the publisher of "emails sent" events; Close it on
// shutdown.
func NewSentEvents(cfg SentEventsConfig) (*SentEvents, error) {
	if cfg.Publisher == nil || cfg.Pubsub == "" || cfg.Topic == "" {
		return nil, errors.New("notification: sent events need a publisher, a pub/sub and a topic")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.MaxQueued <= 0 {
		cfg.MaxQueued = 10_000
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	e := &SentEvents{cfg: cfg}
	e.group = batch.New(batch.Options{Max: 100}, e.publish)
	return e, nil
}

// Sent implements Announcer: it queues m and returns.
func (e *SentEvents) Sent(m EmailSent) {
	if e.group.Queued() >= e.cfg.MaxQueued {
		return // the pub/sub is not keeping up; the page misses these
	}
	e.group.Add(m)
}

// Close publishes what is queued and waits for it.
func (e *SentEvents) Close() { e.group.Close() }

func (e *SentEvents) publish(calls []*batch.Call[EmailSent, struct{}]) {
	data := EmailsSent{Emails: make([]EmailSent, len(calls))}
	for i, c := range calls {
		data.Emails[i] = c.In
	}
	ctx, cancel := context.WithTimeout(context.Background(), e.cfg.Timeout)
	defer cancel()
	ev := bindings.Event{ID: "emails-" + strings.ToLower(rand.Text()), Source: e.cfg.Source, Type: SentEventType, Data: data.Signed(e.cfg.Key)}
	if err := e.cfg.Publisher.Publish(ctx, e.cfg.Pubsub, e.cfg.Topic, ev); err != nil {
		e.cfg.Log.Warn("emails sent, but their event was not published; only the live view misses them",
			"emails", len(calls), "topic", e.cfg.Topic, "error", err.Error())
	}
}
