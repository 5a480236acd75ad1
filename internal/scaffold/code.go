package scaffold

import (
	"bytes"
	"fmt"
	"go/format"
	"os"
	"path/filepath"
	"strings"
	"text/template"
)

// repo is the repository Plan reads.
type repo struct {
	root    string
	appPort int       // Spec.AppPort
	ports   ports     // the new app's, once runFiles chose them
	files   []runFile // the run files, as read once
}

func (r *repo) read(path string) ([]byte, error) {
	b, err := os.ReadFile(filepath.Join(r.root, path))
	if err != nil {
		return nil, fmt.Errorf("read %s (run shop new at the repository's root): %w", path, err)
	}
	return b, nil
}

// tableFile holds the function table; the new line goes before its end.
const (
	tableFile = "cmd/shop/functions.go"
	tableEnd  = "\n}\n\n// functionNames lists"
)

// checkNew refuses a name the repository already uses.
func (r *repo) checkNew(m *model) error {
	if _, err := os.Stat(filepath.Join(r.root, "functions", m.Name)); err == nil {
		return fmt.Errorf("functions/%s exists already: choose another name", m.Name)
	}
	table, err := r.read(tableFile)
	if err != nil {
		return err
	}
	if bytes.Contains(table, []byte(fmt.Sprintf("{name: %q", m.Name))) {
		return fmt.Errorf("the function table (%s) has %s already: choose another name", tableFile, m.Name)
	}
	if !bytes.Contains(table, []byte(tableEnd)) {
		return fmt.Errorf("%s: the function table's end (%q) is not where shop new looks for it", tableFile, tableEnd)
	}
	return nil
}

var funcs = template.FuncMap{
	"lower": strings.ToLower,
	"upper": strings.ToUpper,
	"camel": camel,
	"path": func(r route) string {
		var b strings.Builder
		for _, s := range r.Segments {
			b.WriteString("/")
			if strings.HasPrefix(s, "{") {
				b.WriteString("x-" + strings.Trim(s, "{}"))
			} else {
				b.WriteString(s)
			}
		}
		return b.String()
	},
	"body": func(r route) bool { return r.Method == "POST" || r.Method == "PUT" || r.Method == "PATCH" },
}

// functionPackage writes functions/NAME: doc.go, the handlers, their test.
func (r *repo) functionPackage(m *model) ([]File, error) {
	var out []File
	for _, f := range []struct{ path, tmpl string }{
		{"functions/NAME/doc.go", docTmpl},
		{"functions/NAME/NAME.go", handlerTmpl},
		{"functions/NAME/NAME_test.go", testTmpl},
		{"cmd/shop/fn_NAME.go", registerTmpl},
	} {
		path := strings.ReplaceAll(f.path, "NAME", m.Name)
		code, err := render(path, f.tmpl, m)
		if err != nil {
			return nil, err
		}
		out = append(out, File{Path: path, Content: code, New: true})
	}
	return out, nil
}

// render executes a Go template and gofmts the result.
func render(path, tmpl string, m *model) ([]byte, error) {
	t, err := template.New(path).Funcs(funcs).Parse(tmpl)
	if err != nil {
		return nil, fmt.Errorf("template of %s: %w", path, err)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, m); err != nil {
		return nil, fmt.Errorf("template of %s: %w", path, err)
	}
	code, err := format.Source(b.Bytes())
	if err != nil {
		return nil, fmt.Errorf("generated %s does not parse: %w\n%s", path, err, b.String())
	}
	return code, nil
}

// table adds the function's line to the function table.
func (r *repo) table(m *model) ([]File, error) {
	raw, err := r.read(tableFile)
	if err != nil {
		return nil, err
	}
	line := fmt.Sprintf("\n\t{name: %q, config: %s.Config{}, register: register%s},", m.Name, m.Alias(), m.Type)
	i := bytes.Index(raw, []byte(tableEnd))
	out := append(append(append([]byte{}, raw[:i]...), line...), raw[i:]...)
	code, err := format.Source(out)
	if err != nil {
		return nil, fmt.Errorf("%s with %s's line does not parse: %w", tableFile, m.Name, err)
	}
	code = bytes.Replace(code, []byte("import (\n"), []byte(fmt.Sprintf("import (\n\t%s %q\n", m.Alias(), "github.com/daprfn/shop/functions/"+m.Name)), 1)
	if code, err = format.Source(code); err != nil {
		return nil, fmt.Errorf("%s with %s's import does not parse: %w", tableFile, m.Name, err)
	}
	return []File{{Path: tableFile, Content: code}}, nil
}

const docTmpl = `// Package {{.Name}} is the {{.Name}} function, written by shop new: its
// inputs, their checks and its handlers. It knows nothing of Dapr; the
// runtime calls the handlers from the triggers Register names.
package {{.Name}}
`

