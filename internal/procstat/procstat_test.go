package procstat

import (
	"os"
	"os/exec"
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

func TestGoneProcessIsAnError(t *testing.T) {
	cmd := exec.Command("true")
	require.NoError(t, cmd.Run())
	_, err := CPUSeconds(cmd.Process.Pid)
	assert.Error(t, err)
	_, err = PeakRSSMB(cmd.Process.Pid)
	assert.Error(t, err)
}
