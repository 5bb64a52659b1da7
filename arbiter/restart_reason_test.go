package arbiter

import (
	"syscall"
	"testing"
	"time"

	"github.com/multiserve/multiserve/stats"
)

// TestRestartReason: how the arbiter names an unexpected worker exit for
// multiserve_worker_restarts_total{reason}; timeout and crash are also
// seen end to end in test/observe, the others only here.
func TestRestartReason(t *testing.T) {
	for _, tc := range []struct {
		name string
		w    worker
		want string
	}{
		{"silent, SIGABRTed", worker{ready: true, abortAt: time.Now(), ws: exitStatus{code: -1, signal: syscall.SIGABRT}}, stats.ReasonTimeout},
		{"killed before ready", worker{killed: true, ws: exitStatus{code: -1, signal: syscall.SIGKILL}}, stats.ReasonBootTimeout},
		{"clean exit after serving", worker{ready: true, ws: exitStatus{code: 0}}, stats.ReasonMaxRequests},
		{"retired for max_requests", worker{ready: true, replacing: true, retiring: true, ws: exitStatus{code: 0}}, stats.ReasonMaxRequests},
		{"SIGKILL from outside", worker{ready: true, ws: exitStatus{code: -1, signal: syscall.SIGKILL}}, stats.ReasonKilled},
		{"SIGKILL by the arbiter", worker{ready: true, killed: true, ws: exitStatus{code: -1, signal: syscall.SIGKILL}}, stats.ReasonCrash},
		{"panic exit", worker{ready: true, ws: exitStatus{code: 2}}, stats.ReasonCrash},
		{"segfault", worker{ready: true, ws: exitStatus{code: -1, signal: syscall.SIGSEGV}}, stats.ReasonCrash},
	} {
		if got := restartReason(&tc.w); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}
