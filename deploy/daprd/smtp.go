package main

import (
	"context"

	"github.com/dapr/components-contrib/bindings"
	"github.com/dapr/components-contrib/bindings/smtp"
	"github.com/dapr/kit/logger"
)

// perCallSMTP is the SMTP output binding with a mailer of its own for every
// send. The upstream binding (components-contrib v1.18.3) merges each
// request's metadata (emailTo, subject, ...) into the component's own
// metadata in place, so two sends at once can swap recipients and
// subjects: a customer gets another's confirmation and someone gets none.
// A mailer per call parses the component's metadata again (microseconds)
// and shares nothing.
type perCallSMTP struct {
	bindings.OutputBinding // answers Operations and GetComponentMetadata
	meta                   bindings.Metadata
	// callLog is the per-send mailers' logger: errors only, since each one's
	// Init would repeat the component's start-up warnings on every email.
	callLog logger.Logger
}

func newPerCallSMTP(log logger.Logger) bindings.OutputBinding {
	callLog := logger.NewLogger("dapr.contrib.smtp.send")
	callLog.SetOutputLevel(logger.ErrorLevel)
	return &perCallSMTP{OutputBinding: smtp.NewSMTP(log), callLog: callLog}
}

func (p *perCallSMTP) Init(ctx context.Context, meta bindings.Metadata) error {
	p.meta = meta
	return p.OutputBinding.Init(ctx, meta) // checks the metadata once, at start
}

func (p *perCallSMTP) Invoke(ctx context.Context, req *bindings.InvokeRequest) (*bindings.InvokeResponse, error) {
	m := smtp.NewSMTP(p.callLog)
	if err := m.Init(ctx, p.meta); err != nil {
		return nil, err
	}
	defer m.Close()
	return m.Invoke(ctx, req)
}
