package h1

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Sink receives a connection's serialised response bytes: *bufio.Writer in
// the blocking Conn; an event loop supplies its own (append to an outbound
// buffer on Write, hand it to the loop on Flush). A Response calls its Sink
// from one goroutine at a time (the handler's, or the request_timeout
// timer's, serialised by the Response's lock).
type Sink interface {
	io.Writer
	Flush() error
}

// bodyBufSize is how much of a response body is held back so that a
// response which fits gets a Content-Length instead of chunked framing.
const bodyBufSize = 4096

// Response is the http.ResponseWriter (and http.Flusher) the engine hands a
// handler. It serialises the response into a Sink: status line, the
// handler's headers, Date (cached, updated once a second), Server, then
// Content-Length when the body fits its buffer or the handler declared one,
// chunked encoding otherwise (close-delimited for HTTP/1.0). HEAD responses
// carry the headers only.
type Response struct {
	sink        Sink
	req         *http.Request
	hdr         http.Header
	status      int
	isHead      bool
	reqKeep     bool // the request allows another one after it
	disableKeep bool // server or engine wants the connection closed
	wroteHeader bool
	committed   bool
	chunked     bool
	closeDelim  bool
	keepAlive   bool  // decided at commit
	declared    int64 // Content-Length set by the handler, -1 if none
	written     int64
	buf         []byte
	scratch     []byte
	stopping    *atomic.Bool // the connection's graceful-stop flag, if any
	draining    *atomic.Bool // Server.Draining, if any
	hijack      hijacker     // nil: Hijack is not supported
	mu          sync.Mutex
	timedOut    bool
	finished    bool
	hijacked    bool
	err         error // first write error from the sink
	// expect100 is set while a 100 Continue may still be sent.
	expect100     bool
	askedContinue bool
	sentContinue  bool
}

var responsePool = sync.Pool{New: func() any {
	return &Response{buf: make([]byte, 0, bodyBufSize), scratch: make([]byte, 0, 512), hdr: make(http.Header)}
}}

// NewResponse returns a pooled Response for req writing to sink. keepAlive
// is whether the connection may carry another request afterwards (usually
// Parser.KeepAlive(), false when the class closes every connection), and
// expectContinue whether a 100 Continue should be sent when the handler
// first reads the body (Parser.ExpectContinue()). Call Finish after the
// handler returns, then Release.
func NewResponse(req *http.Request, sink Sink, keepAlive, expectContinue bool) *Response {
	w := responsePool.Get().(*Response)
	w.init(req, sink, keepAlive, expectContinue)
	return w
}

func (w *Response) init(req *http.Request, sink Sink, keepAlive, expectContinue bool) {
	w.sink, w.req = sink, req
	w.status, w.declared = 0, -1
	w.isHead = req.Method == "HEAD"
	w.reqKeep, w.expect100, w.askedContinue = keepAlive, expectContinue, expectContinue
}

// Release returns w to the pool; w must not be used afterwards.
func (w *Response) Release() {
	w.reset()
	responsePool.Put(w)
}

// Recycle makes w, whose previous response is finished (Handle or Finish
// returned), the Response of req: NewResponse for a caller that keeps its
// own Response instead of taking one from the pool each time (an event
// loop runs its inline handlers one at a time, so one per loop serves them
// all, and stays in the CPU cache). As with NewResponse and net/http, a
// handler must not use w after it returned: the next request gets it.
func (w *Response) Recycle(req *http.Request, sink Sink, keepAlive, expectContinue bool) {
	w.reset()
	w.init(req, sink, keepAlive, expectContinue)
}

// reset clears w, keeping its buffers and header map.
func (w *Response) reset() {
	clear(w.hdr)
	if cap(w.buf) > bodyBufSize {
		w.buf = make([]byte, 0, bodyBufSize)
	}
	*w = Response{buf: w.buf[:0], scratch: w.scratch[:0], hdr: w.hdr}
}

// CloseWhen makes the response carry Connection: close (and Finish report
// false) if f is set when its head is committed: the caller's graceful
// stop flag, which may be set while the handler runs. NewResponse and
// Recycle clear it.
func (w *Response) CloseWhen(f *atomic.Bool) { w.stopping = f }

