package workers

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
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

func TestNonblockListeners(t *testing.T) {
	fd, addr := listenBlocking(t) // as the arbiter hands it over
	if err := NonblockListeners([]*Listener{{FD: fd, Name: addr}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := unix.Accept4(fd, 0); err != unix.EAGAIN {
		t.Fatalf("accept4 on an empty non-blocking listener = %v, want EAGAIN", err)
	}
}

// TestBackoffLogRateLimited: a failure every back-off delay logs once per
// AcceptLogInterval, with the count of the lines held back.
func TestBackoffLogRateLimited(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	var a Backoff
	start := time.Unix(1000, 0)
	steps := int(2*AcceptLogInterval/AcceptBackoffDelay) + 1
	for i := range steps {
		a.Pause(log, start.Add(time.Duration(i)*AcceptBackoffDelay), "l", unix.EMFILE)
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

// listenBlocking is a blocking listening socket on 127.0.0.1:0.
func listenBlocking(t *testing.T) (int, string) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 16); err != nil {
		t.Fatal(err)
	}
	return fd, "127.0.0.1"
}
