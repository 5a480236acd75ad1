package dapr

import (
	"context"
	"crypto/subtle"
	"strings"
	"sync"
	"time"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/daprfn/shop/internal/workers"
	"github.com/daprfn/shop/runtime"
)

// NewGRPCServer returns a gRPC server that serves app to daprd over the gRPC
// app protocol (AppCallback and AppCallbackHealthCheck). appToken, when set,
// must arrive as dapr-api-token metadata on every call but the health check
// and the two discovery calls (see tokenExempt).
func NewGRPCServer(app *runtime.App, appToken string, opts ...grpc.ServerOption) *grpc.Server {
	if appToken != "" {
		opts = append(opts, grpc.UnaryInterceptor(tokenInterceptor(appToken)))
	}
	// Streams run on reused goroutines, whose stacks have grown to fit a
	// handler's outgoing calls (see internal/workers); more concurrent
	// streams than workers get goroutines of their own. First, so that the
	// caller's options can change it.
	opts = append([]grpc.ServerOption{grpc.NumStreamWorkers(streamWorkers)}, opts...)
	s := grpc.NewServer(opts...)
	cb := newCallback(app)
	runtimev1.RegisterAppCallbackServer(s, cb)
	runtimev1.RegisterAppCallbackHealthCheckServer(s, cb)
	return s
}

// tokenExempt are the calls that need no app token. daprd 1.18.2 sends none
// on ListTopicSubscriptions and ListInputBindings (pkg/runtime/processor:
// subscriber.go and binding/send.go call the app client without
// AddAppTokenToContext), so requiring it there would leave a gRPC app with
// APP_API_TOKEN without subscriptions and bindings. They only read what the
// app declares, as GET /dapr/subscribe does; every delivery needs the token.
var tokenExempt = []string{"/HealthCheck", "/ListTopicSubscriptions", "/ListInputBindings"}

func tokenInterceptor(token string) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
		for _, m := range tokenExempt {
			if strings.HasSuffix(info.FullMethod, m) {
				return next(ctx, req)
			}
		}
		md, _ := metadata.FromIncomingContext(ctx)
		got := md.Get("dapr-api-token")
		if len(got) == 0 || subtle.ConstantTimeCompare([]byte(got[0]), []byte(token)) != 1 {
			return nil, status.Error(codes.Unauthenticated, "missing or wrong dapr-api-token: the sidecar must run with the same APP_API_TOKEN as the app")
		}
		return next(ctx, req)
	}
}

type callback struct {
	runtimev1.UnimplementedAppCallbackServer
	runtimev1.UnimplementedAppCallbackHealthCheckServer
	app      *runtime.App
	messages messagePool
	entries  *workers.Pool // runs the events of bulk deliveries
}

// streamWorkers is how many goroutines of the gRPC server take streams.
const streamWorkers = 16

func newCallback(app *runtime.App) *callback {
	return &callback{app: app, entries: workers.New(0)}
}

func (c *callback) HealthCheck(context.Context, *emptypb.Empty) (*runtimev1.HealthCheckResponse, error) {
	return &runtimev1.HealthCheckResponse{}, nil
}

func (c *callback) OnInvoke(ctx context.Context, in *commonv1.InvokeRequest) (*commonv1.InvokeResponse, error) {
	m := c.messages.get()
	defer c.messages.put(m)
	m.Kind, m.Method, m.Path = runtime.KindInvoke, "POST", strings.TrimPrefix(in.GetMethod(), "/")
	m.ContentType, m.Body, m.Metadata = in.GetContentType(), in.GetData().GetValue(), incomingMetadata(ctx)
	if ext := in.GetHttpExtension(); ext != nil {
		m.Method = verb(ext.GetVerb())
		m.Query = ext.GetQuerystring()
	}
	reply := c.app.Dispatch(ctx, m)
	if e := runtime.Classify(reply.Err); e != nil {
		return nil, grpcError(e)
	}
	ct := reply.ContentType
	if ct == "" {
		ct = "application/json"
	}
	return &commonv1.InvokeResponse{Data: &anypb.Any{Value: reply.Body}, ContentType: ct}, nil
}

