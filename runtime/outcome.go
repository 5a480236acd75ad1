package runtime

import (
	"context"
	"errors"
	"fmt"
	"net/http"
)

// Outcome is what the sidecar should do with a delivery once a handler ran.
type Outcome int

const (
	// Success means the delivery was handled; it is acknowledged.
	Success Outcome = iota
	// Retry means a transient failure; the sidecar should deliver it again.
	Retry
	// Drop means the delivery can never succeed (poison); it is not retried
	// and goes to the dead-letter topic where one is configured.
	Drop
)

// String returns the pub/sub status word for o: SUCCESS, RETRY or DROP.
func (o Outcome) String() string {
	switch o {
	case Success:
		return "SUCCESS"
	case Retry:
		return "RETRY"
	default:
		return "DROP"
	}
}

// Error is a failure a handler reports to its caller. Message and Code are
// shown to the caller ({"error": Message, "code": Code}); Err is the cause,
// logged but never shown.
type Error struct {
	Outcome Outcome // Retry or Drop
	Status  int     // HTTP status for invocations, e.g. 400, 404, 503
	Code    string  // stable, machine-readable, e.g. "invalid_argument"
	Message string  // for humans: what went wrong and what to do
	Err     error   // the cause, for logs only
}

// Error implements error.
func (e *Error) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Invalid reports bad input: 400 for invocations, DROP for events. code is
// the stable machine code, e.g. "invalid_quantity".
func Invalid(code, format string, args ...any) *Error {
	return &Error{Outcome: Drop, Status: http.StatusBadRequest, Code: code, Message: fmt.Sprintf(format, args...)}
}

// NotFound reports a missing resource: 404 for invocations, DROP for events.
func NotFound(code, format string, args ...any) *Error {
	return &Error{Outcome: Drop, Status: http.StatusNotFound, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Forbidden reports a caller that may not make this call: 403 for
// invocations, DROP for events.
func Forbidden(code, format string, args ...any) *Error {
	return &Error{Outcome: Drop, Status: http.StatusForbidden, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Conflict reports a request that clashes with the current state: 409, DROP.
func Conflict(code, format string, args ...any) *Error {
	return &Error{Outcome: Drop, Status: http.StatusConflict, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Unavailable reports a transient failure of a dependency: 503 for
// invocations, RETRY for events. err is logged, not shown.
func Unavailable(err error, format string, args ...any) *Error {
	return &Error{Outcome: Retry, Status: http.StatusServiceUnavailable, Code: "unavailable", Message: fmt.Sprintf(format, args...), Err: err}
}

// RetryLater wraps err as a transient failure (RETRY, 503).
func RetryLater(err error) *Error {
	return &Error{Outcome: Retry, Status: http.StatusServiceUnavailable, Code: "retry_later", Message: "temporarily unavailable, try again", Err: err}
}

// Poison wraps err as a permanent failure of this delivery (DROP, 422).
func Poison(err error) *Error {
	return &Error{Outcome: Drop, Status: http.StatusUnprocessableEntity, Code: "unprocessable", Message: "the request cannot be processed", Err: err}
}

// Classify turns any error into an *Error. nil stays nil. An *Error anywhere
// in err's chain is returned as is; a context deadline becomes a 504/RETRY;
// anything else is an internal 500/RETRY whose message hides the cause.
func Classify(err error) *Error {
	if err == nil {
		return nil
	}
	if e, ok := errors.AsType[*Error](err); ok {
		return e
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return &Error{Outcome: Retry, Status: http.StatusGatewayTimeout, Code: "timeout", Message: "the request timed out, try again", Err: err}
	}
	if errors.Is(err, context.Canceled) {
		return &Error{Outcome: Retry, Status: http.StatusServiceUnavailable, Code: "canceled", Message: "the request was canceled", Err: err}
	}
	return &Error{Outcome: Retry, Status: http.StatusInternalServerError, Code: "internal", Message: "internal error, try again later", Err: err}
}

// errorBody is the stable JSON shape of every error answer.
type errorBody struct {
	Error string `json:"error"`
	Code  string `json:"code"`
}

// ErrorJSON is the body of an error answer: {"error": Message, "code": Code}.
func (e *Error) ErrorJSON() []byte {
	b, _ := marshalJSON(errorBody{Error: e.Message, Code: e.Code})
	return b
}
