package order

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"strings"
	"sync"
	"time"

	"github.com/daprfn/shop/bindings"
	"github.com/daprfn/shop/functions/orderevent"
	"github.com/daprfn/shop/functions/stock"
	"github.com/daprfn/shop/runtime"
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

// Service is the order function.
type Service struct {
	store  bindings.StateStore
	stock  stock.Stock
	outbox *Outbox
	log    *slog.Logger
	now    func() time.Time
	limit  time.Duration
	keys   sync.Map // idempotency key -> *sync.Mutex, for requests in flight
}

// New returns the order function; each Create is bounded by createTimeout
// (DefaultCreateTimeout when 0).
func New(store bindings.StateStore, stock stock.Stock, outbox *Outbox, createTimeout time.Duration, log *slog.Logger) (*Service, error) {
	if store == nil || stock == nil || outbox == nil {
		return nil, errors.New("order: state store, stock and outbox are required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if createTimeout <= 0 {
		createTimeout = DefaultCreateTimeout
	}
	return &Service{store: store, stock: stock, outbox: outbox, log: log, now: time.Now, limit: createTimeout}, nil
}

// NewID returns an unguessable order id: "order-" and 128 random bits.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "order-" + hex.EncodeToString(b[:])
}

func idempotencyStateKey(k string) string {
	sum := sha256.Sum256([]byte(k))
	return "idempotency-" + hex.EncodeToString(sum[:16])
}

// Create places an order.
func (s *Service) Create(ctx context.Context, in CreateRequest) (CreateResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, s.limit)
	defer cancel()
	var idemKey string
	if in.idempotencyKey != "" {
		idemKey = idempotencyStateKey(in.idempotencyKey)
		mu, _ := s.keys.LoadOrStore(idemKey, &sync.Mutex{})
		mu.(*sync.Mutex).Lock()
		defer func() { mu.(*sync.Mutex).Unlock(); s.keys.Delete(idemKey) }()
		it, err := s.store.Get(ctx, idemKey)
		if err != nil {
			return CreateResponse{}, runtime.Unavailable(err, "checking the Idempotency-Key failed, try again")
		}
		if it.Found {
			var prev CreateResponse
			if err := json.Unmarshal(it.Value, &prev); err == nil {
				return prev, nil
			}
		}
	}

	id := NewID()
	avail, err := s.stock.Take(ctx, id, in.ProductID, in.Quantity)
	if err != nil {
		// The stock may have been taken all the same: its hold is settled
		// by the inventory's sweep, which finds no order under id.
		if e := runtime.Classify(err); e.Status == 404 {
			return CreateResponse{}, runtime.NotFound("product_not_found", "Product not found")
		}
		return CreateResponse{}, runtime.Unavailable(err, "the inventory is unavailable, try again")
	}
	if !avail.Available {
		return CreateResponse{}, ErrInsufficient
	}
	if avail.OrderID != "" {
		id = avail.OrderID
	}

	o := Order{ID: id, ProductID: in.ProductID, Quantity: in.Quantity, CustomerEmail: in.CustomerEmail,
		Status: "confirmed", CreatedAt: s.now().UTC()}
	resp := CreateResponse{OrderID: o.ID, Status: "Order created successfully"}
	orderJSON, _ := json.Marshal(o)
	ops := []bindings.StateOp{{Key: o.ID, Value: orderJSON}}
	if idemKey != "" {
		respJSON, _ := json.Marshal(resp)
		ops = append(ops, bindings.StateOp{Key: idemKey, Value: respJSON})
	}
	if err := s.outbox.Commit(ctx, o, ops); err != nil {
		// The transaction may still have landed (a deadline or a lost answer
		// says nothing either way), so the stock stays held: the inventory's
		// hold sweep confirms it if the order exists and gives it back if not,
		// once no Create can still store it. The outbox delivers the event if
		// the order exists.
		s.log.Warn("storing the order failed; its stock hold is left to the hold sweep", "order", o.ID, "error", err.Error())
		return CreateResponse{}, runtime.Unavailable(err, "storing order %s failed; it was probably not placed: GET /orders/%s tells, or retry with an Idempotency-Key", o.ID, o.ID)
	}
	s.stock.Confirm(stock.Taken{OrderID: o.ID, ProductID: o.ProductID})
	return resp, nil
}

// Find returns the stored order id; found is false when there is none
// (inventory.OrderLookup in the embedded mode).
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
	it, err := s.store.Get(ctx, in.ID)
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
