package main

import "github.com/daprfn/shop/internal/procstat"

// cpuSeconds reads user+system CPU seconds of each process; a process that
// is gone is left out.
func cpuSeconds(pids map[string]int) map[string]float64 {
	out := make(map[string]float64, len(pids))
	for name, pid := range pids {
		if s, err := procstat.CPUSeconds(pid); err == nil {
			out[name] = s
		}
	}
	return out
}

// peakRSSMB reads a process's peak resident set in MB, 0 when it is gone.
func peakRSSMB(pid int) float64 {
	mb, _ := procstat.PeakRSSMB(pid)
	return mb
}
