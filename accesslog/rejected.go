package accesslog

import (
	"bytes"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Requests the engine refused (400, 413, 414, 431, ...) never reach the
// handler, so Wrap never sees them; Rejected writes their line. A flood of
// bad requests must not fill the disk: at most rejectBurst lines are
// written per rejectWindow, the rest are counted and their number goes in
// the next line that is written.
const (
	rejectBurst  = 20
	rejectWindow = time.Second
	headMax      = 256 // bytes of the request line kept
)

type rejectLimit struct {
	mu      sync.Mutex
	window  time.Time
	n       int
	dropped int
}

// allow reports whether a line may be written now and how many were
// dropped since the last one written.
func (r *rejectLimit) allow(now time.Time) (bool, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now.Sub(r.window) >= rejectWindow {
		r.window, r.n = now, 0
	}
	if r.n >= rejectBurst {
		r.dropped++
		return false, 0
	}
	r.n++
	d := r.dropped
	r.dropped = 0
	return true, d
}

// Rejected logs a refused request: peer, status and what is known of the
// request line (head: the bytes the client sent, cut at the first line
// end and headMax bytes; the line format escapes what is not printable).
// Rate-limited; a line after dropped ones carries X-Rejected-Dropped in
// its response headers (%({x-rejected-dropped}o)s).
func (l *Logger) Rejected(remote string, status int, head []byte) {
	now := time.Now()
	ok, dropped := l.rejects.allow(now)
	if !ok {
		return
	}
	method, target, proto := splitRequestLine(head)
	r := &http.Request{Method: method, RequestURI: target, Proto: proto, RemoteAddr: remote,
		URL: &url.URL{Path: target}, Header: http.Header{}}
	e := entry{start: now, status: status, queue: -1, header: http.Header{}}
	if dropped > 0 {
		e.header.Set("X-Rejected-Dropped", strconv.Itoa(dropped))
	}
	l.write(r, &e)
}

// splitRequestLine returns the parts of head's first line, "-" for a
// part that is missing.
func splitRequestLine(head []byte) (method, target, proto string) {
	if i := bytes.IndexAny(head, "\r\n"); i >= 0 {
		head = head[:i]
	}
	if len(head) > headMax {
		head = head[:headMax]
	}
	parts := strings.SplitN(string(head), " ", 3)
	for len(parts) < 3 {
		parts = append(parts, "-")
	}
	for i, p := range parts {
		if p == "" {
			parts[i] = "-"
		}
	}
	return parts[0], parts[1], parts[2]
}