// Header returns the response header map.
func (w *Response) Header() http.Header { return w.hdr }

// WriteHeader sends (records) the status code. 1xx codes other than 101 are
// sent at once as interim responses.
func (w *Response) WriteHeader(code int) {
	if code < 100 || code > 999 {
		panic("h1: invalid WriteHeader code " + strconv.Itoa(code))
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writeHeaderLocked(code)
}

func (w *Response) writeHeaderLocked(code int) {
	if w.wroteHeader || w.timedOut {
		return
	}
	if code < 200 && code != 101 {
		w.writeInterim(code)
		return
	}
	w.wroteHeader, w.status = true, code
	// Direct map reads: Header.Get would canonicalise the constant key.
	if v := w.hdr["Content-Length"]; len(v) > 0 && v[0] != "" {
		if n, ok := parseContentLength([]byte(v[0])); ok {
			w.declared = n
		} else {
			w.hdr.Del("Content-Length")
		}
	}
}

func (w *Response) writeInterim(code int) {
	if w.req.ProtoMinor == 0 || w.committed {
		return
	}
	if code == 100 {
		w.sentContinue = true
	}
	b := appendStatusLine(w.scratch[:0], code)
	b, _ = appendHeaderMap(b, w.hdr)
	b = append(b, "\r\n"...)
	w.scratch = b[:0]
	w.write(b)
	w.flush()
}

// Write writes body bytes, committing the head first when the body no
// longer fits the buffer.
func (w *Response) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.timedOut {
		return 0, http.ErrHandlerTimeout
	}
	if !w.wroteHeader {
		w.writeHeaderLocked(http.StatusOK)
	}
	if !bodyAllowed(w.status) {
		return 0, http.ErrBodyNotAllowed
	}
	if w.declared >= 0 && w.written+int64(len(p)) > w.declared {
		return 0, http.ErrContentLength
	}
	w.written += int64(len(p))
	if w.isHead {
		if !w.committed && len(w.buf) == 0 && len(p) > 0 {
			w.sniff(p)
		}
		return len(p), nil
	}
	if !w.committed {
		if len(w.buf)+len(p) <= cap(w.buf) {
			w.buf = append(w.buf, p...)
			return len(p), nil
		}
		w.commit(false)
	}
	w.writeBody(p)
	if w.err != nil {
		return 0, w.err
	}
	return len(p), nil
}

// WriteString is Write for strings (io.StringWriter).
func (w *Response) WriteString(s string) (int, error) {
	w.mu.Lock()
	if !w.wroteHeader {
		w.writeHeaderLocked(http.StatusOK)
	}
	if w.wroteHeader && !w.committed && !w.timedOut && !w.isHead && bodyAllowed(w.status) &&
		w.declared < 0 && len(w.buf)+len(s) <= cap(w.buf) {
		// The common small response: buffer without converting s.
		w.buf = append(w.buf, s...)
		w.written += int64(len(s))
		w.mu.Unlock()
		return len(s), nil
	}
	w.mu.Unlock()
	return w.Write([]byte(s))
}

// Flush sends the head and everything buffered (http.Flusher). A body
// flushed before the handler returns is sent chunked (HTTP/1.1) unless the
// handler declared a Content-Length.
func (w *Response) Flush() { _ = w.FlushError() }

// FlushError is Flush reporting the write error (used by http.ResponseController).
func (w *Response) FlushError() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.timedOut {
		return http.ErrHandlerTimeout
	}
	if !w.wroteHeader {
		w.writeHeaderLocked(http.StatusOK)
	}
	if !w.committed {
		w.commit(false)
	}
	w.flush()
	return w.err
}

// Finish completes the response after the handler returned: commits the
// head if needed (with Content-Length when the body fit the buffer), ends
// chunked framing and flushes the sink. It reports whether the connection
// may carry another request.
func (w *Response) Finish() (keepAlive bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.finished {
		return w.keepAlive && w.err == nil
	}
	w.finished = true
	if w.timedOut {
		return false
	}
	if !w.wroteHeader {
		w.writeHeaderLocked(http.StatusOK)
	}
	if !w.committed {
		w.commit(true)
	}
	if w.chunked {
		w.write([]byte("0\r\n\r\n"))
	}
	if w.declared >= 0 && w.written < w.declared && !w.isHead && bodyAllowed(w.status) {
		w.keepAlive = false // the client would wait for bytes that never come
	}
	return w.keepAlive && w.err == nil
}

