package apps

import (
	"fmt"
	"net/http"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Caps on sim's parameters: large enough for any bench, small enough that a
// typo cannot wedge a worker for hours or fill a disk.
const (
	SimMaxDuration = 10 * time.Minute
	SimMaxSize     = 1 << 30
)

// simChunk is what sim streams, chunk by chunk: a response of any size
// costs one shared 32 KiB buffer, never an allocation of its size.
var simChunk = []byte(strings.Repeat("x", 32<<10))

// simParams is a validated sim request.
type simParams struct {
	cpu, io time.Duration
	size    int64
	status  int
}

// Sim returns the "sim" app, a workload knob. Query parameters, all
// optional, applied in this order:
//
//	cpu=2ms     burn this much CPU time on the handling thread (busy loop)
//	io=50ms     then wait this long, as a blocking call would (ends early
//	            if the request's context is cancelled)
//	size=1024   then write this many bytes ('x'), streamed in 32 KiB chunks;
//	            K, M, G suffixes (powers of 1024) are accepted
//	status=503  the response status (200..599, default 200)
//
// A duration is Go syntax (1.5s, 300ms, 20us) or a bare integer meaning
// milliseconds. A bad, negative or over-cap value, or an unknown
// parameter (so that a typo is not silently measured as a no-op), is a
// 400 with a one-line reason. Sets X-Worker-Pid.
func Sim() http.Handler { return http.HandlerFunc(sim) }

func sim(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Worker-Pid", pidString)
	p, err := parseSim(r.URL.Query())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	burnCPU(p.cpu)
	if p.io > 0 {
		t := time.NewTimer(p.io)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return // the client is gone: nobody to answer
		}
	}
	h.Set("Content-Type", "text/plain; charset=utf-8")
	if bodyAllowed(p.status) {
		h.Set("Content-Length", strconv.FormatInt(p.size, 10))
	}
	w.WriteHeader(p.status)
	for left := p.size; left > 0; {
		n := min(left, int64(len(simChunk)))
		if _, err := w.Write(simChunk[:n]); err != nil {
			return // client gone; the server logs the short write
		}
		left -= n
	}
}

func parseSim(q url.Values) (simParams, error) {
	p := simParams{status: http.StatusOK}
	for key, vals := range q {
		if len(vals) != 1 {
			return p, fmt.Errorf("sim: %s given %d times", key, len(vals))
		}
		v := vals[0]
		var err error
		switch key {
		case "cpu":
			p.cpu, err = parseSimDuration(v)
		case "io":
			p.io, err = parseSimDuration(v)
		case "size":
			p.size, err = parseSimSize(v)
		case "status":
			p.status, err = strconv.Atoi(v)
			if err != nil || p.status < 200 || p.status > 599 {
				err = fmt.Errorf("want an integer in 200..599")
			}
		default:
			return p, fmt.Errorf("sim: unknown parameter %q (known: cpu, io, size, status)", key)
		}
		if err != nil {
			return p, fmt.Errorf("sim: %s=%q: %v", key, v, err)
		}
	}
	if p.size > 0 && !bodyAllowed(p.status) {
		return p, fmt.Errorf("sim: status %d allows no body but size=%d", p.status, p.size)
	}
	return p, nil
}

// bodyAllowed reports whether a response with this status may carry a
// body (RFC 9110: not 204 or 304; 1xx is never produced here).
func bodyAllowed(status int) bool {
	return status != http.StatusNoContent && status != http.StatusNotModified
}

func parseSimDuration(v string) (time.Duration, error) {
	var d time.Duration
	if n, err := strconv.ParseInt(v, 10, 64); err == nil {
		if n > int64(SimMaxDuration/time.Millisecond) {
			n = int64(SimMaxDuration/time.Millisecond) + 1 // over the cap, without overflow
		}
		d = time.Duration(n) * time.Millisecond
	} else if d, err = time.ParseDuration(v); err != nil {
		return 0, fmt.Errorf("want a duration such as 20ms or 1.5s")
	}
	if d < 0 || d > SimMaxDuration {
		return 0, fmt.Errorf("want a duration in 0..%v", SimMaxDuration)
	}
	return d, nil
}

func parseSimSize(v string) (int64, error) {
	mult := int64(1)
	s := strings.TrimSuffix(strings.TrimSuffix(strings.ToLower(v), "ib"), "b")
	if s != "" {
		switch s[len(s)-1] {
		case 'k':
			mult, s = 1<<10, s[:len(s)-1]
		case 'm':
			mult, s = 1<<20, s[:len(s)-1]
		case 'g':
			mult, s = 1<<30, s[:len(s)-1]
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > SimMaxSize/mult {
		return 0, fmt.Errorf("want a byte count in 0..%d (K, M, G suffixes allowed)", SimMaxSize)
	}
	return n * mult, nil
}

// burnCPU spins for d of this thread's CPU time, measured with
// CLOCK_THREAD_CPUTIME_ID rather than the wall clock, so "cpu=2ms" costs
// 2 ms of CPU even on a contended machine. The goroutine is locked to its
// thread for the duration so that the clock belongs to it (nesting is
// fine: the sync and threaded classes already hold the lock).
func burnCPU(d time.Duration) {
	if d <= 0 {
		return
	}
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	start, ok := threadCPU()
	if !ok { // no thread clock: fall back to the wall clock
		for end := time.Now().Add(d); time.Now().Before(end); {
			spin()
		}
		return
	}
	for {
		spin()
		now, _ := threadCPU()
		if now-start >= d {
			return
		}
	}
}

func threadCPU() (time.Duration, bool) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0, false
	}
	return time.Duration(ts.Nano()), true
}

// spinSink keeps the compiler from deleting spin's loop; atomic because
// many handlers burn at once.
var spinSink atomic.Uint64

// spin does roughly 10 µs of arithmetic between clock reads.
func spin() {
	x := uint64(time.Now().UnixNano()) | 1
	for range 20000 {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
	}
	spinSink.Store(x)
}
