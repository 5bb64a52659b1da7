package goroutine

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/multiserve/multiserve/h1"
)

// The net/http engine's HTTP/1 gate. net/http does not enforce the
// limit_request_* settings, serves a request with both Content-Length and
// Transfer-Encoding (dropping Content-Length) and keeps the connection,
// ignores Transfer-Encoding on HTTP/1.0 (so a chunked body becomes the next
// request), answers a leading empty line with 400, and has no body-read or
// write timeout but whole-request ones. So on a plaintext connection every
// byte net/http reads first passes through the engine every class shares
// (h1.Parser), which tracks the framing of each request: a request the
// native engine refuses reaches net/http as a stand-in request that the
// gate's handler answers with the native engine's status, and the
// connection ends after it. Under TLS (where HTTP/2 is negotiated) the
// gate sees ciphertext: it keeps the write deadline, and tlsLimits checks
// the limits after net/http parsed a request (docs/edge-security.md).

// rejectToken marks the stand-in requests the gate makes; a client cannot
// guess it, so it cannot make one.
var rejectToken = func() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}()

const rejectHeader = "X-Multiserve-Gate"

// standIn is the request net/http sees in place of a refused one.
func standIn(status int) []byte {
	return []byte("GET / HTTP/1.1\r\nHost: gate\r\nConnection: close\r\n" +
		rejectHeader + ": " + rejectToken + " " + strconv.Itoa(status) + "\r\n\r\n")
}

// gateHandler answers the gate's stand-in requests with their status and
// passes every other request on. A request that merely carries the header
// name without the token is passed on with the header removed.
func gateHandler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := r.Header.Get(rejectHeader)
		if v == "" {
			next.ServeHTTP(w, r)
			return
		}
		tok, st, _ := bytes.Cut([]byte(v), []byte(" "))
		status, err := strconv.Atoi(string(st))
		if string(tok) != rejectToken || err != nil {
			r.Header.Del(rejectHeader)
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Connection", "close")
		http.Error(w, http.StatusText(status), status)
	})
}

type gateListener struct {
	net.Listener
	srv *h1.Server // limits (its Config) for the parsers
	raw bool       // TLS below: the bytes are not HTTP yet
}

func (l *gateListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return l.wrap(c), nil
}

// gateConn is a connection whose input net/http reads only after h1's
// parser accepted it, with a rolling deadline on body reads and writes.
type gateConn struct {
	net.Conn
	srv   *h1.Server
	stall time.Duration // header_timeout, or h1.WriteStallLimit

	readMu sync.Mutex // one reader at a time (net/http's own or its background read)
	rbuf   []byte     // the socket read buffer, under readMu

	mu       sync.Mutex // the state below; never held across a socket read
	p        *h1.Parser // nil once closed
	pending  []byte     // read, not yet parsed
	out      []byte     // parsed, not yet handed to net/http
	fresh    bool       // nothing of the next request consumed yet
	inBody   bool       // a body is being read: reads get a rolling deadline
	userRead bool       // net/http set a read deadline of its own
	ours     bool       // the socket carries the gate's rolling read deadline
	raw      bool       // hijacked: bytes pass unparsed
	done     bool       // a stand-in was handed out: EOF after out
	err      error      // the body's framing error, reported after out
	line     []byte     // the current request's line, for a refusal inside its body
	headAt   time.Time  // when the first byte of a head still incomplete arrived
	deadline time.Time  // the read deadline net/http set last

	lastWrite time.Time // net/http writes from one goroutine at a time
}

func newGateConn(c net.Conn, srv *h1.Server) *gateConn {
	stall := srv.Config.HeaderTimeout
	if stall <= 0 {
		stall = h1.WriteStallLimit
	}
	return &gateConn{Conn: c, srv: srv, stall: stall, p: srv.NewParser(), fresh: true}
}

// gateReadSize is how much one read from the socket takes.
const gateReadSize = 16 << 10

func (g *gateConn) Read(b []byte) (int, error) {
	g.readMu.Lock()
	defer g.readMu.Unlock()
	for {
		g.mu.Lock()
		n, err, ok := g.take(b)
		g.mu.Unlock()
		if ok {
			return n, err
		}
		if g.rbuf == nil {
			g.rbuf = make([]byte, gateReadSize)
		}
		n, err = g.Conn.Read(g.rbuf)
		if n == 0 && err != nil {
			g.mu.Lock()
			g.readFailed(err)
			g.mu.Unlock()
			return 0, err // not kept: net/http aborts a background read with a deadline and reads on
		}
		g.mu.Lock()
		g.pending = append(g.pending, g.rbuf[:n]...)
		g.parse()
		g.mu.Unlock()
	}
}