func (c *callback) ListTopicSubscriptions(context.Context, *emptypb.Empty) (*runtimev1.ListTopicSubscriptionsResponse, error) {
	subs := c.app.Subscriptions()
	out := &runtimev1.ListTopicSubscriptionsResponse{Subscriptions: make([]*runtimev1.TopicSubscription, len(subs))}
	for i, s := range subs {
		out.Subscriptions[i] = &runtimev1.TopicSubscription{
			PubsubName:      s.Pubsub,
			Topic:           s.Topic,
			Metadata:        s.Metadata,
			DeadLetterTopic: s.DeadLetterTopic,
			Routes:          &runtimev1.TopicRoutes{Default: s.Route},
		}
		if b := s.Bulk; b != nil {
			out.Subscriptions[i].BulkSubscribe = &runtimev1.BulkSubscribeConfig{
				Enabled:            true,
				MaxMessagesCount:   int32(b.MaxMessages),             //nolint:gosec // App.HandleTopic bounds it
				MaxAwaitDurationMs: int32(b.MaxAwait.Milliseconds()), //nolint:gosec // App.HandleTopic bounds it
			}
		}
	}
	return out, nil
}

// ceRequest is what OnTopicEvent's request and a bulk entry's CloudEvent
// have in common.
type ceRequest interface {
	GetId() string
	GetSource() string
	GetType() string
	GetSpecVersion() string
	GetDataContentType() string
	GetData() []byte
	GetExtensions() *structpb.Struct
}

func eventMeta(in ceRequest, pubsub, topic string) *runtime.EventMeta {
	meta := &runtime.EventMeta{
		ID:              in.GetId(),
		Source:          in.GetSource(),
		Type:            in.GetType(),
		SpecVersion:     in.GetSpecVersion(),
		DataContentType: in.GetDataContentType(),
		Pubsub:          pubsub,
		Topic:           topic,
	}
	if ext := in.GetExtensions(); ext != nil {
		meta.TraceParent = structString(ext, "traceparent")
		meta.TraceState = structString(ext, "tracestate")
		meta.Subject = structString(ext, "subject")
		if t, err := time.Parse(time.RFC3339Nano, structString(ext, "time")); err == nil {
			meta.Time = t
		}
	}
	return meta
}

func (c *callback) OnTopicEvent(ctx context.Context, in *runtimev1.TopicEventRequest) (*runtimev1.TopicEventResponse, error) {
	m := c.messages.get()
	defer c.messages.put(m)
	m.Kind, m.ContentType, m.Body, m.Metadata = runtime.KindTopic, in.GetDataContentType(), in.GetData(), incomingMetadata(ctx)
	m.Event = eventMeta(in, in.GetPubsubName(), in.GetTopic())
	reply := c.app.Dispatch(ctx, m)
	return &runtimev1.TopicEventResponse{Status: topicStatusPB(topicOutcome(reply.Err))}, nil
}

// OnBulkTopicEvent serves a bulk subscription (runtime.Subscription.Bulk):
// it runs each entry's event through the App as if it had come alone, all
// of them concurrently, and answers each entry's outcome, so daprd acks,
// redelivers or dead-letters every event on its own.
func (c *callback) OnBulkTopicEvent(ctx context.Context, in *runtimev1.TopicEventBulkRequest) (*runtimev1.TopicEventBulkResponse, error) {
	entries := in.GetEntries()
	c.app.Logger().Debug("bulk topic delivery", "pubsub", in.GetPubsubName(), "topic", in.GetTopic(), "events", len(entries))
	out := &runtimev1.TopicEventBulkResponse{Statuses: make([]*runtimev1.TopicEventBulkResponseEntry, len(entries))}
	md := incomingMetadata(ctx) // read-only, shared by the entries
	var wg sync.WaitGroup
	wg.Add(len(entries))
	for i, e := range entries {
		c.entries.Go(func() {
			defer wg.Done()
			out.Statuses[i] = &runtimev1.TopicEventBulkResponseEntry{
				EntryId: e.GetEntryId(),
				Status:  topicStatusPB(c.bulkEntry(ctx, in, e, md)),
			}
		})
	}
	wg.Wait()
	return out, nil
}