// Committed reports whether the status line was written (or a timeout
// response was sent), i.e. whether an error response is still possible.
func (w *Response) Committed() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.committed || w.timedOut
}

// SetClose makes the response carry Connection: close if its head is not
// committed yet (graceful stop, unread body); Finish then reports false.
func (w *Response) SetClose() {
	w.mu.Lock()
	w.disableKeep = true
	w.keepAlive = false
	w.mu.Unlock()
}

// commit writes the status line and headers, then any buffered body.
// final says the handler has returned, so a buffered body's length is known.
func (w *Response) commit(final bool) {
	w.committed = true
	b := appendStatusLine(w.scratch[:0], w.status)
	b, seen := appendHeaderMap(b, w.hdr)
	if len(w.buf) > 0 && !seen.has(seenContentType) {
		if ct := w.sniffed(w.buf); ct != "" {
			b = append(b, "Content-Type: "...)
			b = append(b, ct...)
			b = append(b, "\r\n"...)
		}
	}
	if seen.has(seenConnClose) {
		w.disableKeep = true
	}
	if w.stopping != nil && w.stopping.Load() || w.draining != nil && w.draining.Load() {
		w.disableKeep = true // graceful stop or drain began while the handler ran
	}
	w.keepAlive = w.reqKeep && !w.disableKeep
	if !seen.has(seenDate) {
		b = appendDate(b)
	}
	if !seen.has(seenServer) {
		b = append(b, "Server: "+ServerName+"\r\n"...)
	}
	b = w.appendFraming(b, final)
	switch {
	case !w.keepAlive:
		b = append(b, "Connection: close\r\n"...)
	case w.req.ProtoMinor == 0:
		b = append(b, "Connection: keep-alive\r\n"...)
	}
	b = append(b, "\r\n"...)
	w.scratch = b[:0]
	w.write(b)
	w.expect100 = false
	if len(w.buf) > 0 {
		body := w.buf
		w.buf = w.buf[:0]
		w.writeBody(body)
	}
}

func (w *Response) appendFraming(b []byte, final bool) []byte {
	switch {
	case !bodyAllowed(w.status):
		w.hdr.Del("Content-Length")
	case w.declared >= 0:
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, w.declared, 10)
		b = append(b, "\r\n"...)
	case final && (!w.isHead || w.written > 0):
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, w.written, 10)
		b = append(b, "\r\n"...)
	case final || w.isHead:
		// HEAD with nothing written: no length to state.
	case w.req.ProtoMinor >= 1:
		w.chunked = true
		b = append(b, "Transfer-Encoding: chunked\r\n"...)
	default:
		w.closeDelim = true
		w.keepAlive = false
	}
	return b
}

func (w *Response) writeBody(p []byte) {
	if len(p) == 0 || w.isHead {
		return
	}
	if w.chunked {
		h := strconv.AppendInt(w.scratch[:0], int64(len(p)), 16)
		h = append(h, "\r\n"...)
		w.write(h)
		w.write(p)
		w.write([]byte("\r\n"))
		return
	}
	w.write(p)
}

func (w *Response) sniff(p []byte) {
	if _, ok := w.hdr["Content-Type"]; !ok {
		w.sniffed(p)
	}
}

// sniffed sets (and returns) the Content-Type detected from p when the
// status allows a body; the caller checked that none was set.
func (w *Response) sniffed(p []byte) string {
	if !bodyAllowed(w.status) {
		return ""
	}
	ct := http.DetectContentType(p)
	w.hdr["Content-Type"] = []string{ct}
	return ct
}

func (w *Response) write(p []byte) {
	if w.err != nil {
		return
	}
	if _, err := w.sink.Write(p); err != nil {
		w.err = err
	}
}

