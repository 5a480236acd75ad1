package main

import (
	"cmp"
	"encoding/json"
	"fmt"
	"image/color"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"sort"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/daprfn/shop/internal/launch"
)

// Machine describes where the figures were measured.
type Machine struct {
	Cores int    `json:"cores"`
	CPU   string `json:"cpu"`
	Go    string `json:"go"`
	Daprd string `json:"daprd"`
	// DaprdGOGC is the GOGC of every daprd but the seed scenario's, which
	// runs Go's default as `dapr run` leaves it.
	DaprdGOGC string `json:"daprdGOGC"`
	OS        string `json:"os"`
	Date      string `json:"date"`
	Command   string `json:"command"`
	// DataDir holds the order and email files of the runs.
	DataDir string `json:"dataDir"`
	// FileCreateMicros is what creating one small file costs in DataDir,
	// and TempFileCreateMicros in the temp dir, for comparison.
	FileCreateMicros     float64 `json:"fileCreateMicros"`
	TempFileCreateMicros float64 `json:"tempFileCreateMicros"`
}

type report struct {
	Machine   Machine       `json:"machine"`
	Micro     []MicroResult `json:"micro,omitempty"`
	Scenarios []*Result     `json:"scenarios"`
	Compared  []Comparison  `json:"compared,omitempty"`
	// Changes is the project's record of what each change bought
	// (bench/changes.md), appended to the Markdown report as it is.
	Changes string `json:"-"`
}

// Comparison is a shop figure against a baseline's: a floor (null apps
// making the same Dapr calls) or the seed.
type Comparison struct {
	Baseline      string  `json:"baseline"` // "floor", "floor-bindings" (the same plus the two output binding writes), "seed" or "seed-tuned"
	Topology      string  `json:"topology"`
	Load          string  `json:"load"`
	ShopPerS      float64 `json:"shopCompletedPerSecond"`
	BaselinePerS  float64 `json:"baselinePerSecond"` // a floor's completed/s; the seed's answered/s (it completes none)
	Percent       float64 `json:"percentOfBaseline"`
	P99Ratio      float64 `json:"p99RatioToBaseline"`
	BaselineP99Ms float64 `json:"baselineP99Ms"`
	// PercentByRound is the shop's figure as a share of the baseline's in
	// the same round, for each round.
	PercentByRound []float64 `json:"percentOfBaselineByRound"`
}

