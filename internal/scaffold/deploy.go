package scaffold

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/daprfn/shop/internal/launch"
)

// runFile is one deploy/dapr*.yaml, parsed.
type runFile struct {
	path     string // from the root
	raw      []byte
	file     *launch.File
	embedded *launch.App // the app that serves several functions, if any
}

// loadRunFiles reads and parses deploy/dapr*.yaml, once per Plan: the
// steps that change them all start from the files as they were.
func (r *repo) loadRunFiles() ([]runFile, error) {
	if r.files != nil {
		return r.files, nil
	}
	paths, err := filepath.Glob(filepath.Join(r.root, "deploy", "dapr*.yaml"))
	if err != nil || len(paths) == 0 {
		return nil, fmt.Errorf("no run file deploy/dapr*.yaml under %s (run shop new at the repository's root)", r.root)
	}
	var out []runFile
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		f, err := launch.Parse(p, raw)
		if err != nil {
			return nil, err
		}
		rel, _ := filepath.Rel(r.root, p)
		rf := runFile{path: rel, raw: raw, file: f}
		for i, a := range f.Apps {
			if strings.Contains(a.Env["FUNCTIONS"], ",") {
				rf.embedded = &f.Apps[i]
			}
		}
		out = append(out, rf)
	}
	r.files = out
	return out, nil
}

// ports is the new app's ports in every distributed run file.
type ports struct{ app, http, grpc, metrics, appMetrics, internal int }

// choosePorts picks, for each kind of port, one past the highest any run
// file uses, then moves on past any port taken already; a port asked for
// must be free.
func choosePorts(files []runFile, appPort int) (ports, error) {
	used := map[int]string{}
	var p ports
	for _, rf := range files {
		for _, a := range rf.file.Apps {
			for what, port := range map[string]int{"appPort": a.AppPort, "daprHTTPPort": a.DaprHTTPPort, "daprGRPCPort": a.DaprGRPCPort,
				"metricsPort": a.MetricsPort, "profilePort": a.ProfilePort, "daprInternalGRPCPort": a.DaprInternalPort, "appMetricsPort": a.AppMetricsPort} {
				if port != 0 {
					used[port] = fmt.Sprintf("%s of %s in %s", what, a.AppID, rf.path)
				}
			}
			if hp, err := strconv.Atoi(a.Env["HEALTH_PORT"]); err == nil && hp != 0 {
				used[hp] = fmt.Sprintf("HEALTH_PORT of %s in %s", a.AppID, rf.path)
			}
			p.app, p.http = max(p.app, a.AppPort), max(p.http, a.DaprHTTPPort)
			p.grpc, p.metrics = max(p.grpc, a.DaprGRPCPort), max(p.metrics, a.MetricsPort)
			p.appMetrics = max(p.appMetrics, a.AppMetricsPort)
			p.internal = max(p.internal, a.DaprInternalPort)
		}
	}
	if appPort != 0 {
		if what, clash := used[appPort]; clash {
			return p, fmt.Errorf("app port %d clashes with the %s: choose another or leave --app-port out", appPort, what)
		}
	}
	next := func(from int) int {
		for from++; used[from] != ""; from++ {
		}
		used[from] = "the new app"
		return from
	}
	if appPort != 0 {
		used[appPort] = "the new app"
		p.app = appPort
	} else {
		p.app = next(p.app)
	}
	p.http, p.grpc, p.metrics, p.appMetrics = next(p.http), next(p.grpc), next(p.metrics), next(p.appMetrics)
	if p.internal != 0 { // a run file across hosts names them
		p.internal = next(p.internal)
	}
	return p, nil
}

