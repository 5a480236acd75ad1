package notification

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/daprfn/shop/bindings"
	"github.com/daprfn/shop/bindings/email"
	"github.com/daprfn/shop/functions/orderevent"
	"github.com/daprfn/shop/runtime"
)

// OrderEvent is the order event as the seed publishes it; events from the
// seed's Node order-service decode the same way.
type OrderEvent = orderevent.Event

// Mailer sends one email.
type Mailer interface {
	Send(ctx context.Context, m email.Message) error
}

// IdempotentMailer is a Mailer that may say sending a message twice has the
// effect of sending it once (email.Sender over files does). Then Send skips
// the sent record: a redelivered event rewrites the same message, and the
// notification needs no state round trip per order.
type IdempotentMailer interface {
	Mailer
	Idempotent(ctx context.Context) (bool, error)
}

// Service is the notification function.
type Service struct {
	store bindings.StateStore
	mail  Mailer
	from  string
	log   *slog.Logger

	sweeping sync.Mutex // held by the running SendUnsent
	replica  string     // this process's id in the claims on kept events

	checking bool              // CheckEvents was called
	key      []byte            // the order function's signing key
	orders   orderevent.Lookup // for events without a valid signature

	announcer Announcer // told of every confirmation sent; nil for none
}

// CheckEvents makes the function check every order event against what it
// claims before emailing anybody, since anyone who can publish to the topic
// (a sidecar's publish API is open to CloudEvents posted by hand) could
// otherwise have the shop email any address. An event signed under key is
// the order function's own and is sent without a round trip. Any other (the
// seed's order-service signs nothing) is sent only if orders knows its order
// with the same recipient, product and quantity. An event that fails the
// check is recorded under RefusedKey and acknowledged, never emailed.
// Call it before serving; without it every valid event is emailed.
func (s *Service) CheckEvents(key []byte, orders orderevent.Lookup) {
	s.checking, s.key, s.orders = true, key, orders
}

// RecordTTL is how long the records of refused and dead-lettered events
// stay for an operator to read: anyone who may publish to the topic can
// cause one, so they do not stay for good.
const RecordTTL = 7 * 24 * time.Hour

// record writes an operator's record once; one there already is kept.
func (s *Service) record(ctx context.Context, key string, rec []byte) error {
	err := s.store.Transact(ctx, []bindings.StateOp{{Key: key, Value: rec, TTL: RecordTTL}})
	if errors.Is(err, bindings.ErrConflict) {
		return nil
	}
	return err
}

// RefusedKey is the state key under which an order event that failed the
// check is recorded.
func RefusedKey(eventID string) string { return "refused-" + keySafe(eventID) }

