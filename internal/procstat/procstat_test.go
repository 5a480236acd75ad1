package procstat

import (
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestCPUSecondsGrowsWithWork(t *testing.T) {
	before, err := CPUSeconds(os.Getpid())
	require.NoError(t, err)
	x, after := 0, before
	// Spin for up to 5 s of wall time: on a machine not starved of CPU this
	// process gets far more than the 0.05 s asked for.
	for deadline := time.Now().Add(5 * time.Second); after < before+0.05 && time.Now().Before(deadline); {
		for i := range 1_000_000 {
			x += i
		}
		after, err = CPUSeconds(os.Getpid())
		require.NoError(t, err)
	}
	assert.GreaterOrEqual(t, after, before+0.05, "CPU seconds did not grow with work")
	assert.NotZero(t, x)
}

func TestPeakRSSCoversALiveAllocation(t *testing.T) {
	buf := make([]byte, 64<<20)
	for i := range buf {
		buf[i] = 1 // touch every page so it is resident
	}
	mb, err := PeakRSSMB(os.Getpid())
	require.NoError(t, err)
	assert.GreaterOrEqual(t, mb, 64.0)
	assert.Equal(t, byte(1), buf[len(buf)-1])
}

func TestFileRSSCoversAMappedFile(t *testing.T) {
	const size = 16 << 20
	f, err := os.CreateTemp(t.TempDir(), "mapped")
	require.NoError(t, err)
	defer f.Close()
	require.NoError(t, f.Truncate(size))
	before, err := FileRSSMB(os.Getpid())
	require.NoError(t, err)
	data, err := syscall.Mmap(int(f.Fd()), 0, size, syscall.PROT_READ, syscall.MAP_SHARED)
	require.NoError(t, err)
	defer syscall.Munmap(data)
	var sum byte
	for i := 0; i < size; i += os.Getpagesize() {
		sum += data[i] // fault every page in
	}
	after, err := FileRSSMB(os.Getpid())
	require.NoError(t, err)
	assert.GreaterOrEqual(t, after, before+15, "the 16 MB mapping is counted")
	assert.Zero(t, sum)
	peak, err := PeakRSSMB(os.Getpid())
	require.NoError(t, err)
	assert.LessOrEqual(t, after, peak, "the file-backed part is part of the resident set")
}

func TestGoneProcessIsAnError(t *testing.T) {
	cmd := exec.Command("true")
	require.NoError(t, cmd.Run())
	_, err := CPUSeconds(cmd.Process.Pid)
	assert.Error(t, err)
	_, err = PeakRSSMB(cmd.Process.Pid)
	assert.Error(t, err)
	_, err = FileRSSMB(cmd.Process.Pid)
	assert.Error(t, err)
}