const handlerTmpl = `package {{.Name}}

import (
	"context"
	"log/slog"
{{- if .NeedsStrings}}
	"strings"
{{- end}}
{{if .NeedsOrderEvent}}
	"github.com/daprfn/shop/functions/orderevent"
{{- end}}
	"github.com/daprfn/shop/runtime"
)

// Config is the function's own configuration, read from the environment
// under the prefix {{.Name | upper}}_ (envconfig tags, like cmd/shop's Config).
type Config struct{}

// Service is the {{.Name}} function.
type Service struct {
	cfg Config
	log *slog.Logger
}

// New returns the function.
func New(cfg Config, log *slog.Logger) (*Service, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{cfg: cfg, log: log}, nil
}

// Register wires the function's triggers into app.
func Register(app *runtime.App, s *Service) {
{{- range .Routes}}
	runtime.Invoke(app, {{printf "%q" .Pattern}}, s.{{.Handler}}{{if .Internal}}, runtime.Internal{{end}})
{{- end}}
{{- range .Topics}}
	runtime.Topic(app, runtime.Subscription{Pubsub: {{printf "%q" .Pubsub}}, Topic: {{printf "%q" .Topic}}}, s.{{.Handler}})
{{- end}}
{{- range .Crons}}
	runtime.Binding(app, {{printf "%q" .Component}}, s.{{.Handler}})
{{- end}}
}
{{range .Routes}}
// {{.Handler}}Request is the input of {{.Pattern}}.
type {{.Handler}}Request struct {
{{- if body .}}
	ID string ` + "`json:\"id\"`" + `
{{- end}}
{{- range .Params}}
	{{camel .}} string ` + "`json:\"-\"`" + ` // the path's {{"{"}}{{.}}{{"}"}}
{{- end}}
}
{{if .Params}}
// BindRequest implements runtime.RequestBinder: the path's values.
func (r *{{.Handler}}Request) BindRequest(req runtime.Request) error {
{{- range .Params}}
	r.{{camel .}} = req.PathValue({{printf "%q" .}})
{{- end}}
	return nil
}
{{end}}
// Validate implements runtime.Validator: a failure is a JSON 400 and the
// handler is not called.
func (r {{.Handler}}Request) Validate() error {
{{- if body .}}
	if strings.TrimSpace(r.ID) == "" {
		return runtime.Invalid("invalid_id", "id is required")
	}
{{- end}}
{{- range .Params}}
	if !runtime.SafeID(r.{{camel .}}) {
		return runtime.Invalid("invalid_{{.}}", "{{.}} must be 1 to 200 letters, digits, '-', '_' or '.'")
	}
{{- end}}
	return nil
}

// {{.Handler}}Response is the answer of {{.Pattern}}.
type {{.Handler}}Response struct {
	Status string ` + "`json:\"status\"`" + `
}

// {{.Handler}} handles {{.Pattern}}{{if .Internal}} (internal: only the deployment's own functions may call it){{end}}.
func (s *Service) {{.Handler}}(ctx context.Context, in {{.Handler}}Request) ({{.Handler}}Response, error) {
	s.log.InfoContext(ctx, "{{$.Name}}: {{.Pattern}}")
	return {{.Handler}}Response{Status: "received"}, nil
}
{{end}}
{{- range .Topics}}
{{- if not .OrderEvent}}
// {{.Event}} is the data of an event on {{.Pubsub}}/{{.Topic}}: name its
// fields after what the publisher sends; others are ignored.
type {{.Event}} struct {
	ID string ` + "`json:\"id\"`" + `
}

// Validate implements runtime.Validator: an event that fails it is dropped
// (to the dead-letter topic when there is one) and the handler is not called.
func (e {{.Event}}) Validate() error {
	if strings.TrimSpace(e.ID) == "" {
		return runtime.Invalid("invalid_event", "event without id")
	}
	return nil
}
{{end}}
// {{.Handler}} handles an event on {{.Pubsub}}/{{.Topic}}{{if .OrderEvent}}, the shop's order
// events (orderevent.Event; its Validate checks the shape only: anyone may
// publish, so check an event before acting on it, with its SignedBy or an
// orderevent.Lookup, as docs/writing-functions.md shows){{end}}. A nil error acknowledges it;
// runtime.RetryLater(err) has it redelivered, runtime.Invalid drops it.
// Dapr delivers at least once: handle a repeat as the first.
func (s *Service) {{.Handler}}(ctx context.Context, ev runtime.Event[{{.Event}}]) error {
	s.log.InfoContext(ctx, "{{$.Name}}: event on {{.Pubsub}}/{{.Topic}}", "event", ev.ID)
	return nil
}
{{end}}
{{- range .Crons}}
// {{.Handler}} runs on the schedule {{printf "%q" .Schedule}} (cron component {{.Component}}).
func (s *Service) {{.Handler}}(ctx context.Context, _ runtime.BindingEvent[struct{}]) error {
	s.log.InfoContext(ctx, "{{$.Name}}: {{.Component}} fired")
	return nil
}
{{end}}`