// runFiles adds the app to every distributed run file and the function to
// every embedded app.
func (r *repo) runFiles(m *model) ([]File, error) {
	files, err := r.loadRunFiles()
	if err != nil {
		return nil, err
	}
	for _, rf := range files {
		for _, a := range rf.file.Apps {
			if a.AppID == m.Name {
				return nil, fmt.Errorf("%s has an app %s already: choose another name", rf.path, m.Name)
			}
		}
	}
	var distributed []runFile
	for _, rf := range files {
		if rf.embedded == nil {
			distributed = append(distributed, rf)
		}
	}
	p, err := choosePorts(distributed, r.appPort)
	if err != nil {
		return nil, err
	}
	r.ports = p
	var out []File
	for _, rf := range files {
		var raw []byte
		if rf.embedded != nil {
			fns := rf.embedded.Env["FUNCTIONS"]
			line := regexp.MustCompile(`(?m)^([ \t]+FUNCTIONS:[ \t]*)` + regexp.QuoteMeta(fns) + `[ \t]*$`)
			if len(line.FindAllIndex(rf.raw, -1)) != 1 {
				return nil, fmt.Errorf("%s: the embedded app's FUNCTIONS: %s line is not where shop new looks for it", rf.path, fns)
			}
			raw = line.ReplaceAll(rf.raw, []byte("${1}"+fns+","+m.Name))
		} else {
			config, internal := "config/"+m.Name+".yaml", ""
			if rf.file.Hosts != nil { // across hosts: its access-control policy, the port other hosts call
				config = "config/hosts/" + m.Name + ".yaml"
				internal = fmt.Sprintf("  daprInternalGRPCPort: %d\n", p.internal)
			}
			app := fmt.Sprintf(`- appID: %[1]s
  configFilePath: %[7]s
  appDirPath: ../
  appPort: %[2]d
  daprHTTPPort: %[3]d
  daprGRPCPort: %[4]d
%[8]s  metricsPort: %[5]d
  appMetricsPort: %[6]d
  command: ["bin/shop", "serve"]
  env:
    FUNCTIONS: %[1]s
`, m.Name, p.app, p.http, p.grpc, p.metrics, p.appMetrics, config, internal)
			raw = append(bytes.TrimRight(slices.Clone(rf.raw), "\n"), '\n')
			raw = append(raw, app...)
		}
		f, err := launch.Parse(filepath.Join(r.root, rf.path), raw)
		if err != nil {
			return nil, fmt.Errorf("%s with %s: %w", rf.path, m.Name, err)
		}
		if rf.embedded == nil && f.Apps[len(f.Apps)-1].AppID != m.Name {
			return nil, fmt.Errorf("%s: apps is not the file's last section, so shop new cannot add %s to it", rf.path, m.Name)
		}
		out = append(out, File{Path: rf.path, Content: raw})
	}
	out = append(out, File{Path: "deploy/config/" + m.Name + ".yaml", Content: []byte(allowlist(m.Name)), New: true})
	for _, rf := range files {
		if rf.file.Hosts != nil {
			out = append(out, File{Path: "deploy/config/hosts/" + m.Name + ".yaml", New: true,
				Content: []byte(strings.Replace(allowlist(m.Name), "# The API allowlist", "# Across hosts (deploy/dapr-hosts.yaml): the API allowlist", 1) + accessControl)})
			break
		}
	}
	return out, nil
}

// accessControl ends a new app's Configuration across hosts and on
// Kubernetes, where sidecars talk mTLS: no other app may call it yet.
const accessControl = `  # Who may call this app from another sidecar, by the identity in its
  # certificate: nobody yet. Add a policy per caller and route, as in
  # deploy/config/hosts/inventory-service.yaml, here and in deploy/k8s.
  accessControl:
    defaultAction: deny
    trustDomain: public
`

func allowlist(name string) string {
	return fmt.Sprintf(`# The API allowlist of the %[1]s sidecar (written by shop new): daprd answers
# only these APIs.
# Over HTTP (the port callers use): service invocation, health probes and
# publishing CloudEvents. Everything else is refused, as an unknown route.
# Over gRPC, only what the app itself calls: metadata (the component check at
# start). Add state, publish, bindings or invoke here, and in the
# Configuration of deploy/k8s/%[1]s.yaml, when the function starts to call them.
apiVersion: dapr.io/v1alpha1
kind: Configuration
metadata:
  name: %[1]s
spec:
  api:
    allowed:
    - {name: invoke, version: v1.0, protocol: http}
    - {name: healthz, version: v1.0, protocol: http}
    - {name: publish, version: v1.0, protocol: http}
    - {name: metadata, version: v1.0, protocol: grpc}
`, name)
}

