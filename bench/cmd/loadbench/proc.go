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

// rssMB reads a process's peak resident set and the file-backed part of
// its current one in MB, 0 when it is gone.
func rssMB(pid int) (peak, file float64) {
	peak, _ = procstat.PeakRSSMB(pid)
	file, _ = procstat.FileRSSMB(pid)
	return peak, file
}
