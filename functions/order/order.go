package order

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"strings"
	"time"

	"github.com/daprfn/shop/bindings"
	"github.com/daprfn/shop/functions/orderevent"
	"github.com/daprfn/shop/functions/stock"
	"github.com/daprfn/shop/runtime"
	"github.com/daprfn/shop/runtime/outbox"
)

// MaxQuantity is the largest quantity one order may ask for.
const MaxQuantity = 1000

// Order is the stored order, in the seed's shape.
type Order struct {
	ID            string    `json:"id"`
	ProductID     string    `json:"productId"`
	Quantity      int       `json:"quantity"`
	CustomerEmail string    `json:"customerEmail"`
	Status        string    `json:"status"`
	CreatedAt     time.Time `json:"createdAt"`
}

// Event is the order event published to the orders topic (the seed's shape,
// signed by the outbox when it has a key).
type Event = orderevent.Event

// EventOf returns o's event, unsigned.
func EventOf(o Order) Event {
	return Event{OrderID: o.ID, CustomerEmail: o.CustomerEmail, ProductID: o.ProductID, Quantity: o.Quantity}
}

// DefaultCreateTimeout bounds one Create unless New is given another: after
// it, the order is either stored or will never be, which is what lets the
// inventory settle an unconfirmed hold older than its HoldTTL by looking the
// order up.
const DefaultCreateTimeout = 20 * time.Second

// CreateRequest is the body of POST /orders.
type CreateRequest struct {
	ProductID     string `json:"productId"`
	Quantity      int    `json:"quantity"`
	CustomerEmail string `json:"customerEmail"`

	idempotencyKey string
}

// BindRequest implements runtime.RequestBinder: the Idempotency-Key header.
func (r *CreateRequest) BindRequest(req runtime.Request) error {
	r.idempotencyKey = strings.TrimSpace(req.Header("idempotency-key"))
	if len(r.idempotencyKey) > 200 {
		return runtime.Invalid("invalid_idempotency_key", "Idempotency-Key must be at most 200 characters")
	}
	return nil
}

// Validate implements runtime.Validator.
func (r CreateRequest) Validate() error {
	switch {
	case strings.TrimSpace(r.ProductID) == "":
		return runtime.Invalid("invalid_product_id", "productId is required")
	case len(r.ProductID) > 100:
		return runtime.Invalid("invalid_product_id", "productId must be at most 100 characters")
	case r.Quantity < 1 || r.Quantity > MaxQuantity:
		return runtime.Invalid("invalid_quantity", "quantity must be a whole number from 1 to %d", MaxQuantity)
	case !plausibleEmail(r.CustomerEmail):
		return runtime.Invalid("invalid_customer_email", "customerEmail must be an address like name@example.com")
	}
	return nil
}

func plausibleEmail(s string) bool {
	if len(s) > 254 || strings.ContainsAny(s, " <>\r\n") {
		return false
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Address != s {
		return false
	}
	local, domain, ok := strings.Cut(s, "@")
	return ok && local != "" && strings.Contains(domain, ".") && !strings.HasPrefix(domain, ".") && !strings.HasSuffix(domain, ".")
}

// CreateResponse is the seed's answer of POST /orders.
type CreateResponse struct {
	OrderID string `json:"orderId"`
	Status  string `json:"status"`
}

// GetRequest is GET /orders/{id}.
type GetRequest struct{ ID string }

// BindRequest implements runtime.RequestBinder.
func (r *GetRequest) BindRequest(req runtime.Request) error {
	r.ID = req.PathValue("id")
	if !runtime.SafeID(r.ID) {
		return runtime.Invalid("invalid_order_id", "the order id in /orders/{id} must be 1 to 200 letters, digits, '-', '_' or '.'")
	}
	return nil
}

// Errors of the order function that callers see.
var (
	ErrInsufficient = runtime.Invalid("insufficient_inventory", "Insufficient inventory")
	ErrNotFound     = runtime.NotFound("order_not_found", "Order not found")
)

// Events commits an order's writes together with its event (the
// transactional outbox, *outbox.Outbox).
type Events interface {
	Commit(ctx context.Context, ops []bindings.StateOp, m outbox.Message) error
}

// Config is what the order function is made of.
type Config struct {
	Store  bindings.StateStore // required: orders and Idempotency-Key answers
	Stock  stock.Stock         // required
	Events Events              // required
	// SigningKey signs every order event (orderevent.Key of the deployment's
	// internal credential), so the notification can tell them from events
	// posted by anybody else; nil publishes them unsigned.
	SigningKey []byte
	// CreateTimeout bounds one Create (DefaultCreateTimeout when 0).
	CreateTimeout time.Duration
	Log           *slog.Logger
}

// Service is the order function.
type Service struct {
	Config
	now func() time.Time
}

// New returns the order function.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Stock == nil || cfg.Events == nil {
		return nil, errors.New("order: a state store, the stock and the events are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.CreateTimeout <= 0 {
		cfg.CreateTimeout = DefaultCreateTimeout
	}
	return &Service{Config: cfg, now: time.Now}, nil
}

// NewID returns an unguessable order id: "order-" and 128 random bits.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "order-" + hex.EncodeToString(b[:])
}