// component is one Dapr resource of a components directory.
type component struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name string `yaml:"name"`
	} `yaml:"metadata"`
	Spec struct {
		Type string `yaml:"type"`
	} `yaml:"spec"`
	Auth struct {
		SecretStore string `yaml:"secretStore"`
	} `yaml:"auth"`
	Scopes []string `yaml:"scopes"`
}

// components scopes the topics' pub/subs to the new app and writes a cron
// component per schedule into every set a run file loads.
func (r *repo) components(m *model) ([]File, error) {
	files, err := r.loadRunFiles()
	if err != nil {
		return nil, err
	}
	// Each components directory, with the app-id that serves the new
	// function there.
	dirs := map[string]string{}
	var order []string
	for _, rf := range files {
		for _, a := range rf.file.Apps {
			appID := m.Name // a distributed file: the new app's own id
			if rf.embedded != nil {
				if a.AppID != rf.embedded.AppID {
					continue
				}
				appID = a.AppID // the embedded app serves it
			}
			for _, d := range rf.file.Resources(a) {
				rel, _ := filepath.Rel(r.root, d)
				if _, seen := dirs[rel]; !seen {
					order = append(order, rel)
				}
				dirs[rel] = appID
			}
		}
	}
	var out []File
	for _, t := range m.Topics {
		found := false
		for _, dir := range order {
			path, c, raw, err := r.find(dir, t.Pubsub)
			if err != nil {
				return nil, err
			}
			if c == nil || !strings.HasPrefix(c.Spec.Type, "pubsub.") {
				continue
			}
			found = true
			if out, err = r.scope(out, path, c, raw, dirs[dir]); err != nil {
				return nil, err
			}
			if c.Auth.SecretStore == "" {
				continue
			}
			// The secret store the pub/sub reads its credentials from.
			spath, store, sraw, err := r.find(dir, c.Auth.SecretStore)
			if err != nil {
				return nil, err
			}
			if store == nil {
				return nil, fmt.Errorf("%s: its secret store %s is not in %s", path, c.Auth.SecretStore, dir)
			}
			if out, err = r.scope(out, spath, store, sraw, dirs[dir]); err != nil {
				return nil, err
			}
		}
		if !found {
			return nil, fmt.Errorf("topic %s/%s: no pub/sub component named %s in %s", t.Pubsub, t.Topic, t.Pubsub, strings.Join(order, ", "))
		}
	}
	for _, c := range m.Crons {
		for _, dir := range order {
			if !r.hasCron(dir) {
				continue // a set of extras, such as the email component alone
			}
			path := filepath.Join(dir, c.Component+".yaml")
			if _, err := os.Stat(filepath.Join(r.root, path)); err == nil {
				return nil, fmt.Errorf("%s exists already: choose another name", path)
			}
			out = append(out, File{Path: path, Content: []byte(cronComponent(m.Name, c, dirs[dir])), New: true})
		}
	}
	return out, nil
}

// scope adds appID to the scopes of the component c in path (raw, or its
// new content if an earlier step changed it), unless it is unscoped or has
// the app already.
func (r *repo) scope(out []File, path string, c *component, raw []byte, appID string) ([]File, error) {
	for _, f := range out {
		if f.Path == path {
			raw = f.Content
			if err := yaml.Unmarshal(raw, c); err != nil {
				return nil, err
			}
		}
	}
	if len(c.Scopes) == 0 || slices.Contains(c.Scopes, appID) {
		return out, nil
	}
	scoped, err := addScope(path, raw, appID)
	if err != nil {
		return nil, err
	}
	return replace(out, File{Path: path, Content: scoped}), nil
}

func replace(files []File, f File) []File {
	for i := range files {
		if files[i].Path == f.Path {
			files[i] = f
			return files
		}
	}
	return append(files, f)
}

// find returns the file of dir holding the component name.
func (r *repo) find(dir, name string) (string, *component, []byte, error) {
	paths, _ := filepath.Glob(filepath.Join(r.root, dir, "*.yaml"))
	for _, p := range paths {
		raw, err := os.ReadFile(p)
		if err != nil {
			return "", nil, nil, err
		}
		var c component
		if yaml.Unmarshal(raw, &c) != nil || c.Kind != "Component" || c.Metadata.Name != name {
			continue
		}
		rel, _ := filepath.Rel(r.root, p)
		return rel, &c, raw, nil
	}
	return "", nil, nil, nil
}

