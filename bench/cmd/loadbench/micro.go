package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// MicroResult compares one trigger's dispatch with a bare go-sdk handler.
type MicroResult struct {
	Benchmark     string  `json:"benchmark"`
	RuntimeNsOp   float64 `json:"runtimeNsPerOp"`
	SDKNsOp       float64 `json:"goSdkNsPerOp"`
	RuntimeAllocs float64 `json:"runtimeAllocsPerOp"`
	SDKAllocs     float64 `json:"goSdkAllocsPerOp"`
	NsRatio       float64 `json:"nsRatio"`
	AllocRatio    float64 `json:"allocRatio"`
}

var benchLine = regexp.MustCompile(`^Benchmark(\w+)/(runtime|go-sdk)-\d+\s+\d+\s+([\d.]+) ns/op\s+[\d.]+ B/op\s+([\d.]+) allocs/op`)

// goBuild builds pkg into out as `make build` and the Dockerfile build the
// shop: static (no libc mapped into each app), without symbol tables.
func goBuild(out, pkg string) error {
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	return cmd.Run()
}

func micro(o options) ([]MicroResult, error) {
	cmd := exec.Command("go", "test", "-run", "XXX", "-bench", ".", "-benchmem", "-count", "6", "./runtime/dapr/")
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, os.Stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("micro-benchmarks: %w\n%s", err, buf.String())
	}
	raw := filepath.Join(o.out, "micro.txt")
	if err := os.WriteFile(raw, buf.Bytes(), 0o644); err != nil {
		return nil, err
	}
	if o.baseline != "" {
		bs := exec.Command("go", "tool", "benchstat", o.baseline, raw)
		bs.Stdout, bs.Stderr = os.Stdout, os.Stderr
		if err := bs.Run(); err != nil {
			return nil, fmt.Errorf("benchstat: %w", err)
		}
	}
	type acc struct{ ns, allocs []float64 }
	data := map[string]map[string]*acc{}
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		m := benchLine.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if m == nil {
			continue
		}
		if data[m[1]] == nil {
			data[m[1]] = map[string]*acc{"runtime": {}, "go-sdk": {}}
		}
		ns, _ := strconv.ParseFloat(m[3], 64)
		al, _ := strconv.ParseFloat(m[4], 64)
		a := data[m[1]][m[2]]
		a.ns, a.allocs = append(a.ns, ns), append(a.allocs, al)
	}
	var out []MicroResult
	for name, d := range data {
		r := MicroResult{Benchmark: name, RuntimeNsOp: median(d["runtime"].ns), SDKNsOp: median(d["go-sdk"].ns),
			RuntimeAllocs: median(d["runtime"].allocs), SDKAllocs: median(d["go-sdk"].allocs)}
		if r.SDKNsOp > 0 {
			r.NsRatio = r.RuntimeNsOp / r.SDKNsOp
		}
		if r.SDKAllocs > 0 {
			r.AllocRatio = r.RuntimeAllocs / r.SDKAllocs
		}
		out = append(out, r)
		fmt.Printf("  %-14s runtime %8.0f ns/op %4.0f allocs   go-sdk %8.0f ns/op %4.0f allocs   ratio %.2fx time, %.2fx allocs\n",
			name, r.RuntimeNsOp, r.RuntimeAllocs, r.SDKNsOp, r.SDKAllocs, r.NsRatio, r.AllocRatio)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Benchmark < out[j].Benchmark })
	return out, nil
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	return s[len(s)/2]
}