// Create places an order: it takes the stock, stores the order with its
// event, and answers. With an Idempotency-Key, a repeated request answers
// as the first did.
func (s *Service) Create(ctx context.Context, in CreateRequest) (CreateResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, s.CreateTimeout)
	defer cancel()
	key := in.idempotencyKey
	var keyETag string
	if key != "" {
		prev, etag, err := s.replay(ctx, key)
		if err != nil || prev != nil {
			return deref(prev), err
		}
		keyETag = etag
	}
	o, err := s.takeStock(ctx, in)
	if err != nil {
		return CreateResponse{}, err
	}
	if key != "" {
		// The stock is taken: if the key is another request's after all, the
		// hold goes back through the hold sweep, as no order has its id.
		if prev, err := s.claim(ctx, key, keyETag, o.ID); err != nil || prev != nil {
			return deref(prev), err
		}
	}
	if err := s.store(ctx, o); err != nil {
		// The transaction may still have landed (a deadline or a lost answer
		// says nothing either way), so the stock stays held: the inventory's
		// hold sweep confirms it if the order exists and gives it back if not,
		// once no Create can still store it; the outbox delivers the event if
		// the order exists.
		s.Log.Warn("storing the order failed; its stock hold is left to the hold sweep", "order", o.ID, "error", err.Error())
		return CreateResponse{}, runtime.Unavailable(err, "storing order %s failed; it was probably not placed: GET /orders/%s tells (with an Idempotency-Key, a retry answers 409 until the outcome is known)", o.ID, o.ID)
	}
	s.Stock.Confirm(stock.Taken{OrderID: o.ID, ProductID: o.ProductID})
	return CreateResponse{OrderID: o.ID, Status: createdStatus}, nil
}

const createdStatus = "Order created successfully"

func deref(r *CreateResponse) CreateResponse {
	if r == nil {
		return CreateResponse{}
	}
	return *r
}

// takeStock takes the stock of the order in, and returns the order to store.
func (s *Service) takeStock(ctx context.Context, in CreateRequest) (Order, error) {
	id := NewID()
	avail, err := s.Stock.Take(ctx, id, in.ProductID, in.Quantity)
	switch {
	case err != nil && runtime.Classify(err).Status == 404:
		return Order{}, runtime.NotFound("product_not_found", "Product not found")
	case err != nil:
		// The stock may have been taken all the same: its hold is settled by
		// the inventory's sweep, which finds no order under id.
		return Order{}, runtime.Unavailable(err, "the inventory is unavailable, try again")
	case !avail.Available:
		return Order{}, ErrInsufficient
	case avail.OrderID != "":
		id = avail.OrderID // the stock chose the id (an order placed from a lease)
	}
	return Order{ID: id, ProductID: in.ProductID, Quantity: in.Quantity, CustomerEmail: in.CustomerEmail,
		Status: "confirmed", CreatedAt: s.now().UTC()}, nil
}

// store writes the order together with its event.
func (s *Service) store(ctx context.Context, o Order) error {
	orderJSON, _ := json.Marshal(o)
	ev := bindings.Event{ID: o.ID, Type: EventType, Subject: o.ID, Data: EventOf(o).Signed(s.SigningKey)}
	return s.Events.Commit(ctx, []bindings.StateOp{{Key: o.ID, Value: orderJSON}}, outbox.Message{Event: ev, Attachment: o})
}

// EventType is the CloudEvent type of order events.
const EventType = "com.daprfn.order.confirmed"

// Archive stores confirmed orders outside the state store (order storage).
type Archive interface {
	Write(ctx context.Context, id string, record any) error
}

// ArchiveAfterPublish is the outbox's After step for the order events: it
// archives the order the event was committed with (its attachment).
func ArchiveAfterPublish(a Archive) func(ctx context.Context, ev bindings.Event, order json.RawMessage) error {
	return func(ctx context.Context, ev bindings.Event, order json.RawMessage) error {
		return a.Write(ctx, ev.ID, order)
	}
}

// Find returns the stored order id; found is false when there is none (the
// order lookup of the inventory and the notification in the embedded mode).
func (s *Service) Find(ctx context.Context, id string) (o Order, found bool, err error) {
	raw, err := s.Get(ctx, GetRequest{ID: id})
	switch {
	case errors.Is(err, ErrNotFound):
		return Order{}, false, nil
	case err != nil:
		return Order{}, false, err
	}
	if err := json.Unmarshal(raw, &o); err != nil {
		return Order{}, false, fmt.Errorf("stored order %s: %w", id, err)
	}
	return o, true, nil
}

// Get returns a stored order.
func (s *Service) Get(ctx context.Context, in GetRequest) (json.RawMessage, error) {
	it, err := s.Store.Get(ctx, in.ID)
	if err != nil {
		return nil, runtime.Unavailable(err, "reading the order failed, try again")
	}
	if !it.Found || !strings.HasPrefix(in.ID, "order-") {
		return nil, ErrNotFound
	}
	if !json.Valid(it.Value) {
		return nil, fmt.Errorf("stored order %s is not JSON", in.ID)
	}
	return it.Value, nil
}
