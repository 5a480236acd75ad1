package dapr

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	commonv1 "github.com/dapr/dapr/pkg/proto/common/v1"
	runtimev1 "github.com/dapr/dapr/pkg/proto/runtime/v1"
	"github.com/dapr/go-sdk/service/common"
	sdkgrpc "github.com/dapr/go-sdk/service/grpc"
	sdkhttp "github.com/dapr/go-sdk/service/http"
	"github.com/go-chi/chi/v5"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/daprfn/shop/runtime"
)

// The benchmarks compare the runtime's dispatch per trigger with a bare
// go-sdk service handler doing the same decode (and encode) by hand.

type checkReq struct {
	ProductID string `json:"productId"`
	Quantity  int    `json:"quantity"`
}

type checkResp struct {
	Available      bool   `json:"available"`
	ProductName    string `json:"productName"`
	RemainingStock int    `json:"remainingStock"`
}

type orderEvent struct {
	OrderID       string `json:"orderId"`
	CustomerEmail string `json:"customerEmail"`
	ProductID     string `json:"productId"`
	Quantity      int    `json:"quantity"`
}

var (
	checkBody = []byte(`{"productId":"product-1","quantity":2}`)
	eventData = []byte(`{"orderId":"order-0123456789abcdef0123456789abcdef","customerEmail":"customer@example.com","productId":"product-1","quantity":2}`)
	// What daprd POSTs to an HTTP app for a topic delivery.
	cloudEvent = `{"specversion":"1.0","id":"order-0123456789abcdef0123456789abcdef","source":"order-service","type":"com.daprfn.order.confirmed",` +
		`"datacontenttype":"application/json","pubsubname":"pubsub","topic":"orders","traceid":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",` +
		`"traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01","tracestate":"","time":"2026-11-25T10:00:00Z","data":` + string(eventData) + `}`
)

func check(_ context.Context, in checkReq) (checkResp, error) {
	return checkResp{Available: in.Quantity <= 10, ProductName: "Laptop", RemainingStock: 10 - in.Quantity}, nil
}

func notify(_ context.Context, ev runtime.Event[orderEvent]) error {
	if ev.Data.OrderID == "" {
		return runtime.Invalid("x", "no id")
	}
	return nil
}

func ourApp() *runtime.App {
	app := runtime.New(runtime.Options{})
	runtime.Invoke(app, "POST /check", check)
	runtime.Topic(app, runtime.Subscription{Pubsub: "pubsub", Topic: "orders", Route: "/orders"}, notify)
	runtime.Binding(app, "restock", func(context.Context, runtime.BindingEvent[struct{}]) error { return nil })
	return app
}

// sdkCheck is the go-sdk invocation handler doing by hand what
// runtime.Invoke does: decode, call, encode.
func sdkCheck(ctx context.Context, in *common.InvocationEvent) (*common.Content, error) {
	var req checkReq
	if err := json.Unmarshal(in.Data, &req); err != nil {
		return nil, err
	}
	resp, _ := check(ctx, req)
	out, err := json.Marshal(resp)
	return &common.Content{Data: out, ContentType: "application/json"}, err
}

func sdkHTTP(b *testing.B) http.Handler {
	mux := chi.NewRouter()
	s := sdkhttp.NewServiceWithMux("", mux)
	must(b, s.AddServiceInvocationHandler("/check", sdkCheck))
	must(b, s.AddTopicEventHandler(&common.Subscription{PubsubName: "pubsub", Topic: "orders", Route: "/orders"},
		func(_ context.Context, e *common.TopicEvent) (bool, error) {
			var ev orderEvent
			if err := json.Unmarshal(e.RawData, &ev); err != nil {
				return false, err
			}
			return false, nil
		}))
	must(b, s.AddBindingInvocationHandler("/restock", func(context.Context, *common.BindingEvent) ([]byte, error) { return nil, nil }))
	return mux
}

