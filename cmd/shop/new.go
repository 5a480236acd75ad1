package main

import (
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/daprfn/shop/internal/scaffold"
)

// repeated is a flag that may be given several times.
type repeated []string

func (r *repeated) String() string     { return strings.Join(*r, ", ") }
func (r *repeated) Set(v string) error { *r = append(*r, v); return nil }

// newFunction runs `shop new NAME --invoke "POST /path" --topic pubsub/topic
// --cron "@every 1m"`: it writes the function, its registration, its app in
// every run file and manifest, and its components, or nothing at all when
// the input is wrong.
func newFunction(args []string, out io.Writer) error {
	fs := flag.NewFlagSet("new", flag.ContinueOnError)
	fs.SetOutput(out)
	var spec scaffold.Spec
	fs.Var((*repeated)(&spec.Invoke), "invoke", `a public route, "METHOD /path" (repeatable), e.g. "POST /quote"`)
	fs.Var((*repeated)(&spec.Internal), "internal", `an internal route, only the deployment's own functions may call it (repeatable)`)
	fs.Var((*repeated)(&spec.Topics), "topic", "a topic to subscribe to, PUBSUB/TOPIC (repeatable), e.g. pubsub/orders")
	fs.Var((*repeated)(&spec.Crons), "cron", `a schedule to run on (repeatable), e.g. "@every 1m"`)
	fs.IntVar(&spec.AppPort, "app-port", 0, "the app's port in the run files (default: the next free one)")
	root := fs.String("C", ".", "the repository's root")
	fs.Usage = func() {
		fmt.Fprintln(out, `usage: shop new NAME [--invoke "POST /path"]... [--internal "POST /path"]... [--topic pubsub/topic]... [--cron "@every 1m"]...`)
		fs.PrintDefaults()
	}
	// The name may come before or after the flags.
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		spec.Name, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if spec.Name == "" && fs.NArg() > 0 {
		spec.Name = fs.Arg(0)
		if err := fs.Parse(fs.Args()[1:]); err != nil {
			return err
		}
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("new: unexpected %q: one name, then flags", strings.Join(fs.Args(), " "))
	}
	if spec.Name == "" {
		fs.Usage()
		return fmt.Errorf("new: the function's name is missing")
	}
	files, err := scaffold.Plan(*root, spec)
	if err != nil {
		return fmt.Errorf("new %s: %w (nothing was written)", spec.Name, err)
	}
	if err := scaffold.Apply(*root, files); err != nil {
		return fmt.Errorf("new %s: %w", spec.Name, err)
	}
	for _, f := range files {
		verb := "changed"
		if f.New {
			verb = "wrote  "
		}
		fmt.Fprintf(out, "%s %s\n", verb, f.Path)
	}
	fmt.Fprintf(out, "\nNext: edit functions/%s/%s.go, then `go test ./functions/%s/` and `make run`.\n", spec.Name, spec.Name, spec.Name)
	return nil
}
