package scaffold

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/daprfn/shop/internal/launch"
)

// copyRepo copies what shop new reads and writes (the function table, the
// run files, components, manifests, functions/) into a temporary root.
func copyRepo(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	for _, dir := range []string{"cmd/shop", "deploy", "components", "functions"} {
		src := filepath.Join("..", "..", dir)
		require.NoError(t, filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			rel, _ := filepath.Rel(filepath.Join("..", ".."), path)
			if d.IsDir() {
				return os.MkdirAll(filepath.Join(root, rel), 0o755)
			}
			raw, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(root, rel), raw, 0o644)
		}))
	}
	return root
}

// snapshot is every file under root with its content.
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	require.NoError(t, filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		raw, err := os.ReadFile(path)
		out[strings.TrimPrefix(path, root)] = string(raw)
		return err
	}))
	return out
}

func TestBadInputIsRefusedAndWritesNothing(t *testing.T) {
	root := copyRepo(t)
	before := snapshot(t, root)
	for _, c := range []struct {
		name string
		spec Spec
		want string
	}{
		{"an existing function", Spec{Name: "order", Invoke: []string{"POST /x"}}, "functions/order exists already"},
		{"an upper-case name", Spec{Name: "Shipping", Topics: []string{"pubsub/orders"}}, "lowercase Go identifier"},
		{"a dash", Spec{Name: "ship-it", Topics: []string{"pubsub/orders"}}, "lowercase Go identifier"},
		{"a keyword", Spec{Name: "func", Topics: []string{"pubsub/orders"}}, "neither a Go keyword"},
		{"a predeclared name", Spec{Name: "error", Topics: []string{"pubsub/orders"}}, "nor a predeclared name"},
		{"no trigger", Spec{Name: "shipping"}, "no trigger"},
		{"a route without method", Spec{Name: "shipping", Invoke: []string{"/quote"}}, `route "/quote": want "METHOD /path"`},
		{"a lower-case method", Spec{Name: "shipping", Invoke: []string{"post /quote"}}, `route "post /quote"`},
		{"an unbalanced wildcard", Spec{Name: "shipping", Invoke: []string{"GET /quotes/{id"}}, `route "GET /quotes/{id"`},
		{"two routes, one handler", Spec{Name: "shipping", Invoke: []string{"POST /quote", "POST /quote"}}, "would both be handled by PostQuote"},
		{"a topic without pubsub", Spec{Name: "shipping", Topics: []string{"orders"}}, `want PUBSUB/TOPIC`},
		{"an unknown pubsub", Spec{Name: "shipping", Topics: []string{"kafka/orders"}}, "no pub/sub component named kafka"},
		{"a bad schedule", Spec{Name: "shipping", Crons: []string{"every minute"}}, `cron "every minute"`},
		{"a zero interval", Spec{Name: "shipping", Crons: []string{"@every 0s"}}, "positive duration"},
		{"a route daprd posts a topic to", Spec{Name: "shipping", Invoke: []string{"POST /orders"}, Topics: []string{"pubsub/orders"}}, "collides with topic pubsub/orders"},
		{"a port clash", Spec{Name: "shipping", Invoke: []string{"POST /quote"}, AppPort: 3001}, "app port 3001 clashes with the appPort of inventory-service"},
	} {
		t.Run(c.name, func(t *testing.T) {
			files, err := Plan(root, c.spec)
			require.Error(t, err)
			assert.Contains(t, err.Error(), c.want)
			assert.Nil(t, files)
		})
	}
	assert.Equal(t, before, snapshot(t, root), "nothing was written")
}

