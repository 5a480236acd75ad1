// Command loadbench is `make bench`: the runtime's micro-benchmarks against
// bare go-sdk handlers, then a load benchmark of the shop, distributed
// (three apps, three daprds, Redis) and embedded (one app, one daprd), of
// the Dapr floor (null apps making the same Dapr calls, with and without the
// shop's two output binding writes) and of the seed's own Node.js services,
// each at saturation (16 connections) and at a fixed 200 orders/s, in
// interleaved rounds. Every shop run is audited: each order answered 200 is
// stored, has its order file and exactly one email, and the stock went down
// by exactly what was confirmed; a failed audit fails the benchmark. The
// report (each figure's median round, every round's, and the shop's share of
// each baseline within each round) goes to bench/out/ as Markdown, JSON and
// a latency plot.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/daprfn/shop/internal/daprtest"
	"github.com/daprfn/shop/internal/launch"
)

// allScenarios are the topologies make bench loads, the -scenarios default.
const allScenarios = "distributed,embedded,floor,floor-bindings,seed,seed-tuned"

type options struct {
	out        string
	duration   time.Duration
	fixedFor   time.Duration
	rate       int
	conns      int
	scenarios  []string
	baseline   string
	skipMicro  bool
	daprd      string
	shop       string
	nullapp    string
	repo       string
	drainAfter time.Duration
	profile    bool
	listen     string // the launcher's listenAddress for every app; "" for its default
	dataDir    string
	rounds     int
	appEnv     map[string]string
	daprdGOGC  string
	changes    string
	sse        int // storefront pages held open during the distributed loads
}

func main() {
	var o options
	var scen string
	flag.StringVar(&o.out, "out", "bench/out", "report directory")
	flag.DurationVar(&o.duration, "duration", 15*time.Second, "length of each saturation run")
	flag.DurationVar(&o.fixedFor, "fixed-duration", 10*time.Second, "length of each fixed-rate run")
	flag.IntVar(&o.rate, "rate", 200, "orders per second of the fixed-rate run")
	flag.IntVar(&o.conns, "conns", 16, "connections of the saturation run")
	flag.StringVar(&scen, "scenarios", allScenarios, "topologies to load: distributed, embedded, floor, floor-bindings, seed (the tutorial's services on daprd as `dapr run` starts it), seed-tuned (the same on the launcher's sidecar)")
	flag.StringVar(&o.baseline, "baseline", "", "micro-benchmark output of an earlier run to compare with benchstat")
	flag.BoolVar(&o.skipMicro, "skip-micro", false, "skip the micro-benchmarks")
	flag.StringVar(&o.daprd, "daprd", "bin/daprd-1.18.2/daprd", "daprd binary")
	flag.DurationVar(&o.drainAfter, "drain-timeout", 3*time.Minute, "how long to wait for the last email after the load")
	flag.StringVar(&o.dataDir, "data-dir", "", "where each topology's files go (order and email files, run file, components); default /dev/shm when writable, else the temp dir")
	flag.IntVar(&o.rounds, "rounds", 3, "how many times each scenario is loaded, interleaved (a, b, a, b, ...) so drift hits every scenario alike; the report shows each figure's median round")
	flag.StringVar(&o.daprdGOGC, "daprd-gogc", "", "GOGC of every daprd but the seed scenario's; default the launcher's ("+launch.DefaultDaprdGOGC+")")
	var appEnv string
	flag.StringVar(&appEnv, "app-env", "", "extra environment of the shop's function apps, as KEY=VALUE,KEY=VALUE (e.g. GOGC=100 to compare GC settings)")
	flag.StringVar(&o.changes, "changes", "bench/changes.md", "the record of what each change bought, appended to the Markdown report; empty for none")
	flag.StringVar(&o.listen, "listen", "", "the address every app and daprd listens on (the run file's listenAddress); default the launcher's, "+launch.DefaultListenAddress)
	flag.IntVar(&o.sse, "sse", 0, "hold this many server-sent-event clients open on the storefront's page during each distributed load, the storefront running as a fourth app of that topology (e.g. 100); 0 runs the three apps alone")
	flag.BoolVar(&o.profile, "profile", false, "write CPU profiles of every daprd and shop app during each saturation run to the report directory")
	flag.Parse()
	o.scenarios = strings.Split(scen, ",")
	o.appEnv = map[string]string{}
	for kv := range strings.SplitSeq(appEnv, ",") {
		if k, v, ok := strings.Cut(kv, "="); ok && k != "" {
			o.appEnv[k] = v
		} else if kv != "" {
			fmt.Fprintf(os.Stderr, "loadbench: -app-env %q: want KEY=VALUE\n", kv)
			os.Exit(2)
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "loadbench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	var err error
	if o.repo, err = os.Getwd(); err != nil {
		return err
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	bin := filepath.Join(o.out, "bin")
	o.shop, o.nullapp = filepath.Join(bin, "shop"), filepath.Join(bin, "nullapp")
	if err := goBuild(o.shop, "./cmd/shop"); err != nil {
		return err
	}
	if err := goBuild(o.nullapp, "./cmd/nullapp"); err != nil {
		return err
	}
	if o.daprd, err = filepath.Abs(o.daprd); err != nil {
		return err
	}
	if o.dataDir == "" {
		// The order and email files are the dev stand-ins for order storage
		// and email; on a VM disk creating one can cost more kernel time than
		// everything else an order does (see Machine.FileCreateMicros).
		o.dataDir = daprtest.TmpfsDir()
	}
	if slices.ContainsFunc(o.scenarios, isSeed) {
		if err := installSeed(o); err != nil {
			return err
		}
	}
	rep := newReport(o)
	if o.changes != "" {
		b, err := os.ReadFile(o.changes)
		if err != nil {
			return fmt.Errorf("-changes: %w (point it at the record of changes, or pass -changes= for none)", err)
		}
		rep.Changes = string(b)
	}
	if !o.skipMicro {
		fmt.Println("== micro-benchmarks: runtime dispatch vs bare go-sdk handlers")
		if rep.Micro, err = micro(o); err != nil {
			return err
		}
	}
	var failures []string
	var runs []*Result
	for round := 1; round <= max(o.rounds, 1); round++ {
		for _, name := range o.scenarios {
			fmt.Printf("== load: %s (round %d of %d)\n", name, round, max(o.rounds, 1))
			res, err := loadScenario(ctx, o, name)
			if err != nil {
				return fmt.Errorf("scenario %s, round %d: %w", name, round, err)
			}
			for _, r := range res {
				r.Round = round
				if r.Audit != nil && !r.Audit.OK {
					failures = append(failures, fmt.Sprintf("%s/%s round %d: %s", r.Topology, r.Load, round, strings.Join(r.Audit.Problems, "; ")))
				}
			}
			runs = append(runs, res...)
		}
	}
	rep.Scenarios = medianRounds(runs)
	rep.compare(runs)
	if err := rep.write(o.out); err != nil {
		return err
	}
	fmt.Printf("report written to %s/report.md, report.json and latency.png\n", o.out)
	if len(failures) > 0 {
		return fmt.Errorf("audit failed:\n  %s", strings.Join(failures, "\n  "))
	}
	return nil
}
