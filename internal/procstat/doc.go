// Package procstat reads a process's CPU time and peak resident memory from
// Linux's /proc, for the benchmarks that charge each process its share of
// the work.
package procstat