func sdkGRPC(b *testing.B) *sdkgrpc.Server {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	must(b, err)
	b.Cleanup(func() { lis.Close() })
	s := sdkgrpc.NewServiceWithGrpcServer(lis, grpc.NewServer()).(*sdkgrpc.Server)
	must(b, s.AddServiceInvocationHandler("check", sdkCheck))
	must(b, s.AddTopicEventHandler(&common.Subscription{PubsubName: "pubsub", Topic: "orders"}, func(_ context.Context, e *common.TopicEvent) (bool, error) {
		var ev orderEvent
		return false, json.Unmarshal(e.RawData, &ev)
	}))
	must(b, s.AddBindingInvocationHandler("restock", func(context.Context, *common.BindingEvent) ([]byte, error) { return nil, nil }))
	return s
}

func must(b *testing.B, err error) {
	if err != nil {
		b.Fatal(err)
	}
}

func serveLoop(b *testing.B, h http.Handler, method, path, ct, body string, want int) {
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.Header.Set("Content-Type", ct)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != want {
			b.Fatalf("status %d: %s", rec.Code, rec.Body.String())
		}
	}
}

func BenchmarkHTTPInvoke(b *testing.B) {
	b.Run("runtime", func(b *testing.B) {
		serveLoop(b, NewHTTPHandler(ourApp(), HTTPOptions{}), "POST", "/check", "application/json", string(checkBody), 200)
	})
	b.Run("go-sdk", func(b *testing.B) {
		serveLoop(b, sdkHTTP(b), "POST", "/check", "application/json", string(checkBody), 200)
	})
}

func BenchmarkHTTPTopic(b *testing.B) {
	b.Run("runtime", func(b *testing.B) {
		serveLoop(b, NewHTTPHandler(ourApp(), HTTPOptions{}), "POST", "/orders", runtime.ContentTypeCloudEvent, cloudEvent, 200)
	})
	b.Run("go-sdk", func(b *testing.B) {
		serveLoop(b, sdkHTTP(b), "POST", "/orders", runtime.ContentTypeCloudEvent, cloudEvent, 200)
	})
}

func BenchmarkHTTPBinding(b *testing.B) {
	b.Run("runtime", func(b *testing.B) {
		serveLoop(b, NewHTTPHandler(ourApp(), HTTPOptions{}), "POST", "/restock", "application/json", "", 200)
	})
	b.Run("go-sdk", func(b *testing.B) { serveLoop(b, sdkHTTP(b), "POST", "/restock", "application/json", "", 200) })
}

type appCallback interface {
	OnInvoke(context.Context, *commonv1.InvokeRequest) (*commonv1.InvokeResponse, error)
	OnTopicEvent(context.Context, *runtimev1.TopicEventRequest) (*runtimev1.TopicEventResponse, error)
	OnBindingEvent(context.Context, *runtimev1.BindingEventRequest) (*runtimev1.BindingEventResponse, error)
}

func grpcImpls(b *testing.B) map[string]appCallback {
	return map[string]appCallback{"runtime": newCallback(ourApp()), "go-sdk": sdkGRPC(b)}
}

func BenchmarkGRPCInvoke(b *testing.B) {
	for name, cb := range grpcImpls(b) {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req := &commonv1.InvokeRequest{Method: "check", ContentType: "application/json", Data: &anypb.Any{Value: checkBody},
					HttpExtension: &commonv1.HTTPExtension{Verb: commonv1.HTTPExtension_POST}}
				if _, err := cb.OnInvoke(context.Background(), req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkGRPCTopic(b *testing.B) {
	for name, cb := range grpcImpls(b) {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req := &runtimev1.TopicEventRequest{Id: "order-1", Source: "order-service", Type: "t", SpecVersion: "1.0",
					DataContentType: "application/json", Data: eventData, Topic: "orders", PubsubName: "pubsub", Path: "/orders"}
				r, err := cb.OnTopicEvent(context.Background(), req)
				if err != nil || r.GetStatus() != runtimev1.TopicEventResponse_SUCCESS {
					b.Fatal(err, r)
				}
			}
		})
	}
}

func BenchmarkGRPCBinding(b *testing.B) {
	for name, cb := range grpcImpls(b) {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := cb.OnBindingEvent(context.Background(), &runtimev1.BindingEventRequest{Name: "restock"}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
