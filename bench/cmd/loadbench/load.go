package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// Result is one load run of one topology.
type Result struct {
	Topology       string             `json:"topology"`
	Load           string             `json:"load"` // "saturation (16 conns)" or "200 orders/s"
	Duration       float64            `json:"durationSeconds"`
	Requests       uint64             `json:"requests"`
	Confirmed      int                `json:"confirmed"` // answered 200
	Errors         int                `json:"errors"`
	AnsweredPerSec float64            `json:"answeredPerSecond"`  // 200 answers per second of load
	CompletedPerS  float64            `json:"completedPerSecond"` // orders whose email (event) was handled, per second until the last one
	LastEventLag   float64            `json:"lastEventLagSeconds"`
	P50, P90, P99  float64            // milliseconds
	Max            float64            `json:"max"`
	CPUPer1000     map[string]float64 `json:"cpuSecondsPer1000Orders"`
	PeakRSSMB      map[string]float64 `json:"peakRssMB"`
	// FileRSSMB is the part of each process's resident set at the end of the
	// run that maps files: its executable's pages, shared with every process
	// running the same binary.
	FileRSSMB   map[string]float64 `json:"fileRssMB"`
	AppCPUShare float64            `json:"appCpuShareOfDaprd"` // app CPU / daprd CPU
	Latencies   []float64          `json:"-"`
	Audit       *Audit             `json:"audit,omitempty"`
	StatusCodes map[string]int     `json:"statusCodes"`
	Round       int                `json:"round"`
	// DistinctIDs, for the seed, is how many different order ids its 200
	// answers carried: ids from Date.now() collide, and a collision
	// overwrites an order.
	DistinctIDs int `json:"distinctOrderIds,omitempty"`
	// Rounds holds every round's throughput (completed/s; the seed's
	// answered/s), set on the median round kept in the report.
	Rounds []float64 `json:"completedPerSecondByRound,omitempty"`
	// With -sse: the storefront pages open during the load, the fewest
	// order steps one of them received, and how many streams failed.
	Pages           int   `json:"storefrontPages,omitempty"`
	PageStepsFewest int64 `json:"storefrontPageStepsFewest,omitempty"`
	PagesFailed     int64 `json:"storefrontPagesFailed,omitempty"`
}

// Audit is what the checks after a shop run found.
type Audit struct {
	OK       bool     `json:"ok"`
	Checked  int      `json:"checked"`
	Problems []string `json:"problems,omitempty"`
}

var orderBody = []byte(`{"productId":"product-1","quantity":1,"customerEmail":"bench@example.com"}`)

func loadScenario(ctx context.Context, o options, name string) ([]*Result, error) {
	t, err := startTopology(ctx, o, name)
	if err != nil {
		return nil, err
	}
	var results []*Result
	loads := []struct {
		label string
		rate  vegeta.Rate
		dur   time.Duration
		opts  []func(*vegeta.Attacker)
	}{
		{fmt.Sprintf("saturation (%d conns)", o.conns), vegeta.Rate{Freq: 0}, o.duration,
			[]func(*vegeta.Attacker){vegeta.Workers(uint64(o.conns)), vegeta.MaxWorkers(uint64(o.conns)), vegeta.Connections(o.conns)}},
		{fmt.Sprintf("%d orders/s", o.rate), vegeta.Rate{Freq: o.rate, Per: time.Second}, o.fixedFor,
			[]func(*vegeta.Attacker){vegeta.Workers(uint64(o.conns)), vegeta.Connections(64)}},
	}
	for _, l := range loads {
		r, err := attack(ctx, o, t, l.label, l.rate, l.dur, l.opts)
		if err != nil {
			_ = t.stop()
			return results, err
		}
		fmt.Printf("  %-24s %7.0f answered/s %7.0f completed/s  p50 %5.1f ms  p99 %6.1f ms  max %6.1f ms  errors %d  audit %s\n",
			l.label, r.AnsweredPerSec, r.CompletedPerS, r.P50, r.P99, r.Max, r.Errors, auditWord(r))
		if r.Pages > 0 {
			fmt.Printf("  %-24s %d storefront pages open: the fewest order steps one got %d, streams failed %d\n", "", r.Pages, r.PageStepsFewest, r.PagesFailed)
		}
		results = append(results, r)
	}
	if err := t.stop(); err != nil {
		return results, fmt.Errorf("stopping %s: %w", name, err)
	}
	return results, nil
}

func auditWord(r *Result) string {
	a := r.Audit
	switch {
	case a == nil && isSeed(r.Topology):
		return "n/a (the seed)"
	case a == nil:
		return "n/a (null apps)"
	case a.OK:
		return fmt.Sprintf("ok (%d orders)", a.Checked)
	}
	return "FAILED: " + strings.Join(a.Problems, "; ")
}

