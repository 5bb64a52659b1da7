package fdpoll

import (
	"context"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestMillis(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want int
	}{{0, 0}, {-time.Second, 0}, {time.Microsecond, 1}, {time.Millisecond, 1}, {1500 * time.Microsecond, 2}} {
		if got := Millis(tc.d); got != tc.want {
			t.Errorf("Millis(%v) = %d, want %d", tc.d, got, tc.want)
		}
	}
}

// A cancelled context makes the waker readable; Drain empties it; Wake
// after Close is harmless.
func TestWaker(t *testing.T) {
	w, err := NewWaker()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	stop := w.WakeOnDone(ctx)
	readable := func(ms int) bool {
		fds := []unix.PollFd{{Fd: int32(w.FD()), Events: unix.POLLIN}}
		n, _ := unix.Poll(fds, ms)
		return n == 1
	}
	if readable(0) {
		t.Fatal("readable before any wake")
	}
	cancel()
	if !readable(10_000) {
		t.Fatal("not readable after ctx was cancelled")
	}
	w.Drain()
	if readable(0) {
		t.Fatal("still readable after Drain")
	}
	stop()
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w.Wake()
	if err := w.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