func (w *Response) flush() {
	if w.err == nil {
		if err := w.sink.Flush(); err != nil {
			w.err = err
		}
	}
}

// continueBeforeRead sends "100 Continue" the first time the handler reads
// the body of a request that asked for it, unless a final response has
// already started.
func (w *Response) continueBeforeRead() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.expect100 {
		return nil
	}
	w.expect100 = false
	if w.committed || w.timedOut || w.sentContinue {
		return nil
	}
	w.sentContinue = true
	w.write([]byte("HTTP/1.1 100 Continue\r\n\r\n"))
	w.flush()
	return w.err
}

// awaitingContinue reports whether the client was told to wait for a 100
// Continue that was never sent: its body may never come, so it must not be
// drained.
func (w *Response) awaitingContinue() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.askedContinue && !w.sentContinue
}

// timeout answers 503 if nothing was sent yet and makes later handler
// writes fail with http.ErrHandlerTimeout (request_timeout).
func (w *Response) timeout() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.committed || w.finished {
		return
	}
	w.timedOut = true
	w.write(appendErrorResponse(w.scratch[:0], http.StatusServiceUnavailable))
	w.flush()
}

// writeError replaces an uncommitted response by an error response
// with Connection: close (handler panic). It reports whether it did.
func (w *Response) writeError(code int) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.keepAlive = false
	if w.committed || w.timedOut {
		// Too late for an error status: end without completing the
		// framing, so the client sees a truncated response, not a whole one.
		w.finished = true
		return false
	}
	w.committed, w.finished = true, true
	w.write(appendErrorResponse(w.scratch[:0], code))
	w.flush()
	return true
}

// abort ends the response without sending anything more; the connection
// must be closed (http.ErrAbortHandler).
func (w *Response) abort() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.committed {
		w.buf = w.buf[:0]
	}
	w.committed, w.finished, w.keepAlive = true, true, false
	w.chunked = false
	w.flush()
}

func bodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

func hasToken(vals []string, tok string) bool {
	for _, v := range vals {
		for len(v) > 0 {
			var item string
			if i := indexByteString(v, ','); i >= 0 {
				item, v = v[:i], v[i+1:]
			} else {
				item, v = v, ""
			}
			if asciiEqualFold(trimOWSString(item), tok) {
				return true
			}
		}
	}
	return false
}

func indexByteString(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

func trimOWSString(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// ServerName is the Server field of every response whose handler set
// none.
const ServerName = "multiserve"

// headerSeen records which fields the engine cares about appendHeaderMap
// met, so commit needs no further map lookups.
type headerSeen uint8

const (
	seenDate headerSeen = 1 << iota
	seenServer
	seenContentType
	seenConnClose // a Connection field with the "close" token
)

func (s headerSeen) has(f headerSeen) bool { return s&f != 0 }

// appendHeaderMap writes the handler's fields, skipping the framing fields
// the engine owns and invalid names, and turning CR/LF in values into
// spaces (no response splitting).
func appendHeaderMap(b []byte, h http.Header) ([]byte, headerSeen) {
	var seen headerSeen
	for k, vs := range h {
		switch k {
		case "Connection":
			if hasToken(vs, "close") {
				seen |= seenConnClose
			}
			continue
		case "Content-Length", "Transfer-Encoding", "Keep-Alive", "Trailer":
			continue
		case "Date":
			seen |= seenDate
		case "Server":
			seen |= seenServer
		case "Content-Type":
			seen |= seenContentType
		}
		if !isTokenString(k) {
			continue
		}
		for _, v := range vs {
			b = append(b, k...)
			b = append(b, ": "...)
			b = appendFieldValue(b, v)
			b = append(b, "\r\n"...)
		}
	}
	return b, seen
}

// appendFieldValue appends v with CR, LF and NUL turned into spaces.
func appendFieldValue(b []byte, v string) []byte {
	i := 0
	for ; i < len(v); i++ {
		if c := v[i]; c == '\r' || c == '\n' || c == 0 {
			break
		}
	}
	b = append(b, v[:i]...) // the usual case: all of v
	for ; i < len(v); i++ {
		c := v[i]
		if c == '\r' || c == '\n' || c == 0 {
			c = ' '
		}
		b = append(b, c)
	}
	return b
}

func isTokenString(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !tokenChar[s[i]] {
			return false
		}
	}
	return true
}

var statusLines [600][]byte

func init() {
	for code := 100; code < 600; code++ {
		if t := http.StatusText(code); t != "" {
			statusLines[code] = []byte("HTTP/1.1 " + strconv.Itoa(code) + " " + t + "\r\n")
		}
	}
}

func appendStatusLine(b []byte, code int) []byte {
	if code < len(statusLines) && statusLines[code] != nil {
		return append(b, statusLines[code]...)
	}
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(code), 10)
	return append(b, " \r\n"...)
}