func (r *repo) hasCron(dir string) bool {
	paths, _ := filepath.Glob(filepath.Join(r.root, dir, "*.yaml"))
	for _, p := range paths {
		raw, _ := os.ReadFile(p)
		var c component
		if yaml.Unmarshal(raw, &c) == nil && c.Spec.Type == "bindings.cron" {
			return true
		}
	}
	return false
}

var scopesRE = regexp.MustCompile(`(?m)^scopes:\n((?:- .*\n)+)`)

// addScope adds appID to the scopes list at the end of a component file.
func addScope(path string, raw []byte, appID string) ([]byte, error) {
	loc := scopesRE.FindSubmatchIndex(raw)
	if loc == nil {
		return nil, fmt.Errorf("%s: its scopes list is not where shop new looks for it (a top-level scopes: with one \"- app-id\" a line)", path)
	}
	out := slices.Concat(raw[:loc[3]], []byte("- "+appID+"\n"), raw[loc[3]:])
	var c component
	if err := yaml.Unmarshal(out, &c); err != nil || !slices.Contains(c.Scopes, appID) {
		return nil, fmt.Errorf("%s: adding %s to its scopes failed", path, appID)
	}
	return out, nil
}

func cronComponent(name string, c cron, appID string) string {
	return fmt.Sprintf(`# Cron input binding of the %s function (written by shop new): fires %s.
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: %s
spec:
  type: bindings.cron
  version: v1
  metadata:
  - name: schedule
    value: %q
  - name: direction
    value: input
scopes:
- %s
`, name, c.Handler, c.Component, c.Schedule, appID)
}

// manifests writes deploy/k8s/NAME.yaml and scopes the Kubernetes pub/sub
// components to the new app.
func (r *repo) manifests(m *model) ([]File, error) {
	port := r.ports.app // as in the run files
	path := filepath.Join("deploy", "k8s", m.Name+".yaml")
	if _, err := os.Stat(filepath.Join(r.root, path)); err == nil {
		return nil, fmt.Errorf("%s exists already: choose another name", path)
	}
	var b strings.Builder
	fmt.Fprintf(&b, deploymentTmpl, m.Name, port)
	b.WriteString("---\n")
	b.WriteString(strings.Replace(allowlist(m.Name), "# The API allowlist", "# The Configuration: the API allowlist", 1) + accessControl)
	for _, c := range m.Crons {
		b.WriteString("---\n")
		b.WriteString(cronComponent(m.Name, c, m.Name))
	}
	for _, t := range m.Topics {
		fmt.Fprintf(&b, `---
# The %[1]s function's subscription to %[2]s/%[3]s, declared for operators (the
# app serves it programmatically too). Events it drops go to the dead-letter
# topic.
apiVersion: dapr.io/v2alpha1
kind: Subscription
metadata:
  name: %[1]s-%[3]s
spec:
  pubsubname: %[2]s
  topic: %[3]s
  routes:
    default: /%[3]s
  deadLetterTopic: %[3]s-%[1]s-deadletter
scopes:
- %[1]s
`, m.Name, t.Pubsub, t.Topic)
	}
	out := []File{{Path: path, Content: []byte(b.String()), New: true}}

	// The pub/subs the topics use, scoped in components.yaml too.
	const comps = "deploy/k8s/components.yaml"
	raw, err := r.read(comps)
	if err != nil {
		return nil, err
	}
	docs := bytes.Split(raw, []byte("\n---\n"))
	changed := false
	for _, t := range m.Topics {
		for i, d := range docs {
			var c component
			if yaml.Unmarshal(d, &c) != nil || c.Kind != "Component" || c.Metadata.Name != t.Pubsub || len(c.Scopes) == 0 || slices.Contains(c.Scopes, m.Name) {
				continue
			}
			withNL := append(slices.Clone(d), '\n')
			scoped, err := addScope(comps, withNL, m.Name)
			if err != nil {
				return nil, err
			}
			docs[i] = bytes.TrimSuffix(scoped, []byte("\n"))
			changed = true
		}
	}
	if changed {
		out = append(out, File{Path: comps, Content: bytes.Join(docs, []byte("\n---\n"))})
	}
	return out, nil
}

