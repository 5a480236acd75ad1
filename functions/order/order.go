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

// Event is the order event published to the orders topic (the seed's shape).
type Event struct {
	OrderID       string `json:"orderId"`
	CustomerEmail string `json:"customerEmail"`
	ProductID     string `json:"productId"`
	Quantity      int    `json:"quantity"`
}

// EventOf returns o's event.
func EventOf(o Order) Event {
	return Event{OrderID: o.ID, CustomerEmail: o.CustomerEmail, ProductID: o.ProductID, Quantity: o.Quantity}
}

// Availability is the inventory's answer to a stock request.
type Availability struct {
	Available   bool
	ProductName string
	Remaining   int
}

// Stock is the inventory as the order function needs it.
type Stock interface {
	// Take takes qty of the product if there is enough. An unknown product is
	// an error that classifies as NotFound.
	Take(ctx context.Context, productID string, qty int) (Availability, error)
	// Release gives back what Take took for orderID, at most once per order.
	Release(ctx context.Context, orderID, productID string, qty int) error
}

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
	if r.ID == "" || len(r.ID) > 200 {
		return runtime.Invalid("invalid_order_id", "order id is required in the path: /orders/{id}")
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
	stock  Stock
	outbox *Outbox
	log    *slog.Logger
	now    func() time.Time
	keys   sync.Map // idempotency key -> *sync.Mutex, for requests in flight
}

// New returns the order function.
func New(store bindings.StateStore, stock Stock, outbox *Outbox, log *slog.Logger) (*Service, error) {
	if store == nil || stock == nil || outbox == nil {
		return nil, errors.New("order: state store, stock and outbox are required")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{store: store, stock: stock, outbox: outbox, log: log, now: time.Now}, nil
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

	avail, err := s.stock.Take(ctx, in.ProductID, in.Quantity)
	if err != nil {
		if e := runtime.Classify(err); e.Status == 404 {
			return CreateResponse{}, runtime.NotFound("product_not_found", "Product not found")
		}
		return CreateResponse{}, runtime.Unavailable(err, "the inventory is unavailable, try again")
	}
	if !avail.Available {
		return CreateResponse{}, ErrInsufficient
	}

	o := Order{ID: NewID(), ProductID: in.ProductID, Quantity: in.Quantity, CustomerEmail: in.CustomerEmail,
		Status: "confirmed", CreatedAt: s.now().UTC()}
	resp := CreateResponse{OrderID: o.ID, Status: "Order created successfully"}
	orderJSON, _ := json.Marshal(o)
	ops := []bindings.StateOp{{Key: o.ID, Value: orderJSON}}
	if idemKey != "" {
		respJSON, _ := json.Marshal(resp)
		ops = append(ops, bindings.StateOp{Key: idemKey, Value: respJSON})
	}
	if err := s.outbox.Commit(ctx, o, ops); err != nil {
		// Nothing was stored: give the stock back before answering.
		s.compensate(o)
		return CreateResponse{}, runtime.Unavailable(err, "storing the order failed, nothing was charged; try again")
	}
	return resp, nil
}

// compensate releases o's stock with a fresh deadline: the request's may be
// what failed.
func (s *Service) compensate(o Order) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.stock.Release(ctx, o.ID, o.ProductID, o.Quantity); err != nil {
		s.log.Error("compensation failed: stock stays taken", "order", o.ID, "product", o.ProductID, "quantity", o.Quantity, "error", err.Error())
		return
	}
	s.log.Warn("order failed after taking stock; stock released", "order", o.ID, "product", o.ProductID, "quantity", o.Quantity)
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