func newReport(o options) *report {
	m := Machine{Cores: goruntime.NumCPU(), Go: goruntime.Version(), OS: goruntime.GOOS + "/" + goruntime.GOARCH,
		Date: time.Now().UTC().Format("2006-01-02"), Command: "make bench (" + strings.Join(os.Args[1:], " ") + ")"}
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(raw), "\n") {
			if v, ok := strings.CutPrefix(line, "model name"); ok {
				m.CPU = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	m.DataDir = o.dataDir
	m.DaprdGOGC = cmp.Or(o.daprdGOGC, launch.DefaultDaprdGOGC)
	m.FileCreateMicros, _ = fileCreateMicros(o.dataDir)
	m.TempFileCreateMicros, _ = fileCreateMicros(os.TempDir())
	if out, err := exec.Command(o.daprd, "--version").Output(); err == nil {
		m.Daprd = strings.TrimSpace(string(out))
	}
	return &report{Machine: m}
}

// throughput is what a run is ranked and compared by: completed/s, or for
// the seed, which completes no order (it sends no notification), answered/s.
func (r *Result) throughput() float64 {
	if isSeed(r.Topology) {
		return r.AnsweredPerSec
	}
	return r.CompletedPerS
}

// compare sets r.Compared: each shop figure against each baseline's, the
// median rounds' figures and the ratio within each round (runs of one round
// are neighbours in time, so they share the machine's drift).
func (r *report) compare(runs []*Result) {
	base := map[[2]string]*Result{} // baseline topology, load
	for _, s := range r.Scenarios {
		if !isShop(s.Topology) {
			base[[2]string{s.Topology, s.Load}] = s
		}
	}
	type key struct {
		topology, load string
		round          int
	}
	byRound := map[key]*Result{}
	for _, x := range runs {
		byRound[key{x.Topology, x.Load, x.Round}] = x
	}
	r.Compared = nil
	for _, name := range []string{"floor", "floor-bindings", "seed", "seed-tuned"} {
		for _, s := range r.Scenarios {
			f, ok := base[[2]string{name, s.Load}]
			if !isShop(s.Topology) || !ok || f.throughput() == 0 {
				continue
			}
			c := Comparison{Baseline: name, Topology: s.Topology, Load: s.Load, Percent: 100 * s.CompletedPerS / f.throughput(),
				BaselinePerS: f.throughput(), ShopPerS: s.CompletedPerS, BaselineP99Ms: f.P99}
			if f.P99 > 0 {
				c.P99Ratio = s.P99 / f.P99
			}
			for _, x := range runs {
				if x.Topology != s.Topology || x.Load != s.Load {
					continue
				}
				if fx := byRound[key{name, s.Load, x.Round}]; fx != nil && fx.throughput() > 0 {
					c.PercentByRound = append(c.PercentByRound, 100*x.CompletedPerS/fx.throughput())
				}
			}
			r.Compared = append(r.Compared, c)
		}
	}
}

// medianRounds keeps, for each topology and load, the round with the median
// throughput (the lower middle of an even count), recording every round's
// in its Rounds; the order is that of first appearance.
func medianRounds(runs []*Result) []*Result {
	var order [][2]string
	groups := map[[2]string][]*Result{}
	for _, x := range runs {
		k := [2]string{x.Topology, x.Load}
		if _, seen := groups[k]; !seen {
			order = append(order, k)
		}
		groups[k] = append(groups[k], x)
	}
	out := make([]*Result, 0, len(order))
	for _, k := range order {
		g := groups[k]
		rounds := make([]float64, len(g))
		for i, x := range g {
			rounds[i] = x.throughput()
		}
		sorted := slices.Clone(g)
		slices.SortStableFunc(sorted, func(a, b *Result) int { return cmp.Compare(a.throughput(), b.throughput()) })
		m := sorted[(len(sorted)-1)/2]
		m.Rounds = rounds
		out = append(out, m)
	}
	return out
}

// isSeed tells the tutorial's own services: "seed" on daprd as `dapr run`
// starts it, "seed-tuned" on the launcher's sidecar like the shop.
func isSeed(topology string) bool { return topology == "seed" || topology == "seed-tuned" }

// isShop tells the shop's topologies from the floors and the seed.
func isShop(topology string) bool { return topology == "distributed" || topology == "embedded" }

// isFloor tells the null-app topologies from the shop's.
func isFloor(topology string) bool { return strings.HasPrefix(topology, "floor") }

func (r *report) write(dir string) error {
	js, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "report.json"), js, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "report.md"), []byte(r.markdown()), 0o644); err != nil {
		return err
	}
	return r.plot(filepath.Join(dir, "latency.png"))
}

