package email_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/daprfn/shop/bindings"
	"github.com/daprfn/shop/bindings/email"
	"github.com/daprfn/shop/bindings/memory"
)

var msg = email.Message{ID: "order-1", From: "shop@example.com", To: "c@example.com", Subject: "Order confirmation order-1", Body: "line 1\nline 2\n"}

func TestFilesWriteOneEmlPerMessage(t *testing.T) {
	out := &memory.Bindings{}
	s := email.NewSender(out, "email", bindings.FixedType("bindings.localstorage"))
	require.NoError(t, s.Send(context.Background(), msg))
	require.NoError(t, s.Send(context.Background(), msg))
	calls := out.Calls("email")
	require.Len(t, calls, 2)
	assert.Equal(t, "create", calls[0].Operation)
	assert.Equal(t, "order-1.eml", calls[0].Metadata["fileName"])
	assert.Equal(t, calls[0].Metadata["fileName"], calls[1].Metadata["fileName"], "a message sent twice rewrites its one file")
	eml := string(calls[0].Data)
	for _, h := range []string{"From: shop@example.com\r\n", "To: c@example.com\r\n", "Subject: Order confirmation order-1\r\n", "Message-ID: <order-1@", "\r\n\r\nline 1\r\nline 2\r\n"} {
		assert.Contains(t, eml, h)
	}
}

func TestSMTPSendsTheBodyWithRecipientMetadata(t *testing.T) {
	out := &memory.Bindings{}
	s := email.NewSender(out, "email", bindings.FixedType("bindings.smtp"))
	require.NoError(t, s.Send(context.Background(), msg))
	calls := out.Calls("email")
	require.Len(t, calls, 1)
	assert.Equal(t, "c@example.com", calls[0].Metadata["emailTo"])
	assert.Equal(t, "Order confirmation order-1", calls[0].Metadata["subject"])
	assert.Equal(t, msg.Body, string(calls[0].Data))
}

func TestUnsupportedTypeIsAnError(t *testing.T) {
	s := email.NewSender(&memory.Bindings{}, "email", bindings.FixedType("bindings.http"))
	err := s.Check(context.Background())
	require.Error(t, err)
	assert.Contains(t, err.Error(), "bindings.http")
	assert.Error(t, s.Send(context.Background(), msg))
}
