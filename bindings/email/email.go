package email

import (
	"context"
	"fmt"
	"mime"
	"strings"
	"time"

	"github.com/daprfn/shop/bindings"
)

// Message is one email.
type Message struct {
	ID      string // unique, e.g. the order id; names the .eml file
	From    string
	To      string
	Subject string
	Body    string // plain text
}

// Kind is how messages leave: as files or over SMTP.
type Kind string

const (
	// Files writes one .eml file per message (bindings.localstorage).
	Files Kind = "bindings.localstorage"
	// SMTP sends through a mail server (bindings.smtp).
	SMTP Kind = "bindings.smtp"
)

// Sender sends messages through one output binding.
type Sender struct {
	out    bindings.OutputBinding
	name   string
	typeOf bindings.TypeResolver
	now    func() time.Time
}

// NewSender returns a Sender for the output binding name; typeOf tells its
// component type ("bindings.localstorage" or "bindings.smtp").
func NewSender(out bindings.OutputBinding, name string, typeOf bindings.TypeResolver) *Sender {
	return &Sender{out: out, name: name, typeOf: typeOf, now: time.Now}
}

// Idempotent reports whether sending the same message twice has the effect
// of sending it once: true for files (<ID>.eml is rewritten), false for SMTP.
func (s *Sender) Idempotent(ctx context.Context) (bool, error) {
	k, err := s.kind(ctx)
	return k == Files, err
}

// Check resolves the binding's type and says whether it is supported.
func (s *Sender) Check(ctx context.Context) error {
	_, err := s.kind(ctx)
	return err
}

func (s *Sender) kind(ctx context.Context) (Kind, error) {
	t, err := s.typeOf(ctx)
	if err != nil {
		return "", fmt.Errorf("email binding %q: %w", s.name, err)
	}
	if k := Kind(t); k == Files || k == SMTP {
		return k, nil
	}
	return "", fmt.Errorf("email binding %q has type %q: want bindings.localstorage (.eml files) or bindings.smtp", s.name, t)
}

// Send sends m. Files are named <ID>.eml: sending the same message again
// (a redelivery after a crash between the send and its record) rewrites the
// same file, so each order has one email file. Over SMTP the body goes to the
// binding, which sets its own headers.
func (s *Sender) Send(ctx context.Context, m Message) error {
	kind, err := s.kind(ctx)
	if err != nil {
		return err
	}
	var data []byte
	md := map[string]string{}
	switch kind {
	case SMTP:
		data = []byte(m.Body)
		md["emailTo"], md["subject"] = m.To, m.Subject
		if m.From != "" {
			md["emailFrom"] = m.From
		}
	default:
		now := s.now()
		data = []byte(m.RFC5322(now))
		md["fileName"] = m.ID + ".eml"
	}
	if _, err := s.out.InvokeBinding(ctx, s.name, "create", data, md); err != nil {
		return fmt.Errorf("send email %s to %s: %w", m.ID, m.To, err)
	}
	return nil
}

// RFC5322 renders m as an Internet message dated at.
func (m Message) RFC5322(at time.Time) string {
	var b strings.Builder
	fmt.Fprintf(&b, "From: %s\r\n", m.From)
	fmt.Fprintf(&b, "To: %s\r\n", m.To)
	fmt.Fprintf(&b, "Subject: %s\r\n", mime.QEncoding.Encode("utf-8", m.Subject))
	fmt.Fprintf(&b, "Date: %s\r\n", at.UTC().Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <%s@daprfn.shop>\r\n", m.ID)
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
	b.WriteString(strings.ReplaceAll(m.Body, "\n", "\r\n"))
	return b.String()
}
