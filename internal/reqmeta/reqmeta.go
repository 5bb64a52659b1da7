// Package reqmeta reads and sets the request metadata that the access log
// and the scoreboard share: queue time from a proxy's X-Request-Start and
// the X-Request-Id correlation id.
package reqmeta

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// HeaderRequestStart and HeaderRequestID are the canonical header names.
const (
	HeaderRequestStart = "X-Request-Start"
	HeaderRequestID    = "X-Request-Id"
)

// QueueTime is how long the request waited before its handler ran, from
// an X-Request-Start header set by a proxy in front (nginx/Heroku style:
// "t=<µs, ms or s since the epoch>", or the bare number). Without the
// header, or with a stamp in the future, it is 0: the worker cannot know
// when the kernel queued the connection.
func QueueTime(r *http.Request, now time.Time) time.Duration {
	vs := r.Header[HeaderRequestStart]
	if len(vs) == 0 {
		return 0
	}
	f, err := strconv.ParseFloat(strings.TrimPrefix(vs[0], "t="), 64)
	if err != nil || f <= 0 {
		return 0
	}
	var t time.Time
	switch {
	case f > 1e15: // microseconds
		t = time.UnixMicro(int64(f))
	case f > 1e12: // milliseconds
		t = time.UnixMilli(int64(f))
	default: // seconds, possibly fractional
		t = time.Unix(0, int64(f*1e9))
	}
	return max(now.Sub(t), 0)
}

// HasQueueStart reports whether the request carries X-Request-Start (so a
// caller can skip reading the clock).
func HasQueueStart(r *http.Request) bool { return len(r.Header[HeaderRequestStart]) > 0 }

// maxIDLen bounds an incoming id that is honoured.
const maxIDLen = 128

// RequestID returns the request's X-Request-Id, honouring one sent by the
// client or a proxy when it is at most 128 visible ASCII characters, and
// otherwise generating a random 32-hex-digit id and setting it on the
// request's header (so handlers and logs see the same value).
func RequestID(r *http.Request) string {
	if vs := r.Header[HeaderRequestID]; len(vs) > 0 && validID(vs[0]) {
		return vs[0]
	}
	id := NewID()
	r.Header[HeaderRequestID] = []string{id}
	return id
}

// NewID is a random 128-bit id in hex.
func NewID() string {
	var b [32]byte
	const hex = "0123456789abcdef"
	hi, lo := rand.Uint64(), rand.Uint64()
	for i := 0; i < 16; i++ {
		b[i] = hex[(hi>>(60-4*i))&0xf]
		b[16+i] = hex[(lo>>(60-4*i))&0xf]
	}
	return string(b[:])
}

func validID(s string) bool {
	if s == "" || len(s) > maxIDLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}
