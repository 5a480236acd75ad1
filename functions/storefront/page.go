package storefront

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"time"

	"github.com/daprfn/shop/bindings"
	"github.com/daprfn/shop/runtime"
)

//go:embed web
var web embed.FS

// Handler serves the page: GET / (HTML, CSS and JS, embedded), GET /events
// (the server-sent events the page follows) and POST /orders (the order
// form, placed through the order function).
func (s *Service) Handler() http.Handler {
	files, _ := fs.Sub(web, "web")
	mux := http.NewServeMux()
	mux.Handle("GET /", http.FileServerFS(files))
	mux.HandleFunc("GET /events", s.serveEvents)
	mux.HandleFunc("POST /orders", s.serveOrder)
	return pageHeaders(mux)
}

// pageHeaders keeps the page to itself: its own scripts and styles only,
// not framed, no referrer sent on.
func pageHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cache-Control", "no-cache")
		h.ServeHTTP(w, r)
	})
}

// Placed is the answer to an order placed from the page.
type Placed struct {
	OrderID string `json:"orderId"`
	Status  string `json:"status"`
}

// orderForm is what the page sends; the order function checks it.
type orderForm struct {
	ProductID string `json:"productId"`
	Quantity  any    `json:"quantity"`
}

// PlaceOrder places the order the page sent (the order function's JSON:
// productId, quantity, customerEmail) through the order function, and shows
// it as placed. The order function's own error answers come back as they
// are: a bad quantity is its 400 with its message.
func (s *Service) PlaceOrder(ctx context.Context, body []byte) (Placed, error) {
	at := s.now().UTC()
	out, err := s.shop.Invoker.Invoke(ctx, s.shop.Orders, "POST", "orders", body)
	if err != nil {
		return Placed{}, s.orderRefused(err)
	}
	var p Placed
	if err := json.Unmarshal(out, &p); err != nil || !runtime.SafeID(p.OrderID) {
		return Placed{}, runtime.Unavailable(errors.New("the order function's answer has no order id"), "the order may not be placed: check the feed before you try again")
	}
	var form orderForm
	_ = json.Unmarshal(body, &form) // it decoded at the order function
	qty, _ := form.Quantity.(float64)
	s.feed.add(eventOrder, Step{OrderID: p.OrderID, Step: StepPlaced, ProductID: form.ProductID, Quantity: int(qty), At: at})
	s.stockChanged()
	return p, nil
}

// orderRefused turns the order function's refusal into the page's answer:
// its own status, message and code for a 4xx, else a 503 of ours.
func (s *Service) orderRefused(err error) error {
	var ie *bindings.InvokeError
	if errors.As(err, &ie) && ie.Status >= 400 && ie.Status < 500 {
		var b struct{ Error, Code string }
		if json.Unmarshal([]byte(ie.Body), &b) == nil && b.Error != "" && b.Code != "" {
			return &runtime.Error{Outcome: runtime.Drop, Status: ie.Status, Code: b.Code, Message: b.Error}
		}
		return &runtime.Error{Outcome: runtime.Drop, Status: ie.Status, Code: "order_refused", Message: "the order function refused the order", Err: err}
	}
	s.log.Warn("placing an order failed", "app", s.shop.Orders, "error", err.Error())
	return runtime.Unavailable(err, "the shop cannot take orders right now, try again")
}

// maxOrderBody is the largest order the page may send.
const maxOrderBody = 4 << 10

// orderTimeout bounds one order from the page; the order function's own
// ORDER_TIMEOUT (20 s by default) ends it first.
const orderTimeout = 30 * time.Second

func (s *Service) serveOrder(w http.ResponseWriter, r *http.Request) {
	// Only a script of the page's own origin can send JSON: a form another
	// site posts here is refused.
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		writeError(w, &runtime.Error{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type", Message: "send the order as JSON (Content-Type: application/json)"})
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxOrderBody))
	if err != nil {
		writeError(w, &runtime.Error{Status: http.StatusRequestEntityTooLarge, Code: "body_too_large", Message: "an order is at most 4 KiB of JSON"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), orderTimeout)
	defer cancel()
	p, err := s.PlaceOrder(ctx, body)
	if err != nil {
		writeError(w, err)
		return
	}
	b, _ := json.Marshal(p)
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(b)
}

func writeError(w http.ResponseWriter, err error) {
	e := runtime.Classify(err)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.Status)
	_, _ = w.Write(e.ErrorJSON())
}

// How a page's stream goes: at most eventsPerWrite feed events per write
// and one write per writeGap, so that a busy shop costs each page a few
// writes a second (a page that falls behind is told how many events it
// skipped); a comment every keepAlive keeps idle connections open.
const (
	eventsPerWrite = 50
	writeGap       = 200 * time.Millisecond
	keepAlive      = 15 * time.Second
	writeTimeout   = 10 * time.Second
)

// serveEvents streams the feed to one page as server-sent events: first
// the latest stock and counters and the recent events (those after
// Last-Event-ID when the page reconnects), then every change.
func (s *Service) serveEvents(w http.ResponseWriter, r *http.Request) {
	leave, ok := s.feed.join()
	if !ok {
		writeError(w, &runtime.Error{Status: http.StatusServiceUnavailable, Code: "too_many_pages", Message: "too many pages follow the shop right now, try again later"})
		return
	}
	defer leave()
	last := r.Header.Get("Last-Event-ID")
	if last == "" {
		last = r.URL.Query().Get("lastEventId")
	}
	p := &page{}
	p.after, p.resumed = s.feed.cursor(last)

	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	buf := []byte("retry: 2000\n\n") // reconnect after 2 s
	idle := time.NewTicker(keepAlive)
	defer idle.Stop()
	for {
		changed := s.feed.changes()
		buf = s.feed.next(buf, p, eventsPerWrite)
		if len(buf) > 0 {
			_ = rc.SetWriteDeadline(time.Now().Add(writeTimeout))
			if _, err := w.Write(buf); err != nil {
				return
			}
			if err := rc.Flush(); err != nil {
				return
			}
			buf = buf[:0]
			if !s.pause(r.Context(), writeGap) {
				return
			}
			continue // what came during the pause goes now
		}
		select {
		case <-changed:
		case <-idle.C:
			buf = append(buf, ": keep-alive\n\n"...)
		case <-r.Context().Done():
			return
		case <-s.feed.done:
			return
		}
	}
}

// pause waits d; false when the page or the storefront went away first.
func (s *Service) pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	case <-s.feed.done:
		return false
	}
}
