package main

import (
	"image/color"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func runOf(topology string, round int, perS float64) *Result {
	return &Result{Topology: topology, Load: "saturation (16 conns)", Round: round, CompletedPerS: perS}
}

func TestMedianRoundsKeepsTheMedianRunAndEveryRoundsFigure(t *testing.T) {
	runs := []*Result{
		runOf("distributed", 1, 500), runOf("floor", 1, 900),
		runOf("distributed", 2, 700), runOf("floor", 2, 1000),
		runOf("distributed", 3, 600), runOf("floor", 3, 800),
	}
	med := medianRounds(runs)
	require.Len(t, med, 2)
	assert.Equal(t, "distributed", med[0].Topology, "first appearance order")
	assert.Equal(t, 3, med[0].Round)
	assert.Equal(t, []float64{500, 700, 600}, med[0].Rounds, "rounds in run order")
	assert.Equal(t, 1, med[1].Round, "floor's median is round 1 (900)")

	even := medianRounds([]*Result{runOf("floor", 1, 900), runOf("floor", 2, 800)})
	assert.Equal(t, 800.0, even[0].CompletedPerS, "the lower middle of an even count")
}

func TestCompareMediansAndEachRound(t *testing.T) {
	runs := []*Result{
		runOf("distributed", 1, 500), runOf("floor", 1, 1000),
		runOf("distributed", 2, 600), runOf("floor", 2, 750),
		runOf("distributed", 3, 550), runOf("floor", 3, 800),
	}
	r := &report{Scenarios: medianRounds(runs)}
	r.compare(runs)
	require.Len(t, r.Compared, 1, "no floor-bindings or seed runs: one comparison")
	f := r.Compared[0]
	assert.Equal(t, "floor", f.Baseline)
	assert.InDelta(t, 100*550.0/800, f.Percent, 1e-9, "median against median")
	assert.InDeltaSlice(t, []float64{50, 80, 68.75}, f.PercentByRound, 1e-9, "each round against its own floor")
}

func TestTheSeedIsComparedByItsAnswers(t *testing.T) {
	seed := runOf("seed", 1, 0)
	seed.AnsweredPerSec = 400
	shop := runOf("distributed", 1, 600)
	runs := []*Result{shop, seed}
	r := &report{Scenarios: medianRounds(runs)}
	r.compare(runs)
	require.Len(t, r.Compared, 1)
	assert.Equal(t, "seed", r.Compared[0].Baseline)
	assert.InDelta(t, 150, r.Compared[0].Percent, 1e-9, "the seed completes nothing: its answered/s is the baseline")
	assert.Equal(t, []float64{400}, r.Scenarios[1].Rounds)
}

func TestBothSeedsAreBaselines(t *testing.T) {
	stock, tuned := runOf("seed", 1, 0), runOf("seed-tuned", 1, 0)
	stock.AnsweredPerSec, tuned.AnsweredPerSec = 300, 400
	runs := []*Result{runOf("distributed", 1, 900), stock, tuned}
	r := &report{Scenarios: medianRounds(runs)}
	r.compare(runs)
	require.Len(t, r.Compared, 2)
	assert.Equal(t, "seed", r.Compared[0].Baseline)
	assert.InDelta(t, 300, r.Compared[0].Percent, 1e-9)
	assert.Equal(t, "seed-tuned", r.Compared[1].Baseline)
	assert.InDelta(t, 225, r.Compared[1].Percent, 1e-9)
	md := r.markdown()
	assert.Contains(t, md, "| seed | distributed | saturation (16 conns) | 900 | 300 | 3.00x |")
	assert.Contains(t, md, "| seed-tuned | distributed | saturation (16 conns) | 900 | 400 | 2.25x |")
}

func TestTheRecordOfChangesEndsTheMarkdownReport(t *testing.T) {
	r := &report{Scenarios: medianRounds([]*Result{runOf("distributed", 1, 900)})}
	assert.NotContains(t, r.markdown(), "What each change bought", "no record given: no section")
	r.Changes = "\n**What each change bought.** x\n\n"
	assert.True(t, strings.HasSuffix(r.markdown(), "\n\n**What each change bought.** x\n"), "after the tables, trimmed")

	changes, err := os.ReadFile("../../changes.md")
	require.NoError(t, err, "the default -changes path, from the repository root")
	assert.Contains(t, string(changes), "| change | measured how | what it bought |")
}

func TestAppCPUShareLeavesRedisOut(t *testing.T) {
	used := map[string]float64{"order-service": 1, "order-service daprd": 4, "inventory-service": 1, "inventory-service daprd": 4, redisProcess: 3}
	assert.InDelta(t, 0.25, appCPUShare(used), 1e-9)
	assert.Zero(t, appCPUShare(map[string]float64{"order-service": 1}), "no sidecar: no share")
}

func TestSmallRatiosAreNotPrintedAsZero(t *testing.T) {
	assert.Equal(t, "0.30x", times(0.3012))
	assert.Equal(t, "0.0041x", times(34.3/8393))
	assert.Equal(t, "0.00x", times(0))
}

func TestEveryTopologyIsPlottedInAColourOfItsOwn(t *testing.T) {
	seen := map[color.Color]string{}
	for name := range strings.SplitSeq(allScenarios, ",") {
		st := lineStyle(name)
		assert.Contains(t, topologyColors, name, "a colour of its own, the same in every report")
		if other, ok := seen[st.Color]; ok {
			t.Errorf("%s and %s share a colour", name, other)
		}
		seen[st.Color] = name
		assert.Equal(t, strings.HasPrefix(name, "seed"), len(st.Dashes) > 0, "%s: the seed's lines are dashed, the others solid", name)
	}
}

func TestTheMicroBenchmarkTableNamesACommandThatRunsThem(t *testing.T) {
	r := &report{Micro: []MicroResult{{Benchmark: "HTTPInvoke", RuntimeNsOp: 1, SDKNsOp: 1}}}
	assert.Contains(t, r.markdown(), "`go test -run '^$' -bench . ./runtime/dapr/`",
		"-bench takes a pattern and the package comes last; -run '^$' leaves the tests out")
}