// take hands out what is ready; ok is false when the socket must be read,
// which it prepares (the rolling deadline of a body read: a client that
// stops sending its body is cut after header_timeout, as the native engine
// does, unless net/http set a deadline of its own).
func (g *gateConn) take(b []byte) (n int, err error, ok bool) {
	switch {
	case len(g.out) > 0:
		n = copy(b, g.out)
		g.out = g.out[n:]
		return n, nil, true
	case g.err != nil:
		return 0, g.err, true
	case g.done:
		return 0, io.EOF, true
	}
	switch rolling := g.inBody && !g.userRead && !g.raw; {
	case rolling:
		_ = g.Conn.SetReadDeadline(time.Now().Add(g.stall))
		g.ours = true
	case g.ours && !g.userRead:
		_ = g.Conn.SetReadDeadline(time.Time{})
		g.ours = false
	}
	return 0, nil, false
}

// parse moves what the parser accepts from pending to out.
func (g *gateConn) parse() {
	if g.raw || g.p == nil {
		g.out = append(g.out, g.pending...)
		g.pending = g.pending[:0]
		return
	}
	for !g.done {
		ev, n, _, err := g.p.Next(g.pending, 0)
		if err != nil {
			g.refuse(err)
			return
		}
		from := 0
		if g.fresh && n >= 2 && g.pending[0] == '\r' && g.pending[1] == '\n' {
			from = 2 // the empty line allowed before a request line (net/http would refuse it)
		}
		if n > 0 {
			g.fresh = false
		}
		g.out = append(g.out, g.pending[from:n]...)
		g.pending = g.pending[:copy(g.pending, g.pending[n:])]
		switch ev {
		case h1.Head:
			g.inBody = true
			g.keepLine(g.out[len(g.out)-(n-from):])
		case h1.BodyEnd:
			g.inBody, g.fresh = false, true
		case h1.NeedMore:
			if n == 0 {
				g.markHead()
				return
			}
		}
	}
}

// keepLine keeps the start of the request line of head (bounded, in a
// buffer reused across requests) for a refusal found inside its body.
func (g *gateConn) keepLine(head []byte) {
	head = bytes.TrimLeft(head, "\r\n")
	if i := bytes.IndexByte(head, '\n'); i >= 0 {
		head = head[:i]
	}
	g.line = append(g.line[:0], head[:min(len(head), maxLineKept)]...)
}

// maxLineKept bounds what keepLine keeps of a request line.
const maxLineKept = 256

// markHead notes when the head now waiting for more bytes began (zero when
// none is waiting): a read deadline that expires then is a head that
// stopped coming.
func (g *gateConn) markHead() {
	switch {
	case len(g.pending) == 0 || g.inBody:
		g.headAt = time.Time{}
	case g.headAt.IsZero():
		g.headAt = time.Now()
	}
}

// readFailed records a head that stopped coming: net/http's header
// deadline (set after the head began; its abort of a background read sets
// one in the past) expired with part of a head read. net/http closes the
// connection unanswered; the native engine records such a head as 408.
func (g *gateConn) readFailed(err error) {
	var ne net.Error
	if g.done || g.raw || g.inBody || g.headAt.IsZero() || !g.deadline.After(g.headAt) ||
		!errors.As(err, &ne) || !ne.Timeout() {
		return
	}
	g.done = true
	g.srv.NoteRejected(g.remote(), http.StatusRequestTimeout, nil)
}

func (g *gateConn) remote() string { return g.Conn.RemoteAddr().String() }

// refuse ends the stream: before a head, with a stand-in request for the
// status the native engine answers; inside a body, net/http's read fails
// and it closes the connection after the response.
func (g *gateConn) refuse(err error) {
	g.done = true
	status := h1.StatusOf(err)
	if g.inBody {
		g.err = err
		g.srv.NoteRejected(g.remote(), status, g.line)
	} else {
		g.srv.NoteRejected(g.remote(), status, bytes.TrimLeft(g.pending, "\r\n"))
		g.out = append(g.out, standIn(status)...)
	}
	g.pending = nil
}

// hijacked makes the rest of the connection pass unparsed: it is no
// longer HTTP/1 (an Upgrade).
func (g *gateConn) hijacked() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.raw = true
	g.out = append(g.out, g.pending...)
	g.pending = nil
}

func (g *gateConn) SetReadDeadline(t time.Time) error {
	g.mu.Lock()
	g.userRead, g.deadline = !t.IsZero(), t
	g.mu.Unlock()
	return g.Conn.SetReadDeadline(t)
}