const deploymentTmpl = `# The %[1]s function as its own Dapr app (written by shop new).
apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[1]s
  labels:
    app: %[1]s
spec:
  replicas: 1
  selector:
    matchLabels:
      app: %[1]s
  template:
    metadata:
      labels:
        app: %[1]s
      annotations:
        dapr.io/enabled: "true"
        dapr.io/app-id: %[1]s
        dapr.io/app-port: "%[2]d"
        dapr.io/app-protocol: http
        # The sidecar's API allowlist (the Configuration below).
        dapr.io/config: %[1]s
        # daprd's API answers on loopback only: only the app beside it calls it.
        dapr.io/sidecar-listen-addresses: "[::1],127.0.0.1"
        dapr.io/enable-api-logging: "false"
        dapr.io/graceful-shutdown-seconds: "25"
        # On SIGTERM the sidecar stops delivering events and keeps its API up
        # for 10 s, so that the app's in-flight work can still save and
        # publish; without it daprd closes its components at once, and a
        # confirmation sent just then is not recorded and is sent again.
        dapr.io/block-shutdown-duration: "10s"
        # The sidecar's GC target, as the launcher sets it (docs/benchmarks.md).
        dapr.io/env: "GOGC=200"
        # Tokens both ways: the sidecar requires DAPR_API_TOKEN of the app's
        # calls and sends APP_API_TOKEN with its own. The injector gives them
        # to the sidecar only: the app's env below reads the same Secrets.
        dapr.io/api-token-secret: dapr-api-token
        dapr.io/app-token-secret: app-api-token
        # The app's own metrics (METRICS_PORT), for Prometheus.
        prometheus.io/scrape: "true"
        prometheus.io/port: "9190"
        prometheus.io/path: /metrics
    spec:
      terminationGracePeriodSeconds: 40
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
      containers:
      - name: shop
        image: ghcr.io/daprfn/shop:latest
        args: ["serve"]
        ports:
        - containerPort: %[2]d
          name: app
        - containerPort: 9190
          name: metrics
        env:
        # The two tokens of the annotations above, for the app.
        - name: DAPR_API_TOKEN
          valueFrom:
            secretKeyRef:
              name: dapr-api-token
              key: token
        - name: APP_API_TOKEN
          valueFrom:
            secretKeyRef:
              name: app-api-token
              key: token
        - name: FUNCTIONS
          value: %[1]s
        - name: APP_ID
          value: %[1]s
        # The kubelet probes the app from the pod's address; APP_API_TOKEN
        # keeps all but the probes to its own sidecar.
        - name: LISTEN_ADDRESS
          value: 0.0.0.0
        # The deployment's internal credential: internal routes require it.
        # The deployment's apps: the only ones the credential is sent to.
        - name: INTERNAL_APP_IDS
          value: order-service,inventory-service,notification-service,%[1]s
        - name: INTERNAL_TOKEN
          valueFrom:
            secretKeyRef:
              name: internal-token
              key: token
        - name: APP_PORT
          value: "%[2]d"
        - name: APP_PROTOCOL
          value: http
        - name: LOG_FORMAT
          value: json
        - name: GOMAXPROCS
          value: "1"
        - name: METRICS_PORT
          value: "9190"
        # Keep serving as long as the sidecar's API stays up after the pod is
        # told to go (block-shutdown-duration): Kubernetes stops sending it
        # new calls at once, but other sidecars keep their connections to
        # this one until it shuts down, and an app gone before its sidecar
        # fails their calls. Then drain.
        lifecycle:
          preStop:
            sleep:
              seconds: 10
        readinessProbe:
          httpGet:
            path: /readyz
            port: %[2]d
          periodSeconds: 5
        livenessProbe:
          httpGet:
            path: /healthz
            port: %[2]d
          periodSeconds: 10
        resources:
          requests:
            cpu: 50m
            memory: 32Mi
          limits:
            memory: 128Mi
        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities:
            drop: ["ALL"]
---
apiVersion: v1
kind: Service
metadata:
  name: %[1]s
spec:
  selector:
    app: %[1]s
  ports:
  - name: app
    port: %[2]d
    targetPort: %[2]d
`
