package deploy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/daprfn/shop/internal/launch"
)

type doc struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Spec   yaml.Node `yaml:"spec"`
	Scopes []string  `yaml:"scopes"`
}

func readDocs(t *testing.T, pattern string) []doc {
	t.Helper()
	files, err := filepath.Glob(pattern)
	require.NoError(t, err)
	require.NotEmpty(t, files, pattern)
	var out []doc
	for _, f := range files {
		raw, err := os.ReadFile(f)
		require.NoError(t, err)
		dec := yaml.NewDecoder(bytes.NewReader(raw))
		for {
			var d doc
			err := dec.Decode(&d)
			if errors.Is(err, io.EOF) {
				break
			}
			require.NoError(t, err, f)
			require.NotEmpty(t, d.Kind, "%s: a document without kind", f)
			out = append(out, d)
		}
	}
	return out
}

func decodeSpec[T any](t *testing.T, d doc) T {
	t.Helper()
	var v T
	require.NoError(t, d.Spec.Decode(&v), "%s %s", d.Kind, d.Metadata.Name)
	return v
}

// codeDefaults runs `shop env` and returns every variable's default.
func codeDefaults(t *testing.T) map[string]string {
	t.Helper()
	out, err := exec.Command("go", "run", "../cmd/shop", "env").CombinedOutput()
	require.NoError(t, err, string(out))
	defaults := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 3 && f[0] == strings.ToUpper(f[0]) && f[0] != "KEY" {
			defaults[f[0]] = f[2]
		}
	}
	require.Contains(t, defaults, "ORDERS_TOPIC")
	return defaults
}

