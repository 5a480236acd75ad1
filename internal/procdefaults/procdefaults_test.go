package procdefaults

import (
	"os"
	"runtime"
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestApplySetsWhatTheEnvironmentLeavesUnset(t *testing.T) {
	prevGC := debug.SetGCPercent(GOGC + 30) // not ours, so Apply must set it
	prevProcs := runtime.GOMAXPROCS(GOMAXPROCS + 1)
	t.Cleanup(func() { debug.SetGCPercent(prevGC); runtime.GOMAXPROCS(prevProcs) })
	for _, k := range []string{"GOGC", "GOMAXPROCS"} {
		t.Setenv(k, "") // restores the variable at cleanup
		if err := os.Unsetenv(k); err != nil {
			t.Fatal(err)
		}
	}

	gogc, procs := Apply()
	assert.Equal(t, GOGC, gogc)
	assert.Equal(t, GOMAXPROCS, procs)
	assert.Equal(t, GOGC, debug.SetGCPercent(GOGC), "the GC target in effect")
}

func TestApplyLeavesWhatTheEnvironmentSets(t *testing.T) {
	prevGC := debug.SetGCPercent(80)
	prevProcs := runtime.GOMAXPROCS(2)
	t.Cleanup(func() { debug.SetGCPercent(prevGC); runtime.GOMAXPROCS(prevProcs) })
	t.Setenv("GOGC", "80")
	t.Setenv("GOMAXPROCS", "2")

	gogc, procs := Apply()
	assert.Equal(t, -1, gogc, "GOGC from the environment: not ours to report")
	assert.Equal(t, 2, procs)
	assert.Equal(t, 80, debug.SetGCPercent(80), "the GC target is left alone")
}