func (r *report) markdown() string {
	var b strings.Builder
	m := r.Machine
	fmt.Fprintf(&b, "Measured %s on %d cores (%s), %s, daprd %s (GOGC=%s, the launcher's, in every scenario but *seed*), %s.\n\n", m.Date, m.Cores, m.CPU, m.Go, m.Daprd, m.DaprdGOGC, m.OS)
	fmt.Fprintf(&b, "Order and email files (the dev stand-ins for order storage and email) were written to %s, where creating a small file took %.0f µs; in %s it took %.0f µs.\n\n",
		m.DataDir, m.FileCreateMicros, os.TempDir(), m.TempFileCreateMicros)
	if len(r.Micro) > 0 {
		b.WriteString("Runtime dispatch vs a bare go-sdk handler doing the same decode (median of 6, `go test -run '^$' -bench . ./runtime/dapr/`):\n\n")
		b.WriteString("| trigger | runtime ns/op | go-sdk ns/op | time ratio | runtime allocs | go-sdk allocs | alloc ratio |\n|---|---:|---:|---:|---:|---:|---:|\n")
		for _, x := range r.Micro {
			fmt.Fprintf(&b, "| %s | %.0f | %.0f | %.2fx | %.0f | %.0f | %.2fx |\n", x.Benchmark, x.RuntimeNsOp, x.SDKNsOp, x.NsRatio, x.RuntimeAllocs, x.SDKAllocs, x.AllocRatio)
		}
		b.WriteString("\n")
	}
	b.WriteString("Load through the order-service sidecar (POST /orders on :3500). *Completed/s* counts orders whose email (floor: event) was handled, until the last one. " +
		"Each scenario was loaded in every round, the scenarios interleaved; each row is the round with the median completed/s (the seed's: answered/s), and *rounds* lists every round's.\n\n")
	b.WriteString("| topology | load | answered/s | completed/s | rounds | p50 ms | p90 ms | p99 ms | max ms | errors | app CPU / daprd CPU | audit |\n|---|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---|\n")
	for _, s := range r.Scenarios {
		fmt.Fprintf(&b, "| %s | %s | %.0f | %.0f | %s | %.1f | %.1f | %.1f | %.1f | %d | %.0f %% | %s |\n",
			s.Topology, s.Load, s.AnsweredPerSec, s.CompletedPerS, joinFloats(s.Rounds, "%.0f"), s.P50, s.P90, s.P99, s.Max, s.Errors, 100*s.AppCPUShare, auditWord(s))
	}
	for _, s := range r.Scenarios {
		if s.Pages > 0 {
			fmt.Fprintf(&b, "\n%s at %s ran with the storefront as a fourth app and %d of its pages open (server-sent events): the page that got the fewest order steps got %d; %d streams failed.\n",
				s.Topology, s.Load, s.Pages, s.PageStepsFewest, s.PagesFailed)
		}
	}
	var floors, seed []Comparison
	for _, c := range r.Compared {
		if isSeed(c.Baseline) {
			seed = append(seed, c)
		} else {
			floors = append(floors, c)
		}
	}
	if len(floors) > 0 {
		b.WriteString("\nAgainst the Dapr floor: null apps making the same Dapr calls over the same transports (*floor*: invoke, save, publish, subscribe; *floor-bindings*: the same plus the order-storage and email output binding writes the shop makes):\n\n| floor | topology | load | shop completed/s | floor completed/s | % of floor | % of floor in each round | p99 vs floor |\n|---|---|---|---:|---:|---:|---|---:|\n")
		for _, f := range floors {
			fmt.Fprintf(&b, "| %s | %s | %s | %.0f | %.0f | %.0f %% | %s | %s |\n", f.Baseline, f.Topology, f.Load, f.ShopPerS, f.BaselinePerS, f.Percent, joinFloats(f.PercentByRound, "%.0f %%"), times(f.P99Ratio))
		}
	}
	if len(seed) > 0 {
		b.WriteString("\nAgainst the seed (its three Node.js services, loaded the same way in the same rounds; *seed*: on daprd as `dapr run` starts it, recording metrics, Go's default GC; *seed-tuned*: on the launcher's sidecar, as the shop and the floors): the shop's completed/s against the seed's answered/s, since the seed completes none (its notification service cannot read a CloudEvent)")
		for _, s := range r.Scenarios {
			if isSeed(s.Topology) && s.Confirmed > 0 {
				fmt.Fprintf(&b, "; %s at %s: its %d answers 200 carried %d different order ids, so %.0f %% of them overwrote another order", s.Topology, s.Load, s.Confirmed, s.DistinctIDs, 100*float64(s.Confirmed-s.DistinctIDs)/float64(s.Confirmed))
			}
		}
		b.WriteString(":\n\n| seed | topology | load | shop completed/s | seed answered/s | x seed | x seed in each round | p99 vs seed |\n|---|---|---|---:|---:|---:|---|---:|\n")
		for _, c := range seed {
			fmt.Fprintf(&b, "| %s | %s | %s | %.0f | %.0f | %.2fx | %s | %s |\n", c.Baseline, c.Topology, c.Load, c.ShopPerS, c.BaselinePerS, c.Percent/100, joinFloats(scale(c.PercentByRound, 0.01), "%.2fx"), times(c.P99Ratio))
		}
	}
	b.WriteString("\nCPU seconds per 1 000 orders and peak RSS per process (saturation, median round; *redis-server* is the topology's own Redis, which its sidecars share, counted in neither side of *app CPU / daprd CPU*; *of it, file pages* is the part of the resident set that maps the process's executable, shared through the page cache by every process running the same binary, as the three function apps do):\n\n| topology | process | CPU s / 1000 orders | peak RSS MB | of it, file pages MB |\n|---|---|---:|---:|---:|\n")
	for _, s := range r.Scenarios {
		if !strings.HasPrefix(s.Load, "saturation") {
			continue
		}
		names := make([]string, 0, len(s.CPUPer1000))
		for n := range s.PeakRSSMB {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			fmt.Fprintf(&b, "| %s | %s | %.2f | %.0f | %.0f |\n", s.Topology, n, s.CPUPer1000[n], s.PeakRSSMB[n], s.FileRSSMB[n])
		}
	}
	if r.Changes != "" {
		b.WriteString("\n" + strings.TrimSpace(r.Changes) + "\n")
	}
	return b.String()
}