type dateLine struct {
	at   time.Time     // when line was formatted (with its monotonic reading)
	left time.Duration // from at to the next wall-clock second
	line []byte
}

var cachedDate atomic.Pointer[dateLine]

// appendDate appends "Date: ...\r\n", formatted at most once a second.
// While the cached line is valid, time.Since reads only the monotonic
// clock (time.Now reads the wall clock too).
func appendDate(b []byte) []byte {
	d := cachedDate.Load()
	if d == nil || time.Since(d.at) >= d.left {
		now := time.Now()
		line := now.UTC().AppendFormat([]byte("Date: "), http.TimeFormat)
		d = &dateLine{at: now, left: time.Second - time.Duration(now.Nanosecond()), line: append(line, "\r\n"...)}
		cachedDate.Store(d)
	}
	return append(b, d.line...)
}

// AppendErrorResponse appends a complete error response with
// Connection: close, e.g. for the *Error a Parser returned (its Status).
func AppendErrorResponse(dst []byte, status int) []byte { return appendErrorResponse(dst, status) }

func appendErrorResponse(b []byte, status int) []byte {
	text := http.StatusText(status)
	b = appendStatusLine(b, status)
	b = appendDate(b)
	b = append(b, "Server: "+ServerName+"\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(text)+1), 10)
	b = append(b, "\r\n\r\n"...)
	b = append(b, text...)
	return append(b, '\n')
}

var _ Sink = (*bufio.Writer)(nil)

// Reject replaces the response by an error response with Connection: close
// if nothing was committed yet (a body that turned out malformed or
// truncated: answer the *Error's Status). It reports whether it did; either
// way the connection must close.
func (w *Response) Reject(status int) bool { return w.writeError(status) }

// AwaitingContinue reports whether the request asked for 100-continue and
// none was sent: the client may never send the body, so do not wait to
// drain it; close the connection after the response instead.
func (w *Response) AwaitingContinue() bool { return w.awaitingContinue() }

// ResponseStatus is the response's final status: the one the handler set
// (0 while none), 503 when request_timeout answered for it, 101 once it
// hijacked the connection. With ResponseBytes it makes Response a
// workers.ResponseMeter, so the scoreboard middleware reads the figures
// here instead of wrapping every response in a recorder.
func (w *Response) ResponseStatus() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.hijacked:
		return http.StatusSwitchingProtocols
	case w.timedOut && !w.wroteHeader:
		return http.StatusServiceUnavailable
	}
	return w.status
}

// ResponseBytes is the body bytes the handler wrote so far.
func (w *Response) ResponseBytes() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.written
}

// hijacker is what takes a connection over for Hijack (the blocking
// Conn). An interface rather than a func: a method value would allocate
// on every connection.
type hijacker interface {
	hijack() (net.Conn, *bufio.ReadWriter, error)
}

// Hijack lets the handler take over the connection (http.Hijacker), e.g.
// for WebSocket, before anything of the response was written. Only the
// blocking Conn supports it; elsewhere it returns http.ErrNotSupported.
// The engine then neither writes to nor closes the connection.
func (w *Response) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.hijack == nil:
		return nil, nil, http.ErrNotSupported
	case w.wroteHeader || w.committed || w.timedOut || w.finished:
		return nil, nil, errors.New("h1: Hijack after the response started")
	}
	nc, rw, err := w.hijack.hijack()
	if err == nil {
		w.committed, w.finished, w.keepAlive, w.hijacked = true, true, false, true
	}
	return nc, rw, err
}