func TestANewFunctionReachesEveryPlaceItRunsFrom(t *testing.T) {
	root := copyRepo(t)
	files, err := Plan(root, Spec{Name: "shipping", Topics: []string{"pubsub/orders"}, Crons: []string{"@every 2s"}, Invoke: []string{"POST /quote"}, Internal: []string{"GET /quotes/{id}"}})
	require.NoError(t, err)
	require.NoError(t, Apply(root, files))
	read := func(path string) string {
		raw, err := os.ReadFile(filepath.Join(root, path))
		require.NoError(t, err)
		return string(raw)
	}

	handlers := read("functions/shipping/shipping.go")
	for _, want := range []string{
		`runtime.Invoke(app, "POST /quote", s.PostQuote)`,
		`runtime.Invoke(app, "GET /quotes/{id}", s.GetQuotes, runtime.Internal)`,
		`runtime.Topic(app, runtime.Subscription{Pubsub: "pubsub", Topic: "orders"}, s.OnOrders)`,
		`runtime.Binding(app, "shipping-cron", s.Tick)`,
		"func (r PostQuoteRequest) Validate() error",
		"func (s *Service) OnOrders(ctx context.Context, ev runtime.Event[orderevent.Event]) error",
	} {
		assert.Contains(t, handlers, want)
	}
	assert.Contains(t, read("cmd/shop/functions.go"), `{name: "shipping", config: shippingfn.Config{}, register: registerShipping},`)
	assert.Contains(t, read("cmd/shop/functions.go"), `shippingfn "github.com/daprfn/shop/functions/shipping"`)

	// Its own app in each distributed run file, on ports nobody else uses,
	// and served by the embedded app.
	var ports []int
	for _, file := range []string{"deploy/dapr.yaml", "deploy/dapr-postgres.yaml", "deploy/dapr-smtp.yaml"} {
		f, err := launch.Load(filepath.Join(root, file))
		require.NoError(t, err)
		a := f.Apps[len(f.Apps)-1]
		assert.Equal(t, "shipping", a.AppID, file)
		assert.Equal(t, "shipping", a.Env["FUNCTIONS"], file)
		assert.Equal(t, "config/shipping.yaml", a.ConfigFilePath, file)
		if ports == nil {
			ports = []int{a.AppPort, a.DaprHTTPPort, a.DaprGRPCPort, a.MetricsPort, a.AppMetricsPort}
		}
		assert.Equal(t, ports, []int{a.AppPort, a.DaprHTTPPort, a.DaprGRPCPort, a.MetricsPort, a.AppMetricsPort}, "the same ports in every run file")
	}
	assert.Equal(t, []int{3004, 3504, 50005, 9094, 9194}, ports, "past the storefront's")
	emb, err := launch.Load(filepath.Join(root, "deploy/dapr-embedded.yaml"))
	require.NoError(t, err)
	assert.Equal(t, "order,inventory,notification,storefront,shipping", emb.Apps[0].Env["FUNCTIONS"])
	for _, f := range files {
		assert.True(t, strings.HasSuffix(string(f.Content), "\n"), "%s ends with a newline", f.Path)
	}

	// Its topic's pub/sub is scoped to it, its cron is a component of each set.
	for _, set := range []string{"redis", "postgres-rabbitmq"} {
		var c component
		require.NoError(t, yaml.Unmarshal([]byte(read("components/"+set+"/pubsub.yaml")), &c))
		assert.Contains(t, c.Scopes, "shipping", set)
		require.NoError(t, yaml.Unmarshal([]byte(read("components/"+set+"/secretstore.yaml")), &c))
		assert.Contains(t, c.Scopes, "shipping", "%s: the secret store the pub/sub reads its password from", set)
		require.NoError(t, yaml.Unmarshal([]byte(read("components/"+set+"/shipping-cron.yaml")), &c))
		assert.Equal(t, []string{"shipping"}, c.Scopes)
		assert.Equal(t, "bindings.cron", c.Spec.Type)
	}
	var cronEmb component
	require.NoError(t, yaml.Unmarshal([]byte(read("components/embedded/shipping-cron.yaml")), &cronEmb))
	assert.Equal(t, []string{"order-service"}, cronEmb.Scopes, "the embedded app serves it")
	assert.Contains(t, read("deploy/config/shipping.yaml"), "protocol: http")

	k8s := read("deploy/k8s/shipping.yaml")
	for _, want := range []string{"kind: Deployment", "dapr.io/app-id: shipping", `dapr.io/app-port: "3004"`, "kind: Configuration",
		"kind: Subscription", "deadLetterTopic: orders-shipping-deadletter", "name: shipping-cron", "name: internal-token"} {
		assert.Contains(t, k8s, want)
	}
	assert.Contains(t, read("deploy/k8s/components.yaml"), "- notification-service\n- storefront\n- shipping\n")

	_, err = Plan(root, Spec{Name: "shipping", Invoke: []string{"POST /x"}})
	require.ErrorContains(t, err, "exists already", "a second shop new of the same name is refused")
	next, err := Plan(root, Spec{Name: "quote", Invoke: []string{"POST /quote"}})
	require.NoError(t, err)
	for _, f := range next {
		if f.Path == "deploy/dapr.yaml" {
			assert.Contains(t, string(f.Content), "appPort: 3005", "the next function gets the next ports")
		}
	}
}

func TestSchedules(t *testing.T) {
	for s, ok := range map[string]bool{"@every 2s": true, "@every 1m30s": true, "@hourly": true, "0 */5 * * * *": true, "*/5 * * * *": true,
		"@every": false, "@every -1s": false, "* * *": false, "@sometimes": false, "0 0 * * * * * *": false} {
		assert.Equal(t, ok, checkSchedule(s) == nil, s)
	}
}