func (c *callback) bulkEntry(ctx context.Context, in *runtimev1.TopicEventBulkRequest, e *runtimev1.TopicEventBulkRequestEntry, md map[string]string) runtime.Outcome {
	m := c.messages.get()
	defer c.messages.put(m)
	m.Kind, m.Metadata = runtime.KindTopic, md
	if ce := e.GetCloudEvent(); ce != nil {
		m.ContentType, m.Body = ce.GetDataContentType(), ce.GetData()
		m.Event = eventMeta(ce, in.GetPubsubName(), in.GetTopic())
	} else {
		// A raw payload (rawPayload subscriptions): no envelope, no id.
		m.ContentType, m.Body = e.GetContentType(), e.GetBytes()
		m.Event = &runtime.EventMeta{Pubsub: in.GetPubsubName(), Topic: in.GetTopic(), DataContentType: e.GetContentType()}
	}
	return topicOutcome(c.app.Dispatch(ctx, m).Err)
}

func (c *callback) ListInputBindings(context.Context, *emptypb.Empty) (*runtimev1.ListInputBindingsResponse, error) {
	return &runtimev1.ListInputBindingsResponse{Bindings: c.app.Bindings()}, nil
}

func (c *callback) OnBindingEvent(ctx context.Context, in *runtimev1.BindingEventRequest) (*runtimev1.BindingEventResponse, error) {
	m := c.messages.get()
	defer c.messages.put(m)
	m.Kind, m.Name, m.Body, m.Metadata = runtime.KindBinding, in.GetName(), in.GetData(), in.GetMetadata()
	reply := c.app.Dispatch(ctx, m)
	if e := runtime.Classify(reply.Err); e != nil {
		return nil, grpcError(e)
	}
	return &runtimev1.BindingEventResponse{}, nil
}

func topicStatusPB(o runtime.Outcome) runtimev1.TopicEventResponse_TopicEventResponseStatus {
	switch o {
	case runtime.Success:
		return runtimev1.TopicEventResponse_SUCCESS
	case runtime.Retry:
		return runtimev1.TopicEventResponse_RETRY
	}
	return runtimev1.TopicEventResponse_DROP
}

// grpcError maps an *Error to a gRPC status whose code daprd turns back into
// the same HTTP status for HTTP callers; the stable code rides along as an
// ErrorInfo reason.
func grpcError(e *runtime.Error) error {
	st := status.New(grpcCode(e.Status), e.Message)
	if d, err := st.WithDetails(&errdetails.ErrorInfo{Reason: e.Code, Domain: "daprfn"}); err == nil {
		st = d
	}
	return st.Err()
}

func grpcCode(httpStatus int) codes.Code {
	switch httpStatus {
	case 400, 413, 422:
		return codes.InvalidArgument
	case 401:
		return codes.Unauthenticated
	case 403:
		return codes.PermissionDenied
	case 404:
		return codes.NotFound
	case 409:
		return codes.Aborted
	case 429:
		return codes.ResourceExhausted
	case 503:
		return codes.Unavailable
	case 504:
		return codes.DeadlineExceeded
	}
	return codes.Internal
}

func structString(s *structpb.Struct, key string) string {
	if v, ok := s.GetFields()[key]; ok {
		return v.GetStringValue()
	}
	return ""
}

func incomingMetadata(ctx context.Context) map[string]string {
	md, ok := metadata.FromIncomingContext(ctx)
	if !ok {
		return nil
	}
	out := make(map[string]string, len(md))
	for k, v := range md {
		if len(v) > 0 {
			out[k] = v[0]
		}
	}
	return out
}

func verb(v commonv1.HTTPExtension_Verb) string {
	switch v {
	case commonv1.HTTPExtension_GET:
		return "GET"
	case commonv1.HTTPExtension_POST:
		return "POST"
	case commonv1.HTTPExtension_PUT:
		return "PUT"
	case commonv1.HTTPExtension_DELETE:
		return "DELETE"
	}
	return v.String()
}

// messagePool recycles Messages: a delivery's Message lives only until
// Dispatch returns (handlers get decoded copies, never the Message itself).
// Each transport value owns one; there is no package-level pool.
type messagePool struct{ p sync.Pool }

func (mp *messagePool) get() *runtime.Message {
	if m, ok := mp.p.Get().(*runtime.Message); ok {
		return m
	}
	return new(runtime.Message)
}

func (mp *messagePool) put(m *runtime.Message) {
	m.Reset()
	mp.p.Put(m)
}
