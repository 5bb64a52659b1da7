package fdpoll

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/multiserve/multiserve/internal/fdpoll/fdpolltest"
	"github.com/multiserve/multiserve/workers"
)

func TestBeatInterval(t *testing.T) {
	for _, tc := range []struct{ timeout, want time.Duration }{
		{30 * time.Second, time.Second},
		{time.Second, 500 * time.Millisecond},
		{0, time.Second},                          // arbiter check disabled: still beat
		{time.Millisecond, 10 * time.Millisecond}, // floor: no busy loop
	} {
		if got := BeatInterval(tc.timeout); got != tc.want {
			t.Errorf("BeatInterval(%v) = %v, want %v", tc.timeout, got, tc.want)
		}
	}
}

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

func TestClassifyAccept(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want AcceptVerdict
	}{
		{unix.EAGAIN, AcceptDrained},
		{fmt.Errorf("wrapped: %w", unix.ECONNABORTED), AcceptRetry},
		{unix.EINTR, AcceptRetry},
		{unix.EMFILE, AcceptBackoff},
		{unix.ENFILE, AcceptBackoff},
		{unix.EBADF, AcceptFatal},
		{unix.EINVAL, AcceptFatal},
		{fmt.Errorf("not an errno"), AcceptFatal},
	} {
		if got := ClassifyAccept(tc.err); got != tc.want {
			t.Errorf("ClassifyAccept(%v) = %v, want %v", tc.err, got, tc.want)
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

func TestNonblockListeners(t *testing.T) {
	fd, addr := fdpolltest.ListenTCP(t) // blocking, as the arbiter hands it over
	if err := NonblockListeners([]*workers.Listener{{FD: fd, Name: addr}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := unix.Accept4(fd, 0); err != unix.EAGAIN {
		t.Fatalf("accept4 on an empty non-blocking listener = %v, want EAGAIN", err)
	}
}

// TestAcceptBackoffLogRateLimited: a failure every back-off delay logs
// once per AcceptLogInterval, with the count of the lines held back.
func TestAcceptBackoffLogRateLimited(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	var a AcceptBackoffLog
	start := time.Unix(1000, 0)
	steps := int(2*AcceptLogInterval/AcceptBackoffDelay) + 1
	for i := range steps {
		a.Warn(log, start.Add(time.Duration(i)*AcceptBackoffDelay), "accept failed", "l", unix.EMFILE)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("%d failures over %v logged %d lines, want 3:\n%s", steps, 2*AcceptLogInterval, len(lines), buf.String())
	}
	want := fmt.Sprintf("suppressed=%d", int(AcceptLogInterval/AcceptBackoffDelay)-1)
	if !strings.Contains(lines[1], want) {
		t.Errorf("second line %q lacks %s", lines[1], want)
	}
}