func attack(ctx context.Context, o options, t *topology, label string, rate vegeta.Rate, dur time.Duration, opts []func(*vegeta.Attacker)) (*Result, error) {
	r := &Result{Topology: t.name, Load: label, CPUPer1000: map[string]float64{}, PeakRSSMB: map[string]float64{}, FileRSSMB: map[string]float64{}, StatusCodes: map[string]int{}}
	shop := isShop(t.name)
	stockBefore, err := stock(t)
	if shop && err != nil {
		return nil, err
	}
	eventsBefore, archivedBefore := countEvents(t), countArchived(t)
	cpuBefore := cpuSeconds(t.processes())

	targeter := vegeta.NewStaticTargeter(vegeta.Target{Method: "POST", URL: t.orderURL, Body: orderBody,
		Header: http.Header{"Content-Type": []string{"application/json"}}})
	attacker := vegeta.NewAttacker(append(opts, vegeta.KeepAlive(true), vegeta.Timeout(30*time.Second))...)
	var open *pages
	if t.pageURL != "" {
		if open, err = openPages(ctx, t.pageURL, o.sse); err != nil {
			return nil, err
		}
		r.Pages = o.sse
	}
	var ids []string
	var profiling sync.WaitGroup
	if rate.Freq == 0 && len(t.profiles) > 0 {
		profileAll(&profiling, o, t, dur)
	}
	start := time.Now()
	var m vegeta.Metrics
	for res := range attacker.Attack(targeter, rate, dur, label) {
		m.Add(res)
		r.Latencies = append(r.Latencies, float64(res.Latency.Microseconds())/1000)
		r.StatusCodes[strconv.Itoa(int(res.Code))]++
		if res.Code == http.StatusOK {
			var body struct{ OrderID string }
			if json.Unmarshal(res.Body, &body) == nil && body.OrderID != "" {
				ids = append(ids, body.OrderID)
			}
		}
		if ctx.Err() != nil {
			attacker.Stop()
		}
	}
	m.Close()
	loadEnd := time.Now()
	profiling.Wait()
	r.Duration = loadEnd.Sub(start).Seconds()
	r.Requests = m.Requests
	r.Confirmed = len(ids)
	r.Errors = int(m.Requests) - len(ids)
	r.AnsweredPerSec = float64(len(ids)) / r.Duration
	r.P50, r.P90, r.P99, r.Max = ms(m.Latencies.P50), ms(m.Latencies.P90), ms(m.Latencies.P99), ms(m.Latencies.Max)

	// Throughput counts orders whose event was handled (and, for the shop,
	// whose order file was written, possibly by the outbox sweep): wait for
	// the last.
	deadline := time.Now().Add(o.drainAfter)
	drained := func() bool {
		if isSeed(t.name) { // it handles no event: nothing to wait for
			return true
		}
		if countEvents(t)-eventsBefore < len(ids) {
			return false
		}
		return !shop || countArchived(t)-archivedBefore >= len(ids)
	}
	for time.Now().Before(deadline) && !drained() {
		time.Sleep(50 * time.Millisecond)
	}
	done := time.Now()
	if open != nil {
		r.PageStepsFewest, r.PagesFailed = open.close()
	}
	handled := countEvents(t) - eventsBefore
	if isSeed(t.name) {
		r.DistinctIDs = distinct(ids)
	}
	r.CompletedPerS = float64(min(handled, len(ids))) / done.Sub(start).Seconds()
	r.LastEventLag = done.Sub(loadEnd).Seconds()

	used := map[string]float64{}
	for name, after := range cpuSeconds(t.processes()) {
		used[name] = after - cpuBefore[name]
		if len(ids) > 0 {
			r.CPUPer1000[name] = used[name] / float64(len(ids)) * 1000
		}
	}
	r.AppCPUShare = appCPUShare(used)
	for name, pid := range t.processes() {
		r.PeakRSSMB[name], r.FileRSSMB[name] = rssMB(pid)
	}
	if shop {
		r.Audit = audit(t, ids, eventsBefore, stockBefore, handled)
	}
	return r, nil
}

// profileAll fetches a CPU profile of every profiled process, covering a
// load of length dur but its last 2 s, into <out>/<topology>-<process>.pprof.
func profileAll(wg *sync.WaitGroup, o options, t *topology, dur time.Duration) {
	secs := max(int((dur-2*time.Second)/time.Second), 1)
	for name, url := range t.profiles {
		wg.Add(1)
		go func() {
			defer wg.Done()
			file := filepath.Join(o.out, t.name+"-"+strings.ReplaceAll(name, " ", "-")+".pprof")
			if err := fetchTo(fmt.Sprintf("%s?seconds=%d", url, secs), file); err != nil {
				fmt.Fprintf(os.Stderr, "  profile of %s: %v\n", name, err)
			}
		}()
	}
}

func fetchTo(url, file string) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	return os.WriteFile(file, b, 0o644)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// countArchived counts the shop's order files.
func countArchived(t *topology) int {
	entries, _ := os.ReadDir(filepath.Join(t.dir, "data", "orders"))
	return len(entries)
}