const testTmpl = `package {{.Name}}_test

import (
	"context"
{{- if .Routes}}
	"io"
{{- end}}
{{- if or .Routes .Crons}}
	"net/http"
{{- end}}
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	{{.Alias}} "github.com/daprfn/shop/functions/{{.Name}}"
	"github.com/daprfn/shop/runtime"
	"github.com/daprfn/shop/runtime/runtimetest"
)

// serve runs the function on the in-memory fake sidecar as app-id {{.Name}}.
func serve(t *testing.T) *runtimetest.Sidecar {
	t.Helper()
	svc, err := {{.Alias}}.New({{.Alias}}.Config{}, nil)
	require.NoError(t, err)
	sc := runtimetest.New()
	sc.InternalToken = "test-internal-token"
	app := runtime.New(runtime.Options{InternalToken: sc.InternalToken})
	{{.Alias}}.Register(app, svc)
	require.NoError(t, app.Err())
	sc.Serve("{{.Name}}", app)
	return sc
}
{{range .Routes}}
func Test{{.Handler}}(t *testing.T) {
	sc := serve(t)
	ok := http.Header{}
{{- if .Internal}}
	ok.Set(runtime.InternalTokenHeader, sc.InternalToken)
	refused := sc.Do(context.Background(), "{{$.Name}}", "{{.Method}}", "{{path .}}", []byte(` + "`{\"id\": \"1\"}`" + `), nil)
	assert.Equal(t, http.StatusForbidden, refused.StatusCode, "an internal route refuses a caller without the credential")
{{- end}}
	resp := sc.Do(context.Background(), "{{$.Name}}", "{{.Method}}", "{{path .}}", []byte(` + "`{{if body .}}{\"id\": \"1\"}{{end}}`" + `), ok)
	body, _ := io.ReadAll(resp.Body)
	require.Equal(t, http.StatusOK, resp.StatusCode, string(body))
	assert.JSONEq(t, ` + "`{\"status\": \"received\"}`" + `, string(body))
{{- if body .}}

	bad := sc.Do(context.Background(), "{{$.Name}}", "{{.Method}}", "{{path .}}", []byte(` + "`{}`" + `), ok)
	body, _ = io.ReadAll(bad.Body)
	assert.Equal(t, http.StatusBadRequest, bad.StatusCode, "an input its Validate refuses is a JSON 400")
	assert.Contains(t, string(body), ` + "`\"code\":\"invalid_id\"`" + `)
{{- end}}
}
{{end}}
{{- range .Topics}}
func Test{{.Handler}}(t *testing.T) {
	sc := serve(t)
	{{- if .OrderEvent}}
	good := ` + "`{\"specversion\":\"1.0\",\"id\":\"ev-1\",\"source\":\"test\",\"type\":\"t\",\"datacontenttype\":\"application/json\",\"data\":{\"orderId\":\"order-1\",\"customerEmail\":\"a@example.com\",\"productId\":\"product-1\",\"quantity\":1}}`" + `
	bad := ` + "`{\"specversion\":\"1.0\",\"id\":\"ev-2\",\"source\":\"test\",\"type\":\"t\",\"datacontenttype\":\"application/json\",\"data\":{\"quantity\":1}}`" + `
	{{- else}}
	good := ` + "`{\"specversion\":\"1.0\",\"id\":\"ev-1\",\"source\":\"test\",\"type\":\"t\",\"datacontenttype\":\"application/json\",\"data\":{\"id\":\"1\"}}`" + `
	bad := ` + "`{\"specversion\":\"1.0\",\"id\":\"ev-2\",\"source\":\"test\",\"type\":\"t\",\"datacontenttype\":\"application/json\",\"data\":{}}`" + `
	{{- end}}
	sc.PublishCloudEvent(context.Background(), "{{.Pubsub}}", "{{.Topic}}", []byte(good))
	sc.PublishCloudEvent(context.Background(), "{{.Pubsub}}", "{{.Topic}}", []byte(bad))
	var got []string
	for _, d := range sc.Deliveries() {
		got = append(got, d.EventID+":"+d.Status)
	}
	assert.Equal(t, []string{"ev-1:SUCCESS", "ev-2:DROP"}, got, "a valid event is acknowledged, one its Validate refuses dropped")
}
{{end}}
{{- range .Crons}}
func Test{{.Handler}}(t *testing.T) {
	sc := serve(t)
	assert.Equal(t, http.StatusOK, sc.FireBinding(context.Background(), "{{$.Name}}", "{{.Component}}", nil), "the cron's tick is handled")
	assert.Equal(t, http.StatusNotFound, sc.FireBinding(context.Background(), "{{$.Name}}", "no-such-cron", nil), "and only its own")
}
{{end}}`

const registerTmpl = `package main

import (
	"fmt"

	"github.com/kelseyhightower/envconfig"

	{{.Alias}} "github.com/daprfn/shop/functions/{{.Name}}"
)

// register{{.Type}} wires the {{.Name}} function (written by shop new): its
// configuration from the {{.Name | upper}}_ variables, then its triggers.
func register{{.Type}}(s *shop) error {
	var cfg {{.Alias}}.Config
	if err := envconfig.Process({{printf "%q" (.Name | upper)}}, &cfg); err != nil {
		return fmt.Errorf("{{.Name}} configuration: %w", err)
	}
	svc, err := {{.Alias}}.New(cfg, s.log)
	if err != nil {
		return err
	}
	{{.Alias}}.Register(s.app, svc)
	return nil
}
`