type deployment struct {
	Template struct {
		Metadata struct {
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"metadata"`
		Spec struct {
			Containers []struct {
				Env []struct {
					Name  string `yaml:"name"`
					Value string `yaml:"value"`
				} `yaml:"env"`
				Ports []struct {
					ContainerPort int `yaml:"containerPort"`
				} `yaml:"ports"`
				ReadinessProbe struct {
					HTTPGet struct {
						Path string `yaml:"path"`
						Port int    `yaml:"port"`
					} `yaml:"httpGet"`
				} `yaml:"readinessProbe"`
			} `yaml:"containers"`
		} `yaml:"spec"`
	} `yaml:"template"`
}

type service struct {
	Selector map[string]string `yaml:"selector"`
	Ports    []struct {
		Port       int `yaml:"port"`
		TargetPort int `yaml:"targetPort"`
	} `yaml:"ports"`
}

func TestKubernetesManifestsAgreeWithRunFileAndCode(t *testing.T) {
	run, err := launch.Load("dapr.yaml")
	require.NoError(t, err)
	defaults := codeDefaults(t)
	docs := readDocs(t, "k8s/*.yaml")

	byKind := map[string]map[string]doc{}
	for _, d := range docs {
		if byKind[d.Kind] == nil {
			byKind[d.Kind] = map[string]doc{}
		}
		byKind[d.Kind][d.Metadata.Name] = d
	}
	require.Len(t, byKind["Deployment"], len(run.Apps), "one Deployment per app of deploy/dapr.yaml")

	for _, app := range run.Apps {
		t.Run(app.AppID, func(t *testing.T) {
			d, ok := byKind["Deployment"][app.AppID]
			require.True(t, ok, "Deployment %s", app.AppID)
			dep := decodeSpec[deployment](t, d)
			ann := dep.Template.Metadata.Annotations
			assert.Equal(t, "true", ann["dapr.io/enabled"])
			assert.Equal(t, app.AppID, ann["dapr.io/app-id"])
			assert.Equal(t, itoa(app.AppPort), ann["dapr.io/app-port"])
			proto := app.AppProtocol
			if proto == "" {
				proto = "http"
			}
			assert.Equal(t, proto, ann["dapr.io/app-protocol"])
			_, hasConfig := byKind["Configuration"][ann["dapr.io/config"]]
			assert.True(t, hasConfig, "dapr.io/config names a Configuration")
			assert.Equal(t, "GOGC="+launch.DefaultDaprdGOGC, ann["dapr.io/env"], "the sidecar runs with the launcher's GC target")
			require.Len(t, dep.Template.Spec.Containers, 1)
			c := dep.Template.Spec.Containers[0]
			env := map[string]string{}
			for _, e := range c.Env {
				env[e.Name] = e.Value
			}
			assert.Equal(t, app.Env["FUNCTIONS"], env["FUNCTIONS"])
			assert.Equal(t, run.Common.Env["GOMAXPROCS"], env["GOMAXPROCS"], "the app runs with the run file's Go settings")
			assert.Equal(t, "0.0.0.0", env["LISTEN_ADDRESS"], "the kubelet probes the app from the pod's address")
			assert.Contains(t, env, "INTERNAL_TOKEN", "internal routes and event signatures need the deployment's credential")
			peers := strings.Split(env["INTERNAL_APP_IDS"], ",")
			for _, id := range []string{defaults["INVENTORY_APP_ID"], defaults["ORDER_APP_ID"], app.AppID} {
				assert.Contains(t, peers, id, "the credential goes to the deployment's apps (INTERNAL_APP_IDS)")
			}
			assert.Equal(t, "[::1],127.0.0.1", ann["dapr.io/sidecar-listen-addresses"], "the sidecar's API answers on loopback only")
			assert.Equal(t, "true", ann["prometheus.io/scrape"], "Prometheus scrapes the app's own metrics")
			assert.Equal(t, env["METRICS_PORT"], ann["prometheus.io/port"], "at the port it serves them on")
			assert.Equal(t, "/metrics", ann["prometheus.io/path"])
			assert.NotZero(t, app.AppMetricsPort, "the run file gives the app its own metrics port too")
			assert.Equal(t, itoa(app.AppPort), env["APP_PORT"])
			assert.Equal(t, proto, env["APP_PROTOCOL"])
			require.NotEmpty(t, c.Ports)
			assert.Equal(t, app.AppPort, c.Ports[0].ContainerPort)
			probePort := app.AppPort
			if proto == "grpc" {
				assert.Equal(t, app.Env["HEALTH_PORT"], env["HEALTH_PORT"], "gRPC apps serve probes on HEALTH_PORT")
				probePort = atoi(t, env["HEALTH_PORT"])
			}
			assert.Equal(t, "/readyz", c.ReadinessProbe.HTTPGet.Path)
			assert.Equal(t, probePort, c.ReadinessProbe.HTTPGet.Port)

			svc := decodeSpec[service](t, byKind["Service"][app.AppID])
			assert.Equal(t, app.AppID, svc.Selector["app"])
			require.NotEmpty(t, svc.Ports)
			assert.Equal(t, app.AppPort, svc.Ports[0].TargetPort)
			if web := app.Env["STOREFRONT_PORT"]; web != "" { // the storefront's page, on a listener of its own
				assert.Equal(t, web, env["STOREFRONT_PORT"])
				var containerPorts, targets []int
				for _, p := range c.Ports {
					containerPorts = append(containerPorts, p.ContainerPort)
				}
				for _, p := range svc.Ports {
					targets = append(targets, p.TargetPort)
				}
				assert.Contains(t, containerPorts, atoi(t, web), "the container declares the page's port")
				assert.Contains(t, targets, atoi(t, web), "the Service reaches the page")
			}
		})
	}

	appIDs := make([]string, len(run.Apps))
	for i, a := range run.Apps {
		appIDs[i] = a.AppID
	}
	t.Run("components", func(t *testing.T) {
		local := map[string]doc{}
		for _, d := range readDocs(t, "../components/redis/*.yaml") {
			local[d.Metadata.Name] = d
		}
		for _, d := range readDocs(t, "../components/email-files/*.yaml") {
			local[d.Metadata.Name] = d
		}
		want := []string{defaults["STATESTORE"], defaults["PUBSUB"], defaults["ORDERSTORE_BINDING"], defaults["EMAIL_BINDING"], defaults["RESTOCK_BINDING"], defaults["OUTBOX_SWEEP_BINDING"], defaults["HOLD_SWEEP_BINDING"], defaults["EMAIL_SWEEP_BINDING"], defaults["NOTIFICATION_STATESTORE"]}
		for _, name := range want {
			_, ok := byKind["Component"][name]
			require.True(t, ok, "component %s the code uses is in k8s/components.yaml", name)
		}
		// Every Kubernetes component (the shop's, and the crons of functions
		// shop new added) has its local twin, scoped to the same apps of
		// deploy/dapr.yaml.
		for name, k := range byKind["Component"] {
			l, ok := local[name]
			if !assert.True(t, ok, "component %s is in components/redis or components/email-files", name) {
				continue
			}
			assert.ElementsMatch(t, l.Scopes, k.Scopes, "scopes of %s agree between local and Kubernetes", name)
			assert.NotEmpty(t, k.Scopes, "%s is scoped", name)
			for _, s := range k.Scopes {
				assert.Contains(t, appIDs, s, "%s is scoped to an app of deploy/dapr.yaml", name)
			}
		}
		for name, l := range local {
			typ := decodeSpec[struct {
				Type string `yaml:"type"`
			}](t, l).Type
			if _, ok := byKind["Component"][name]; !ok && l.Kind == "Component" {
				assert.True(t, strings.HasPrefix(typ, "secretstores."), "local component %s has a Kubernetes twin (only the local secret store has none)", name)
			}
		}
	})

	t.Run("subscription", func(t *testing.T) {
		subs := byKind["Subscription"]
		require.NotEmpty(t, subs)
		type subSpec struct {
			Pubsubname string `yaml:"pubsubname"`
			Topic      string `yaml:"topic"`
			Routes     struct {
				Default string `yaml:"default"`
			} `yaml:"routes"`
			DeadLetterTopic string `yaml:"deadLetterTopic"`
			BulkSubscribe   struct {
				Enabled            bool `yaml:"enabled"`
				MaxMessagesCount   int  `yaml:"maxMessagesCount"`
				MaxAwaitDurationMs int  `yaml:"maxAwaitDurationMs"`
			} `yaml:"bulkSubscribe"`
		}
		notified := 0
		for name, d := range subs {
			assert.Equal(t, "dapr.io/v2alpha1", d.APIVersion)
			s := decodeSpec[subSpec](t, d)
			require.Len(t, d.Scopes, 1, "subscription %s is one app's", name)
			assert.Contains(t, appIDs, d.Scopes[0], "subscription %s is scoped to an app of deploy/dapr.yaml", name)
			assert.NotEmpty(t, s.DeadLetterTopic, "subscription %s has a dead-letter topic", name)
			_, ok := byKind["Component"][s.Pubsubname]
			assert.True(t, ok, "subscription %s names a pub/sub of components.yaml", name)
			if d.Scopes[0] != "notification-service" {
				continue
			}
			notified++
			assert.Equal(t, defaults["PUBSUB"], s.Pubsubname)
			assert.Equal(t, defaults["ORDERS_TOPIC"], s.Topic)
			assert.Equal(t, defaults["ORDERS_DEADLETTER_TOPIC"], s.DeadLetterTopic)
			assert.Equal(t, "/orders", s.Routes.Default, "the seed's route, used when notification runs alone")
			assert.True(t, s.BulkSubscribe.Enabled, "the same bulk delivery the app declares")
			assert.Equal(t, defaults["NOTIFICATION_BULK"], strconv.Itoa(s.BulkSubscribe.MaxMessagesCount))
			await, err := time.ParseDuration(defaults["NOTIFICATION_BULK_AWAIT"])
			require.NoError(t, err)
			assert.EqualValues(t, await.Milliseconds(), s.BulkSubscribe.MaxAwaitDurationMs)
		}
		assert.Equal(t, 1, notified, "the notification's subscription")
	})

	t.Run("resiliency", func(t *testing.T) {
		res := byKind["Resiliency"]
		require.Len(t, res, 1)
		for _, d := range res {
			s := decodeSpec[struct {
				Targets struct {
					Apps       map[string]map[string]string `yaml:"apps"`
					Components map[string]map[string]any    `yaml:"components"`
				} `yaml:"targets"`
			}](t, d)
			assert.NotEmpty(t, s.Targets.Apps[defaults["INVENTORY_APP_ID"]]["circuitBreaker"], "the inventory call has a circuit breaker")
			assert.Contains(t, s.Targets.Components, defaults["PUBSUB"])
		}
	})
}

func TestDockerfileIsMultiStageStaticNonRoot(t *testing.T) {
	raw, err := os.ReadFile("../Dockerfile")
	require.NoError(t, err)
	s := string(raw)
	assert.Equal(t, 2, strings.Count(s, "\nFROM "), "two stages")
	assert.Contains(t, s, "CGO_ENABLED=0")
	assert.Contains(t, s, "nonroot")
	assert.Contains(t, s, "USER 65532")
}

func itoa(n int) string { return strconv.Itoa(n) }

func atoi(t *testing.T, s string) int {
	n, err := strconv.Atoi(s)
	require.NoError(t, err, s)
	return n
}

// TestNoSecretInlineInComponents: every credential-like metadata item of
// every shipped component comes from a secret store (secretKeyRef), never a
// value written into the YAML.
func TestNoSecretInlineInComponents(t *testing.T) {
	secretish := []string{"password", "connectionstring", "token", "secret", "key", "user"}
	var files []string
	for _, p := range []string{"../components/*/*.yaml", "k8s/components.yaml"} {
		m, err := filepath.Glob(p)
		require.NoError(t, err)
		files = append(files, m...)
	}
	checked := 0
	for _, d := range readDocs(t, "../components/*/*.yaml") {
		checked += checkNoInlineSecret(t, d, secretish)
	}
	for _, d := range readDocs(t, "k8s/components.yaml") {
		checked += checkNoInlineSecret(t, d, secretish)
	}
	assert.NotZero(t, checked, "credentials were found and checked in %d files", len(files))
}

func checkNoInlineSecret(t *testing.T, d doc, secretish []string) int {
	t.Helper()
	if d.Kind != "Component" {
		return 0
	}
	spec := decodeSpec[struct {
		Metadata []struct {
			Name         string    `yaml:"name"`
			Value        string    `yaml:"value"`
			SecretKeyRef yaml.Node `yaml:"secretKeyRef"`
		} `yaml:"metadata"`
	}](t, d)
	checked := 0
	for _, m := range spec.Metadata {
		name := strings.ToLower(m.Name)
		if name == "secretsfile" || name == "keyprefix" || strings.HasPrefix(m.Value, "file:") { // a local SQLite file holds no credential
			continue
		}
		for _, s := range secretish {
			if strings.Contains(name, s) || strings.Contains(strings.ToLower(m.Value), "password=") {
				checked++
				assert.Empty(t, m.Value, "%s: metadata %s is written inline; use a secretKeyRef", d.Metadata.Name, m.Name)
				assert.NotZero(t, m.SecretKeyRef.Kind, "%s: metadata %s must be a secretKeyRef", d.Metadata.Name, m.Name)
				break
			}
		}
	}
	return checked
}

// apiSpec is a Configuration's spec.api.
type apiSpec struct {
	API struct {
		Allowed []struct {
			Name     string `yaml:"name"`
			Version  string `yaml:"version"`
			Protocol string `yaml:"protocol"`
		} `yaml:"allowed"`
		Denied []any `yaml:"denied"`
	} `yaml:"api"`
}

func allowlist(t *testing.T, d doc) []string {
	t.Helper()
	spec := decodeSpec[apiSpec](t, d)
	var out []string
	for _, a := range spec.API.Allowed {
		out = append(out, a.Protocol+" "+a.Version+" "+a.Name)
	}
	return out
}

// Every sidecar, in every run file and in Kubernetes, runs with an API
// allowlist: over HTTP only invocation, health and publishing (the seed's
// contract and CloudEvents posted through the sidecar); over gRPC what its
// app uses. The run files' and the manifests' lists are the same.
func TestEverySidecarHasAnAPIAllowlist(t *testing.T) {
	httpAPIs := []string{"http v1.0 invoke", "http v1.0 healthz", "http v1.0 publish"}
	k8s := map[string]doc{}
	for _, d := range readDocs(t, "k8s/*.yaml") {
		if d.Kind == "Configuration" {
			k8s[d.Metadata.Name] = d
		}
	}
	runFiles, err := filepath.Glob("dapr*.yaml")
	require.NoError(t, err)
	require.Len(t, runFiles, 5)
	for _, file := range runFiles {
		run, err := launch.Load(file)
		require.NoError(t, err)
		for _, app := range run.Apps {
			require.NotEmpty(t, app.ConfigFilePath, "%s: %s names its sidecar's Configuration", file, app.AppID)
			docs := readDocs(t, app.ConfigFilePath)
			require.Len(t, docs, 1)
			require.Equal(t, "Configuration", docs[0].Kind)
			got := allowlist(t, docs[0])
			var over []string
			for _, a := range got {
				if strings.HasPrefix(a, "http ") {
					over = append(over, a)
				}
			}
			assert.ElementsMatch(t, httpAPIs, over, "%s: %s: over HTTP the seed's contract, health and publishing only", file, app.AppID)
			assert.Empty(t, decodeSpec[apiSpec](t, docs[0]).API.Denied, "an allowlist, not a denylist")
			if strings.Contains(app.Env["FUNCTIONS"], ",") {
				continue // the embedded app: no Deployment of its own
			}
			kd, ok := k8s[app.AppID]
			if assert.True(t, ok, "deploy/k8s has a Configuration %s", app.AppID) {
				assert.Equal(t, got, allowlist(t, kd), "%s: the manifests' allowlist is the run file's", app.AppID)
			}
		}
	}
}

// accessSpec is a Configuration's spec.accessControl.
type accessSpec struct {
	AccessControl *struct {
		DefaultAction string `yaml:"defaultAction"`
		TrustDomain   string `yaml:"trustDomain"`
		Policies      []struct {
			AppID         string `yaml:"appId"`
			DefaultAction string `yaml:"defaultAction"`
			TrustDomain   string `yaml:"trustDomain"`
			Namespace     string `yaml:"namespace"`
			Operations    []struct {
				Name     string   `yaml:"name"`
				HTTPVerb []string `yaml:"httpVerb"`
				Action   string   `yaml:"action"`
			} `yaml:"operations"`
		} `yaml:"policies"`
	} `yaml:"accessControl"`
}

// designCalls are the calls the design makes from one app's sidecar to
// another's (docs/architecture.md): the order function takes stock, the
// inventory's hold sweep (in bulk) and the notification's check of an
// unsigned event read orders, the storefront places orders, shows the stock
// and every app's function counters. A gRPC app's route has no verb: daprd
// matches its operation name only.
var designCalls = []string{
	"inventory-service -> order-service: POST /orders/lookup",
	"inventory-service -> order-service: GET /orders/*",
	"notification-service -> order-service: GET /orders/*",
	"storefront -> order-service: POST /orders",
	"storefront -> order-service: GET /runtime/metrics",
	"order-service -> inventory-service: /lease",
	"order-service -> inventory-service: /reserve",
	"order-service -> inventory-service: /confirm",
	"order-service -> inventory-service: /check",
	"storefront -> inventory-service: /inventory",
	"storefront -> inventory-service: /runtime/metrics",
	"storefront -> notification-service: /runtime/metrics",
}

// Across hosts and on Kubernetes, where sidecars talk mTLS, each app's
// Configuration denies every call but the design's, and both say the same;
// the single-host run files, without mTLS, have no policy (every call
// would be denied without a certificate to tell callers apart).
func TestAccessControlAllowsTheDesignsCallsOnly(t *testing.T) {
	k8s := map[string]doc{}
	for _, d := range readDocs(t, "k8s/*.yaml") {
		if d.Kind == "Configuration" {
			k8s[d.Metadata.Name] = d
		}
	}
	hosts, err := launch.Load("dapr-hosts.yaml")
	require.NoError(t, err)
	require.NotNil(t, hosts.Hosts, "dapr-hosts.yaml runs across hosts")
	var allowed []string
	for _, app := range hosts.Apps {
		require.Equal(t, "config/hosts/"+app.AppID+".yaml", app.ConfigFilePath, "%s's sidecar across hosts has its policy", app.AppID)
		docs := readDocs(t, app.ConfigFilePath)
		require.Len(t, docs, 1)
		acl := decodeSpec[accessSpec](t, docs[0]).AccessControl
		require.NotNil(t, acl, "%s has an access-control policy", app.AppID)
		assert.Equal(t, "deny", acl.DefaultAction, "%s: a caller without a policy is denied", app.AppID)
		assert.Equal(t, "public", acl.TrustDomain)
		for _, p := range acl.Policies {
			assert.Equal(t, "deny", p.DefaultAction, "%s: %s may call only what its policy lists", app.AppID, p.AppID)
			assert.Equal(t, "public", p.TrustDomain)
			assert.Equal(t, "default", p.Namespace)
			for _, op := range p.Operations {
				require.Equal(t, "allow", op.Action, "%s: %s %s: policies list what is allowed", app.AppID, p.AppID, op.Name)
				if app.AppProtocol == "grpc" {
					assert.Empty(t, op.HTTPVerb, "%s runs on gRPC, where daprd matches no verb: %s", app.AppID, op.Name)
					allowed = append(allowed, p.AppID+" -> "+app.AppID+": "+op.Name)
					continue
				}
				require.NotEmpty(t, op.HTTPVerb, "%s runs on HTTP: %s names its verbs", app.AppID, op.Name)
				for _, v := range op.HTTPVerb {
					allowed = append(allowed, p.AppID+" -> "+app.AppID+": "+v+" "+op.Name)
				}
			}
		}
		kd, ok := k8s[app.AppID]
		if assert.True(t, ok, "deploy/k8s has a Configuration %s", app.AppID) {
			assert.Equal(t, acl, decodeSpec[accessSpec](t, kd).AccessControl, "%s: Kubernetes has the same policy", app.AppID)
			assert.Equal(t, allowlist(t, docs[0]), allowlist(t, kd), "%s: the same allowlist as on Kubernetes", app.AppID)
		}
	}
	assert.ElementsMatch(t, designCalls, allowed, "the policies allow exactly the design's calls")

	runFiles, err := filepath.Glob("dapr*.yaml")
	require.NoError(t, err)
	for _, file := range runFiles {
		run, err := launch.Load(file)
		require.NoError(t, err)
		if run.Hosts != nil {
			continue
		}
		for _, app := range run.Apps {
			for _, d := range readDocs(t, app.ConfigFilePath) {
				assert.Nil(t, decodeSpec[accessSpec](t, d).AccessControl, "%s: %s runs without mTLS, so without a policy", file, app.AppID)
			}
		}
	}
}