// countEvents counts handled events: email files for the shop, the null
// notification app's counter for the floor.
func countEvents(t *topology) int {
	if isSeed(t.name) {
		return 0 // it sends no notification: its handler cannot read a CloudEvent
	}
	if t.countURL != "" {
		resp, err := http.Get(t.countURL)
		if err != nil {
			return 0
		}
		defer resp.Body.Close()
		var c struct{ Count int }
		_ = json.NewDecoder(resp.Body).Decode(&c)
		return c.Count
	}
	entries, _ := os.ReadDir(filepath.Join(t.dir, "data", "emails"))
	return len(entries)
}

// distinct counts the different ids in ids.
func distinct(ids []string) int {
	seen := make(map[string]struct{}, len(ids))
	for _, id := range ids {
		seen[id] = struct{}{}
	}
	return len(seen)
}

func stock(t *topology) (int, error) {
	if !isShop(t.name) {
		return 0, nil
	}
	resp, err := http.Get(t.invURL)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var inv map[string]struct{ Stock int }
	if err := json.NewDecoder(resp.Body).Decode(&inv); err != nil {
		return 0, err
	}
	return inv["product-1"].Stock, nil
}

// audit checks every order answered 200: stored, archived, emailed once;
// and that the stock went down by exactly what was confirmed.
func audit(t *topology, ids []string, eventsBefore, stockBefore, handled int) *Audit {
	a := &Audit{Checked: len(ids)}
	problem := func(format string, args ...any) { a.Problems = append(a.Problems, fmt.Sprintf(format, args...)) }
	emails := map[string]int{}
	entries, _ := os.ReadDir(filepath.Join(t.dir, "data", "emails"))
	for _, e := range entries {
		id, _, _ := strings.Cut(e.Name(), ".")
		emails[id]++
	}
	archived := map[string]bool{}
	entries, _ = os.ReadDir(filepath.Join(t.dir, "data", "orders"))
	for _, e := range entries {
		archived[strings.TrimSuffix(e.Name(), ".json")] = true
	}
	var missingMail, dupMail, missingFile int
	for _, id := range ids {
		switch emails[id] {
		case 0:
			missingMail++
		case 1:
		default:
			dupMail++
		}
		if !archived[id] {
			missingFile++
		}
	}
	if missingMail > 0 {
		problem("%d confirmed orders without an email", missingMail)
	}
	if dupMail > 0 {
		problem("%d orders with more than one email", dupMail)
	}
	if missingFile > 0 {
		problem("%d confirmed orders without an order file", missingFile)
	}
	if handled != len(ids) {
		problem("%d emails written in this run for %d confirmed orders", handled, len(ids))
	}
	if missing := notStored(t, ids); missing > 0 {
		problem("%d confirmed orders not found by GET /orders/{id}", missing)
	}
	// The order-service settles its stock lease within a second or so of
	// its last order (lease.Life): until then the lease's unused units
	// are neither sold nor back.
	after, err := stock(t)
	for deadline := time.Now().Add(5 * time.Second); err == nil && stockBefore-after != len(ids) && time.Now().Before(deadline); {
		time.Sleep(100 * time.Millisecond)
		after, err = stock(t)
	}
	if err != nil {
		problem("reading stock: %v", err)
	} else if stockBefore-after != len(ids) {
		problem("stock went from %d to %d for %d confirmed orders of 1 (waited 5 s for the stock lease to be settled)", stockBefore, after, len(ids))
	}
	a.OK = len(a.Problems) == 0
	return a
}

func notStored(t *topology, ids []string) int {
	var mu sync.Mutex
	missing := 0
	work := make(chan string)
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 10 * time.Second}
	for range 16 {
		wg.Go(func() {
			for id := range work {
				resp, err := client.Get(t.getURL + id)
				ok := err == nil && resp.StatusCode == http.StatusOK
				if err == nil {
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if !ok {
					mu.Lock()
					missing++
					mu.Unlock()
				}
			}
		})
	}
	for _, id := range ids {
		work <- id
	}
	close(work)
	wg.Wait()
	return missing
}

func percentile(sorted []float64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(p / 100 * float64(len(sorted)-1))
	return sorted[i]
}

func sortedCopy(xs []float64) []float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s
}

// appCPUShare is the apps' CPU over the daprds' (0 without daprds), from
// each process's CPU seconds: a process named "... daprd" is a sidecar, the
// topology's Redis is neither, every other process is an app.
func appCPUShare(used map[string]float64) float64 {
	var app, daprd float64
	for name, s := range used {
		switch {
		case name == redisProcess:
		case strings.HasSuffix(name, "daprd"):
			daprd += s
		default:
			app += s
		}
	}
	if daprd == 0 {
		return 0
	}
	return app / daprd
}