func scale(xs []float64, by float64) []float64 {
	out := make([]float64, len(xs))
	for i, x := range xs {
		out[i] = x * by
	}
	return out
}

// times formats a ratio with two decimals, or two significant digits below
// 0.01, where two decimals would print a small ratio as zero.
func times(x float64) string {
	if x != 0 && math.Abs(x) < 0.01 {
		return fmt.Sprintf("%.2gx", x)
	}
	return fmt.Sprintf("%.2fx", x)
}

func joinFloats(xs []float64, format string) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = fmt.Sprintf(format, x)
	}
	return strings.Join(parts, ", ")
}

// topologyColors gives each topology its own colour, the same in every
// report, so plots of different runs compare at a glance.
var topologyColors = map[string]color.RGBA{
	"distributed":    {R: 0x1f, G: 0x77, B: 0xb4, A: 255},
	"embedded":       {R: 0xff, G: 0x7f, B: 0x0e, A: 255},
	"floor":          {R: 0x2c, G: 0xa0, B: 0x2c, A: 255},
	"floor-bindings": {R: 0xd6, G: 0x27, B: 0x28, A: 255},
	"seed":           {R: 0x94, G: 0x67, B: 0xbd, A: 255},
	"seed-tuned":     {R: 0x8c, G: 0x56, B: 0x4b, A: 255},
}

// lineStyle is a topology's line: its colour (grey for one without), dashed
// for the seed's.
func lineStyle(topology string) draw.LineStyle {
	c, ok := topologyColors[topology]
	if !ok {
		c = color.RGBA{R: 0x7f, G: 0x7f, B: 0x7f, A: 255}
	}
	st := draw.LineStyle{Color: c, Width: vg.Points(2)}
	if strings.HasPrefix(topology, "seed") {
		st.Dashes = []vg.Length{vg.Points(6), vg.Points(3)}
	}
	return st
}

func (r *report) plot(path string) error {
	p := plot.New()
	p.Title.Text = "POST /orders latency by percentile (saturation)"
	p.X.Label.Text = "percentile"
	p.Y.Label.Text = "latency (ms)"
	p.Legend.Top, p.Legend.Left = true, true
	for _, s := range r.Scenarios {
		if !strings.HasPrefix(s.Load, "saturation") || len(s.Latencies) == 0 {
			continue
		}
		sorted := sortedCopy(s.Latencies)
		pts := make(plotter.XYs, 0, 100)
		for q := 1.0; q <= 99.9; q += 0.5 {
			pts = append(pts, plotter.XY{X: q, Y: percentile(sorted, q)})
		}
		line, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		line.LineStyle = lineStyle(s.Topology)
		p.Add(line)
		p.Legend.Add(s.Topology, line)
	}
	return p.Save(8*vg.Inch, 4.5*vg.Inch, path)
}
