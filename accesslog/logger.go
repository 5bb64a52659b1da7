// Package accesslog writes one line per request in gunicorn's
// access_log_format atoms (or JSON), from an http.Handler wrapper that
// every worker class can use.
//
// The format is compiled once by New; formatting a line appends into a
// pooled buffer and costs no allocation for the usual atoms (the u atom
// decodes basic auth, which allocates when an Authorization header is
// present). Each line reaches the writer in one Write call, so an
// internal/logfile.File (safe for concurrent use, reopened on USR1) is the
// intended writer.
package accesslog

import (
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultFormat is gunicorn's default access_log_format.
const DefaultFormat = `%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"`

// JSONFormat selects one JSON object per line instead of atoms.
const JSONFormat = "json"

// Logger formats and writes access log lines. Safe for concurrent use if
// its writer is.
type Logger struct {
	w       io.Writer
	items   []item // nil in JSON mode
	json    bool
	rejects rejectLimit // Rejected's rate limit
}

// New compiles format (DefaultFormat when empty; JSONFormat for JSON
// lines) for writes to w. An unknown or malformed atom is an error naming
// it.
func New(w io.Writer, format string) (*Logger, error) {
	if format == "" {
		format = DefaultFormat
	}
	if format == JSONFormat {
		return &Logger{w: w, json: true}, nil
	}
	items, err := compile(format)
	if err != nil {
		return nil, err
	}
	return &Logger{w: w, items: items}, nil
}

// entry is what the wrapper recorded about one response.
type entry struct {
	start  time.Time
	dur    time.Duration
	status int
	bytes  int64
	header http.Header   // response header
	queue  time.Duration // from X-Request-Start; -1 without it
	rid    string        // X-Request-Id, honoured or generated
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// write formats one line and writes it with a single Write. Write errors
// are dropped: a full disk must not fail requests, and logging the
// failure per line would flood the error log.
func (l *Logger) write(r *http.Request, e *entry) {
	bp := bufPool.Get().(*[]byte)
	b := (*bp)[:0]
	if l.json {
		b = appendJSON(b, r, e)
	} else {
		b = l.appendLine(b, r, e)
	}
	b = append(b, '\n')
	_, _ = l.w.Write(b)
	if cap(b) <= 64<<10 { // do not let one huge line pin memory in the pool
		*bp = b
		bufPool.Put(bp)
	}
}

func (l *Logger) appendLine(b []byte, r *http.Request, e *entry) []byte {
	for i := range l.items {
		it := &l.items[i]
		switch it.kind {
		case kLiteral:
			b = append(b, it.arg...)
		case kTime:
			b = appendCLFTime(b, e.start)
		case kStatus:
			b = strconv.AppendInt(b, int64(e.status), 10)
		case kBytes:
			b = strconv.AppendInt(b, e.bytes, 10)
		case kBytesCLF:
			if e.bytes == 0 {
				b = append(b, '-')
			} else {
				b = strconv.AppendInt(b, e.bytes, 10)
			}
		case kSeconds:
			b = strconv.AppendInt(b, int64(e.dur/time.Second), 10)
		case kMicros:
			b = strconv.AppendInt(b, int64(e.dur/time.Microsecond), 10)
		case kMillis:
			b = strconv.AppendInt(b, int64(e.dur/time.Millisecond), 10)
		case kDecimalSecs:
			b = appendDecimalSecs(b, e.dur)
		case kPID:
			b = append(b, pidAtom...)
		case kQueue:
			if e.queue < 0 {
				b = append(b, '-')
			} else {
				b = strconv.AppendInt(b, int64(e.queue/time.Microsecond), 10)
			}
		case kRequestLine:
			b = appendEscaped(b, r.Method)
			b = append(b, ' ')
			b = appendEscaped(b, requestURI(r))
			b = append(b, ' ')
			b = appendEscaped(b, r.Proto)
		default:
			b = appendValue(b, stringAtom(it, r, e))
		}
	}
	return b
}

// stringAtom returns the raw (unescaped) value of a string-valued atom.
func stringAtom(it *item, r *http.Request, e *entry) string {
	switch it.kind {
	case kRemoteHost:
		return remoteHost(r.RemoteAddr)
	case kRemotePort:
		return remotePort(r.RemoteAddr)
	case kUser:
		if len(r.Header["Authorization"]) == 0 { // skip BasicAuth's key canonicalisation
			return ""
		}
		u, _, _ := r.BasicAuth()
		return u
	case kMethod:
		return r.Method
	case kPath:
		return r.URL.Path
	case kQuery:
		return r.URL.RawQuery
	case kProto:
		return r.Proto
	case kRequestURI:
		return requestURI(r)
	case kReferer:
		return first(r.Header["Referer"])
	case kUserAgent:
		return first(r.Header["User-Agent"])
	case kRequestID:
		return e.rid
	case kReqHeader:
		return headerValue(r.Header, it.arg)
	case kRespHeader:
		return headerValue(e.header, it.arg)
	}
	return "" // kDash
}

// pidAtom is gunicorn's %(p)s: "<pid>". Workers are exec'd, not forked,
// so the pid at init is the worker's.
var pidAtom = "<" + strconv.Itoa(os.Getpid()) + ">"

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// headerValue returns the first value of a header; several values would
// need a join, so all but the first are dropped rather than allocating.
func headerValue(h http.Header, canonical string) string {
	if h == nil {
		return ""
	}
	if v := h[canonical]; len(v) > 0 {
		return v[0]
	}
	return ""
}

func requestURI(r *http.Request) string {
	if r.RequestURI != "" {
		return r.RequestURI
	}
	return r.URL.RequestURI()
}

// remoteHost strips the port from "ip:port" / "[ipv6]:port" (gunicorn's
// h is REMOTE_ADDR, the address alone).
func remoteHost(addr string) string {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 || strings.IndexByte(addr[i:], ']') >= 0 {
		return addr
	}
	return strings.TrimSuffix(strings.TrimPrefix(addr[:i], "["), "]")
}

func remotePort(addr string) string {
	i := strings.LastIndexByte(addr, ':')
	if i < 0 || strings.IndexByte(addr[i:], ']') >= 0 {
		return ""
	}
	return addr[i+1:]
}

// appendValue appends v escaped, or "-" when it is empty (CLF's "no value").
func appendValue(b []byte, v string) []byte {
	if v == "" {
		return append(b, '-')
	}
	return appendEscaped(b, v)
}

// appendEscaped appends s with Apache's access-log escaping: '"' and '\'
// get a backslash, control bytes and bytes >= 0x7f become \xHH, so a
// client cannot forge log lines or send terminal escapes to whoever reads
// the log.
func appendEscaped(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	start := 0 // s[start:i] is a run of bytes needing no escape
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c < 0x7f && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		start = i + 1
		if c == '"' || c == '\\' {
			b = append(b, '\\', c)
		} else {
			b = append(b, '\\', 'x', hex[c>>4], hex[c&0xf])
		}
	}
	return append(b, s[start:]...)
}

// appendDecimalSecs is gunicorn's L: seconds with six decimals.
func appendDecimalSecs(b []byte, d time.Duration) []byte {
	us := int64(d / time.Microsecond)
	b = strconv.AppendInt(b, us/1e6, 10)
	b = append(b, '.')
	frac := us % 1e6
	for p := int64(1e5); p > 1 && frac < p; p /= 10 {
		b = append(b, '0')
	}
	return strconv.AppendInt(b, frac, 10)
}

// clfStamp caches the formatted [02/Jan/2006:15:04:05 -0700] of one
// second: a busy worker formats the time once a second, not per line.
type clfStamp struct {
	sec int64
	loc *time.Location
	s   []byte
}

var clfCache atomic.Pointer[clfStamp]

func appendCLFTime(b []byte, t time.Time) []byte {
	sec, loc := t.Unix(), t.Location()
	if c := clfCache.Load(); c != nil && c.sec == sec && c.loc == loc {
		return append(b, c.s...)
	}
	s := t.AppendFormat(make([]byte, 0, 30), "[02/Jan/2006:15:04:05 -0700]")
	clfCache.Store(&clfStamp{sec: sec, loc: loc, s: s})
	return append(b, s...)
}
