// Package scaffold writes a new function into the repository, as `shop new`
// does: its package under functions/, its line in the function table, its
// app in every run file and manifest, its component scopes and crons. Every
// change is computed and checked in memory first; bad input writes nothing.
package scaffold

import (
	"errors"
	"fmt"
	"go/token"
	"go/types"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Spec is what `shop new` was asked for.
type Spec struct {
	Name     string   // the function's name, its package and its app-id: a lowercase Go identifier
	Invoke   []string // public routes, "POST /quote"
	Internal []string // internal routes: only the deployment's own functions may call them
	Topics   []string // "pubsub/orders"
	Crons    []string // "@every 1m", "0 */5 * * * *"
	AppPort  int      // 0: the next free one
}

var (
	nameRE    = regexp.MustCompile(`^[a-z][a-z0-9]*$`)
	patternRE = regexp.MustCompile(`^(GET|POST|PUT|PATCH|DELETE) ((?:/(?:[a-z0-9][a-z0-9-]*|\{[a-z][a-zA-Z0-9]*\}))+)$`)
	topicRE   = regexp.MustCompile(`^([a-z0-9][a-z0-9-]*)/([a-z0-9][a-z0-9.-]*)$`)
	cronField = regexp.MustCompile(`^[0-9*/,?LW#A-Za-z-]+$`)
)

// route is one invocation trigger of the new function.
type route struct {
	Pattern  string
	Method   string
	Segments []string // literal or "{name}"
	Internal bool
	Handler  string // Go name of the handler, e.g. "PostQuote"
	Params   []string
}

// topic is one topic trigger.
type topic struct {
	Pubsub, Topic string
	Handler       string // "OnOrders"
	Event         string // the data's Go type
	OrderEvent    bool   // the shop's own orders topic: orderevent.Event
}

// cron is one cron trigger and the component that fires it.
type cron struct {
	Schedule  string
	Component string // "shipping-cron", "shipping-cron-2"
	Handler   string // "Tick", "Tick2"
}

// model is a checked Spec, with the names the templates use.
type model struct {
	Name, Type string // "shipping", "Shipping"
	Routes     []route
	Topics     []topic
	Crons      []cron
}

// Alias is the name the shop's code imports the function's package under,
// so that no function name can clash with another import (email, fmt, ...).
func (m *model) Alias() string { return m.Name + "fn" }

// NeedsStrings reports whether the handlers' checks use package strings.
func (m *model) NeedsStrings() bool {
	for _, r := range m.Routes {
		if r.Method == "POST" || r.Method == "PUT" || r.Method == "PATCH" {
			return true
		}
	}
	for _, t := range m.Topics {
		if !t.OrderEvent {
			return true
		}
	}
	return false
}

// NeedsOrderEvent reports whether a handler reads the shop's order events.
func (m *model) NeedsOrderEvent() bool {
	return slices.ContainsFunc(m.Topics, func(t topic) bool { return t.OrderEvent })
}

// check validates s against itself; Plan checks it against the repository.
func (s Spec) check() (*model, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	m := &model{Name: s.Name, Type: camel(s.Name)}
	if !nameRE.MatchString(s.Name) || token.IsKeyword(s.Name) || types.Universe.Lookup(s.Name) != nil || len(s.Name) > 40 {
		bad("name %q: want a lowercase Go identifier of letters and digits, starting with a letter, neither a Go keyword nor a predeclared name (error, string, len, ...), e.g. shipping", s.Name)
	}
	if len(s.Invoke)+len(s.Internal)+len(s.Topics)+len(s.Crons) == 0 {
		bad("no trigger: give at least one --invoke \"POST /path\", --internal \"POST /path\", --topic pubsub/topic or --cron \"@every 1m\"")
	}
	handlers := map[string]string{}
	useHandler := func(name, what string) {
		if other, dup := handlers[name]; dup {
			bad("%s and %s would both be handled by %s: give them distinct paths", other, what, name)
		}
		handlers[name] = what
	}
	for i, p := range append(slices.Clone(s.Invoke), s.Internal...) {
		mm := patternRE.FindStringSubmatch(p)
		if mm == nil {
			bad("route %q: want \"METHOD /path\" with METHOD one of GET, POST, PUT, PATCH, DELETE and path segments of lowercase letters, digits and dashes or {name}, e.g. \"POST /quote\" or \"GET /quotes/{id}\"", p)
			continue
		}
		r := route{Pattern: p, Method: mm[1], Segments: strings.Split(strings.TrimPrefix(mm[2], "/"), "/"), Internal: i >= len(s.Invoke)}
		r.Handler = camel(strings.ToLower(r.Method))
		for _, seg := range r.Segments {
			if strings.HasPrefix(seg, "{") {
				param := strings.Trim(seg, "{}")
				if slices.Contains(r.Params, param) {
					bad("route %q: wildcard {%s} twice", p, param)
				}
				r.Params = append(r.Params, param)
				continue
			}
			r.Handler += camel(seg)
		}
		useHandler(r.Handler, fmt.Sprintf("route %q", p))
		m.Routes = append(m.Routes, r)
	}
	for _, t := range s.Topics {
		mm := topicRE.FindStringSubmatch(t)
		if mm == nil {
			bad("topic %q: want PUBSUB/TOPIC, the pub/sub component's name and the topic, e.g. pubsub/orders", t)
			continue
		}
		tp := topic{Pubsub: mm[1], Topic: mm[2], Handler: "On" + camel(mm[2]), Event: camel(mm[2]) + "Event", OrderEvent: mm[1] == "pubsub" && mm[2] == "orders"}
		if tp.OrderEvent {
			tp.Event = "orderevent.Event"
		}
		useHandler(tp.Handler, fmt.Sprintf("topic %q", t))
		m.Topics = append(m.Topics, tp)
	}
	for i, c := range s.Crons {
		if err := checkSchedule(c); err != nil {
			bad("cron %q: %v", c, err)
			continue
		}
		cr := cron{Schedule: c, Component: s.Name + "-cron", Handler: "Tick"}
		if i > 0 {
			cr.Component = fmt.Sprintf("%s-cron-%d", s.Name, i+1)
			cr.Handler = fmt.Sprintf("Tick%d", i+1)
		}
		useHandler(cr.Handler, fmt.Sprintf("cron %q", c))
		m.Crons = append(m.Crons, cr)
	}
	// daprd POSTs a binding's events to /<component> and a topic's to
	// /<topic>: neither may be a route of the function.
	for _, r := range m.Routes {
		if r.Method != "POST" || len(r.Segments) != 1 {
			continue
		}
		for _, c := range m.Crons {
			if r.Segments[0] == c.Component {
				bad("route %q collides with the cron component %s, which daprd POSTs to /%s", r.Pattern, c.Component, c.Component)
			}
		}
		for _, t := range m.Topics {
			if r.Segments[0] == t.Topic {
				bad("route %q collides with topic %s/%s, delivered to POST /%s", r.Pattern, t.Pubsub, t.Topic, t.Topic)
			}
		}
	}
	if s.AppPort < 0 || s.AppPort > 65535 {
		bad("app port %d: want 1 to 65535, or none for the next free one", s.AppPort)
	}
	return m, errors.Join(errs...)
}

// checkSchedule accepts what daprd's cron binding does: @every DURATION,
// the @hourly family, or five or six cron fields.
func checkSchedule(s string) error {
	if d, ok := strings.CutPrefix(s, "@every "); ok {
		dur, err := time.ParseDuration(strings.TrimSpace(d))
		if err != nil || dur <= 0 {
			return fmt.Errorf("@every needs a positive duration such as 30s or 1m")
		}
		return nil
	}
	switch s {
	case "@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly":
		return nil
	}
	fields := strings.Fields(s)
	if len(fields) < 5 || len(fields) > 6 {
		return fmt.Errorf("want @every DURATION, @hourly (and the like) or five or six cron fields, e.g. \"0 */5 * * * *\"")
	}
	for _, f := range fields {
		if !cronField.MatchString(f) {
			return fmt.Errorf("cron field %q is not a cron field", f)
		}
	}
	return nil
}

// camel turns "quote-items" into "QuoteItems".
func camel(s string) string {
	var b strings.Builder
	for _, part := range strings.FieldsFunc(s, func(r rune) bool { return r == '-' || r == '_' || r == '.' }) {
		b.WriteString(strings.ToUpper(part[:1]) + part[1:])
	}
	return b.String()
}

// File is one file Plan writes: its path from the repository root and its
// whole new content.
type File struct {
	Path    string
	Content []byte
	New     bool // created, not changed
}

// Plan computes every file `shop new` writes for s in the repository at
// root, and checks the result; it writes nothing.
func Plan(root string, s Spec) ([]File, error) {
	m, err := s.check()
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	r := &repo{root: abs, appPort: s.AppPort}
	if err := r.checkNew(m); err != nil {
		return nil, err
	}
	var files []File
	for _, step := range []func(*model) ([]File, error){r.functionPackage, r.table, r.runFiles, r.components, r.manifests} {
		fs, err := step(m)
		if err != nil {
			return nil, err
		}
		files = append(files, fs...)
	}
	return files, nil
}

// Apply writes files under root: each to a temporary file first, then all
// renamed into place, so a failure before the renames leaves the tree as it
// was.
func Apply(root string, files []File) error {
	var tmps []string
	defer func() {
		for _, t := range tmps {
			os.Remove(t)
		}
	}()
	for _, f := range files {
		path := filepath.Join(root, f.Path)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		tmp, err := os.CreateTemp(filepath.Dir(path), ".shop-new-*")
		if err != nil {
			return err
		}
		tmps = append(tmps, tmp.Name())
		if _, err := tmp.Write(f.Content); err != nil {
			tmp.Close()
			return err
		}
		if err := tmp.Close(); err != nil {
			return err
		}
	}
	for i, f := range files {
		if err := os.Rename(tmps[i], filepath.Join(root, f.Path)); err != nil {
			return err
		}
		if err := os.Chmod(filepath.Join(root, f.Path), 0o644); err != nil {
			return err
		}
	}
	tmps = nil
	return nil
}
