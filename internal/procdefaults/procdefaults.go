package procdefaults

import (
	"os"
	"runtime"
	"runtime/debug"
)

// GOGC is the GC target unless GOGC is set: half Go's default keeps each
// function app within 25 MB RSS under saturation for a little more app CPU.
const GOGC = 50

// GOMAXPROCS is how many threads run Go code unless GOMAXPROCS is set. A
// function app waits on its sidecar far more than it computes, and with one
// P the scheduler stops spinning idle threads in search of work after every
// wake-up: ~15-20 % less app CPU per order on 2 cores, for the same
// throughput. A container CPU limit of one core or less gives the same.
const GOMAXPROCS = 1

// Apply sets GOGC and GOMAXPROCS where the environment leaves them unset,
// and returns the values in effect.
func Apply() (gogc, gomaxprocs int) {
	gogc = -1 // unknown: set by the environment
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(GOGC)
		gogc = GOGC
	}
	if _, set := os.LookupEnv("GOMAXPROCS"); !set {
		runtime.GOMAXPROCS(GOMAXPROCS)
	}
	return gogc, runtime.GOMAXPROCS(0)
}