// keySafe is id when it is a safe key part, else a digest of it: whoever
// publishes chooses event ids, and daprd refuses some keys ("a||b").
func keySafe(id string) string {
	if runtime.SafeID(id) {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return "sha256-" + hex.EncodeToString(sum[:16])
}

// genuine reports whether o is an order the order function stored, with
// the reason when it is not; err is a failed lookup, worth retrying.
func (s *Service) genuine(ctx context.Context, o OrderEvent) (ok bool, reason string, err error) {
	if o.SignedBy(s.key) {
		return true, "", nil
	}
	if s.orders == nil {
		return false, "not signed by the order function", nil
	}
	st, err := s.orders.LookupOrder(ctx, o.OrderID)
	switch {
	case err != nil:
		return false, "", fmt.Errorf("look up order %s: %w", o.OrderID, err)
	case !st.Found:
		return false, "no order has this id", nil
	case !o.Matches(st.CustomerEmail, st.ProductID, st.Quantity):
		return false, "the stored order has another recipient, product or quantity", nil
	}
	return true, "", nil
}

// refuse records an event that failed the check, for an operator to read.
func (s *Service) refuse(ctx context.Context, ev runtime.Event[OrderEvent], reason string) error {
	rec, _ := json.Marshal(map[string]any{"id": ev.ID, "source": ev.Source, "type": ev.Type, "orderId": ev.Data.OrderID,
		"customerEmail": ev.Data.CustomerEmail, "reason": reason, "at": time.Now().UTC()})
	if err := s.record(ctx, RefusedKey(ev.ID), rec); err != nil {
		return runtime.RetryLater(fmt.Errorf("record refused event %s: %w", ev.ID, err))
	}
	s.log.Warn("order event refused: not emailed", "event", ev.ID, "source", ev.Source, "order", ev.Data.OrderID, "reason", reason)
	return nil
}

// New returns the notification function; from is the sender address.
func New(store bindings.StateStore, mail Mailer, from string, log *slog.Logger) (*Service, error) {
	if store == nil || mail == nil {
		return nil, errors.New("notification: a state store and a mailer are required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{store: store, mail: mail, from: from, log: log, replica: rand.Text()}, nil
}

// SentKey is the state key that records an order's confirmation as sent.
func SentKey(orderID string) string { return "notified-" + orderID }

type sentRecord struct {
	EventID string    `json:"eventId"`
	SentAt  time.Time `json:"sentAt"`
}

// Send emails the confirmation of ev's order unless it was already sent,
// once the event passed the check CheckEvents configures.
func (s *Service) Send(ctx context.Context, ev runtime.Event[OrderEvent]) error {
	o := ev.Data
	if s.checking {
		ok, reason, err := s.genuine(ctx, o)
		if err != nil {
			return runtime.RetryLater(err)
		}
		if !ok {
			return s.refuse(ctx, ev, reason)
		}
	}
	if im, ok := s.mail.(IdempotentMailer); ok {
		if idem, err := im.Idempotent(ctx); err == nil && idem {
			m := Render(o, s.from)
			if err := s.mail.Send(ctx, m); err != nil {
				return runtime.RetryLater(err)
			}
			s.sent(m)
			return nil
		}
	}
	key := SentKey(o.OrderID)
	it, err := s.store.Get(ctx, key)
	if err != nil {
		return runtime.RetryLater(fmt.Errorf("read %s: %w", key, err))
	}
	if it.Found {
		s.log.Debug("confirmation already sent; duplicate event ignored", "order", o.OrderID, "event", ev.ID)
		return nil
	}
	m := Render(o, s.from)
	// Once the email is on its way, the send and its record finish even if
	// the delivery is canceled: daprd cancels the deliveries in flight when
	// it stops, and an email that went out without its record would go out
	// again on the redelivery.
	ctx, cancel := detach(ctx)
	defer cancel()
	if err := s.mail.Send(ctx, m); err != nil {
		return runtime.RetryLater(err)
	}
	rec, _ := json.Marshal(sentRecord{EventID: ev.ID, SentAt: time.Now().UTC()})
	if err := s.store.Save(ctx, key, rec, ""); err != nil && !errors.Is(err, bindings.ErrConflict) {
		// The email is out; without the record a redelivery would send it
		// again, which is the lesser harm than not confirming at all.
		s.log.Warn("confirmation sent but not recorded", "order", o.OrderID, "error", err.Error())
	}
	s.sent(m)
	return nil
}

// sendBound is how long a send and its record may take once detached from a
// delivery that has no deadline of its own.
const sendBound = 30 * time.Second

// detach returns a context that keeps ctx's values and deadline (or
// sendBound) but not its cancellation.
func detach(ctx context.Context) (context.Context, context.CancelFunc) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(sendBound)
	}
	return context.WithDeadline(context.WithoutCancel(ctx), deadline)
}

// sent logs the confirmation m and tells the announcer.
func (s *Service) sent(m email.Message) {
	s.log.Info("order confirmation sent", "order", m.ID, "to", m.To)
	if s.announcer != nil {
		s.announcer.Sent(EmailSent{OrderID: m.ID, To: m.To, Subject: m.Subject, SentAt: time.Now().UTC()})
	}
}

// Render builds the confirmation email of o, with the seed's fields.
func Render(o OrderEvent, from string) email.Message {
	body := fmt.Sprintf(`Order Confirmation

Order ID: %s
Customer: %s
Product: %s
Quantity: %d

Thank you for your order!
`, o.OrderID, o.CustomerEmail, o.ProductID, o.Quantity)
	return email.Message{ID: o.OrderID, From: from, To: o.CustomerEmail, Subject: "Order confirmation " + o.OrderID, Body: body}
}

// DeadLetterKey is the state key under which a dead-lettered event is kept.
func DeadLetterKey(eventID string) string { return "deadletter-" + keySafe(eventID) }

// DeadLetter handles what the orders topic dead-lettered. daprd dead-letters
// an event not only when the handler dropped it as poison but also when it
// could not deliver it within its retries (the app was down, or the email
// sink was), so a valid order event is sent after all (deduplicated as
// ever). If that fails too, the event is kept in the state store for
// SendUnsent, since past this handler's own retries daprd may drop it
// (pubsub.in-memory, and Redis streams when the retries end within their
// processingTimeout, ack a failed delivery). Anything else is recorded for
// an operator.
func (s *Service) DeadLetter(ctx context.Context, ev runtime.Event[[]byte]) error {
	if o, err := runtime.DecodeEventData[OrderEvent](ev.Data); err == nil { // the orders topic's own decoding
		if err := s.Send(ctx, runtime.Event[OrderEvent]{EventMeta: ev.EventMeta, Data: o}); err != nil {
			if kerr := s.keep(ctx, ev.ID, o); kerr != nil {
				return runtime.RetryLater(errors.Join(err, kerr))
			}
			s.log.Warn("dead-lettered order event could not be sent either; kept for the email sweep", "order", o.OrderID, "event", ev.ID, "error", err.Error())
			return nil
		}
		s.log.Warn("dead-lettered order event sent after all: it could not be delivered within the delivery retries", "order", o.OrderID, "event", ev.ID)
		return nil
	}
	rec, _ := json.Marshal(map[string]any{"id": ev.ID, "source": ev.Source, "type": ev.Type, "data": string(ev.Data), "at": time.Now().UTC()})
	if err := s.record(ctx, DeadLetterKey(ev.ID), rec); err != nil {
		return runtime.RetryLater(err)
	}
	s.log.Warn("order event dead-lettered", "event", ev.ID, "source", ev.Source, "data", string(ev.Data))
	return nil
}