func (g *gateConn) SetDeadline(t time.Time) error {
	g.mu.Lock()
	g.userRead, g.deadline = !t.IsZero(), t
	g.mu.Unlock()
	return g.Conn.SetDeadline(t)
}

// Write moves a rolling write deadline: each write must make progress
// within header_timeout, so a client that stops reading its response
// cannot hold the connection (and a worker_connections slot) forever.
func (g *gateConn) Write(b []byte) (int, error) {
	if now := time.Now(); now.Sub(g.lastWrite) > g.stall/4 {
		_ = g.Conn.SetWriteDeadline(now.Add(g.stall))
		g.lastWrite = now
	}
	return g.Conn.Write(b)
}

func (g *gateConn) Close() error {
	g.mu.Lock()
	if g.p != nil {
		g.p.Release()
		g.p = nil
	}
	g.mu.Unlock()
	return g.Conn.Close()
}

// gateListener gates every connection it accepts: parsed on plaintext,
// only the rolling write deadline under TLS (raw).
func (l *gateListener) wrap(c net.Conn) *gateConn {
	g := newGateConn(c, l.srv)
	g.raw = l.raw
	return g
}

// tlsLimits enforces the limit_request_* settings on requests that came
// over TLS (HTTP/1.1 or HTTP/2), which the gate cannot see: after net/http
// parsed them, within its MaxHeaderBytes. An HTTP/1.1 body gets the
// gate's rolling read deadline while the handler reads it (an HTTP/2
// stream shares its connection: no per-stream deadline there).
// A refusal goes through the engine's Rejected hook, as the native
// engine's do; what net/http refuses itself before (a malformed head's
// 400, a head over MaxHeaderBytes, a head that stops coming) it answers or
// closes unseen.
func tlsLimits(next http.Handler, srv *h1.Server) http.Handler {
	cfg := srv.Config
	line, fields, fieldSize, body := cfg.LimitRequestLine, cfg.LimitRequestFields, cfg.LimitRequestFieldSize, cfg.LimitRequestBody
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil {
			if st := overLimits(r, line, fields, fieldSize, body); st != 0 {
				w.Header().Set("Connection", "close")
				http.Error(w, http.StatusText(st), st)
				srv.NoteRejected(r.RemoteAddr, st, []byte(r.Method+" "+r.RequestURI+" "+r.Proto))
				return
			}
			if body > 0 {
				r.Body = http.MaxBytesReader(w, r.Body, body)
			}
			if g, _ := r.Context().Value(gateKey{}).(*gateConn); g != nil && r.ProtoMajor == 1 && r.Body != http.NoBody {
				r.Body = &stallBody{ReadCloser: r.Body, g: g}
			}
		}
		next.ServeHTTP(w, r)
	})
}

// gateKey is the request context key of the connection's gate.
type gateKey struct{}

// gateContext is http.Server.ConnContext: it makes a connection's gate
// (under TLS, the tls.Conn's) reachable from its requests.
func gateContext(ctx context.Context, c net.Conn) context.Context {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	if g, ok := c.(*gateConn); ok {
		return context.WithValue(ctx, gateKey{}, g)
	}
	return ctx
}

// stallBody is an HTTP/1.1-over-TLS request body whose every read must
// make progress within the stall limit; the deadline is lifted once the
// body ended (net/http then reads in the background to see the client go).
// A handler that stops reading early leaves the last deadline in place,
// which also bounds net/http's discard of the unread rest.
type stallBody struct {
	io.ReadCloser
	g *gateConn
}

func (b *stallBody) Read(p []byte) (int, error) {
	_ = b.g.Conn.SetReadDeadline(time.Now().Add(b.g.stall))
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		_ = b.g.Conn.SetReadDeadline(time.Time{})
	}
	return n, err // after a timeout the deadline stays: net/http's discard of the rest fails too, and it closes
}

// overLimits returns the status the native engine would refuse r with, or 0.
func overLimits(r *http.Request, line, fields, fieldSize int, body int64) int {
	if line > 0 && len(r.Method)+len(r.RequestURI)+len(r.Proto)+2 > line {
		return http.StatusRequestURITooLong
	}
	n := 0
	if r.ProtoMajor == 1 && r.Host != "" {
		n = 1 // net/http moves Host out of Header; the native engine counts it as a field
	}
	for name, vals := range r.Header {
		n += len(vals)
		for _, v := range vals {
			if fieldSize > 0 && len(name)+2+len(v) > fieldSize {
				return http.StatusRequestHeaderFieldsTooLarge
			}
		}
	}
	if fields > 0 && n > fields {
		return http.StatusRequestHeaderFieldsTooLarge
	}
	if body > 0 && r.ContentLength > body {
		return http.StatusRequestEntityTooLarge
	}
	return 0
}
