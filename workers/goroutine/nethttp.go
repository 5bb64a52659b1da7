package goroutine

import (
	"bufio"
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/multiserve/multiserve/config"
	"github.com/multiserve/multiserve/h1"
	"github.com/multiserve/multiserve/internal/tlsconf"
	"github.com/multiserve/multiserve/proxyproto"
	"github.com/multiserve/multiserve/workers"
)

// withRequestTimeout applies request_timeout on the net/http engine with
// http.TimeoutHandler: the handler's context is cancelled and the client
// gets a 503. Unlike the native engine, TimeoutHandler buffers the whole
// response (no streaming, no http.Flusher) while request_timeout is set.
func withRequestTimeout(h http.Handler, d time.Duration) http.Handler {
	if d <= 0 {
		return h
	}
	return http.TimeoutHandler(h, d, "request timeout\n")
}

// asNative makes net/http answer an HTTP/1 request as the native engine
// does (HTTP/2 keeps net/http's own ways: a panic resets the stream):
//   - a response committed once the worker drains (Env.Draining, or its
//     own stop) carries Connection: close, so net/http closes the
//     connection after it; one committed before keeps its connection.
//     SetKeepAlivesEnabled(false) comes only at the end of drain: it also
//     closes the idle connections at once, which can cross a request a
//     client is sending on one;
//   - the Server field, when the handler set none;
//   - the response is held back until the handler returns (up to
//     holdLimit, or a Flush): a body the handler left unread is drained
//     first, and one that turns out malformed is answered 400 instead,
//     where net/http would have sent the handler's response and closed;
//   - a handler panic is logged once by the engine's logger and answered
//     500 with Connection: close if nothing was sent, else the connection
//     is cut (net/http would close it unanswered and log it itself).
func asNative(h http.Handler, draining *atomic.Bool, engine *h1.Server) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor != 1 {
			h.ServeHTTP(w, r)
			return
		}
		nw := &nativeWriter{ResponseWriter: w, draining: draining}
		defer nw.recover(r, engine)
		h.ServeHTTP(nw, r)
		nw.finish(r)
	})
}

// holdLimit is how much of a response asNative holds back: as much as the
// native engine does. One that fits is passed on whole once the handler
// returned, with its Content-Length.
const holdLimit = 4096

// nativeWriter is the ResponseWriter asNative hands the handler.
type nativeWriter struct {
	http.ResponseWriter
	draining  *atomic.Bool
	status    int    // the final status the handler set; 0 while none
	held      []byte // what the handler wrote, not passed on yet
	committed bool   // passed on: net/http has the head
}

// commit passes the head and what is held on to net/http; final: the
// handler returned, what is held is the whole body.
func (w *nativeWriter) commit(final bool) {
	if w.committed {
		return
	}
	w.committed = true
	hdr := w.Header()
	if w.draining.Load() {
		hdr.Set("Connection", "close")
	}
	if _, ok := hdr["Server"]; !ok {
		hdr.Set("Server", h1.ServerName)
	}
	if final && len(w.held) > 0 && hdr.Get("Content-Length") == "" && hdr.Get("Transfer-Encoding") == "" {
		hdr.Set("Content-Length", strconv.Itoa(len(w.held))) // beyond net/http's 2 KiB buffer it would chunk
	}
	w.ResponseWriter.WriteHeader(cmp.Or(w.status, http.StatusOK))
	if len(w.held) > 0 {
		_, _ = w.ResponseWriter.Write(w.held) // a failed write fails the handler's next one too
		w.held = nil
	}
}

func (w *nativeWriter) WriteHeader(code int) {
	switch {
	case w.committed || code < 200 && code != http.StatusSwitchingProtocols:
		w.ResponseWriter.WriteHeader(code) // interim, or net/http's "superfluous" warning
	case code == http.StatusSwitchingProtocols:
		w.status = code
		w.commit(false)
	case w.status == 0:
		w.status = code
	}
}

func (w *nativeWriter) Write(b []byte) (int, error) {
	if !w.committed && len(w.held)+len(b) <= holdLimit {
		w.held = append(w.held, b...)
		return len(b), nil
	}
	w.commit(false)
	return w.ResponseWriter.Write(b)
}

func (w *nativeWriter) Flush() {
	w.commit(false)
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

func (w *nativeWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	w.committed = true
	return http.NewResponseController(w.ResponseWriter).Hijack()
}

// Unwrap lets http.ResponseController reach net/http's writer.
func (w *nativeWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// finish drains a body the handler left unread (within net/http's own
// bound; not when a 100 Continue would have to be sent for it), then
// passes the response on, or a 400 for a body the gate found malformed
// (the gate reported that refusal).
func (w *nativeWriter) finish(r *http.Request) {
	if w.committed {
		return
	}
	if r.Body != nil && r.Body != http.NoBody && !strings.EqualFold(r.Header.Get("Expect"), "100-continue") {
		_, err := io.CopyN(io.Discard, r.Body, drainLimit)
		var perr *h1.Error
		if errors.As(err, &perr) {
			w.replace(perr.Status)
			return
		}
	}
	w.commit(true)
}

// drainLimit is how much of an unread body finish reads (net/http's).
const drainLimit = 256 << 10

// replace sends an error response with Connection: close in place of
// what the handler made, which nothing was passed on of.
func (w *nativeWriter) replace(status int) {
	hdr := w.Header()
	clear(hdr)
	hdr.Set("Connection", "close")
	w.held, w.status = []byte(http.StatusText(status)+"\n"), status
	hdr.Set("Content-Type", "text/plain; charset=utf-8")
	w.commit(true)
}

// recover turns a handler's panic into the native engine's answer.
func (w *nativeWriter) recover(r *http.Request, engine *h1.Server) {
	v := recover()
	switch {
	case v == nil:
		return
	case v == http.ErrAbortHandler:
		panic(v) // net/http cuts the connection without a word
	}
	engine.LogPanic(r, v)
	if w.committed {
		panic(http.ErrAbortHandler)
	}
	w.replace(http.StatusInternalServerError)
}

// serveNetHTTP serves every inherited listener with one http.Server.
func (w *Worker) serveNetHTTP(ctx context.Context, env *workers.Env) error {
	cfg := env.Config
	conns := newConnCounter(env.Observer())
	draining := env.Draining
	if draining == nil {
		draining = new(atomic.Bool) // set by drain alone
	}
	gate := env.Engine() // the parser's limits and the Rejected hook
	app := tlsLimits(env.Handler, gate)
	srv := &http.Server{
		Handler:           asNative(gateHandler(withRequestTimeout(app, cfg.RequestTimeout)), draining, gate),
		IdleTimeout:       cfg.Keepalive,
		ReadHeaderTimeout: cfg.HeaderTimeout,
		ErrorLog:          slog.NewLogLogger(env.Log.Handler(), slog.LevelWarn),
		ConnState:         conns.hook,
		ConnContext:       gateContext,
	}
	lns, err := netListeners(env.Listeners, cfg.WorkerConnections)
	if err != nil {
		return err
	}
	if srv.TLSConfig, err = tlsconf.Load(cfg.Certfile, cfg.Keyfile, cfg.CACerts, "h2", "http/1.1"); err == nil {
		err = proxyListeners(lns, cfg) // the PROXY header comes before TLS
	}
	for i, ln := range lns {
		lns[i] = &gateListener{Listener: ln, srv: gate, raw: srv.TLSConfig != nil}
	}
	if err == nil && srv.TLSConfig != nil {
		// HTTP/2 is negotiated by ALPN: Serve configures it when
		// TLSConfig offers h2; the handshake is bounded by ReadHeaderTimeout.
		for i, ln := range lns {
			lns[i] = tls.NewListener(ln, srv.TLSConfig)
		}
	}
	if err != nil {
		for _, ln := range lns {
			ln.Close()
		}
		return err
	}
	errc := make(chan error, len(lns))
	for _, ln := range lns {
		go func() { errc <- srv.Serve(ln) }()
	}
	stopBeat := env.BeatInBackground()
	defer stopBeat()
	env.Ready()

	select {
	case <-ctx.Done():
	case err := <-errc:
		// A listener failed on its own: stop the rest and report it.
		srv.Close()
		return fmt.Errorf("goroutine: serve: %w", err)
	}
	draining.Store(true)
	drain(srv, lns, errc, conns, cfg, env)
	return nil
}

// drain is the graceful stop. http.Server.Shutdown is not used: a
// connection it finds still waiting for its first request is dropped
// without an answer once that request arrives (net/http checks
// shuttingDown after reading it), so a client that connected just before
// a reload would see EOF. Instead: stop accepting; let idle kept-alive
// connections wait retire_idle_timeout for their next request (answered
// with Connection: close, Env.Draining being set), then turn keep-alive
// off, which closes those still idle (SetKeepAlivesEnabled(false) closes
// idle connections at once, so it must not come first); wait for every
// connection to close, up to graceful_timeout.
func drain(srv *http.Server, lns []net.Listener, errc <-chan error, conns *connCounter, cfg *config.Config, env *workers.Env) {
	for _, ln := range lns {
		ln.Close()
	}
	for range lns {
		<-errc // Serve returns once its Accept fails: no new connections
	}
	env.DoneListening()
	dctx, cancel := context.WithTimeout(context.Background(), cfg.GracefulTimeout)
	defer cancel()
	idle, cancelIdle := context.WithTimeout(dctx, cfg.RetireIdle())
	conns.waitZero(idle)
	cancelIdle()
	srv.SetKeepAlivesEnabled(false)
	if !conns.waitZero(dctx) {
		env.Log.Warn("graceful_timeout expired, closing connections", "open", conns.open())
	}
	srv.Close()
}

// connCounter counts open connections through http.Server.ConnState, and
// reports them to obs (the scoreboard) when set. Only the count: net/http
// reports StateActive once a whole request head was read, so a partial
// head is never seen and the reading state is not reported.
type connCounter struct {
	mu      sync.Mutex
	n       int
	changed chan struct{}
	obs     h1.ConnObserver
}

func newConnCounter(obs h1.ConnObserver) *connCounter {
	return &connCounter{changed: make(chan struct{}, 1), obs: obs}
}

func (c *connCounter) hook(nc net.Conn, st http.ConnState) {
	c.mu.Lock()
	switch st {
	case http.StateNew:
		c.n++
		if c.obs != nil {
			c.obs.ConnOpened()
		}
	case http.StateClosed, http.StateHijacked:
		if g, ok := nc.(*gateConn); ok && st == http.StateHijacked {
			g.hijacked()
		}
		c.n--
		if c.obs != nil {
			c.obs.ConnClosed()
		}
	}
	c.mu.Unlock()
	select {
	case c.changed <- struct{}{}:
	default:
	}
}

func (c *connCounter) open() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// waitZero waits until no connection is open; false if ctx ended first.
func (c *connCounter) waitZero(ctx context.Context) bool {
	for c.open() > 0 {
		select {
		case <-c.changed:
		case <-ctx.Done():
			return false
		}
	}
	return true
}

func netListeners(ls []*workers.Listener, maxConns int) ([]net.Listener, error) {
	out, err := workers.NetListeners(ls)
	if err != nil || maxConns <= 0 {
		return out, err
	}
	sem := make(chan struct{}, maxConns) // shared: the cap is per worker
	for i, ln := range out {
		out[i] = &limitListener{Listener: ln, sem: sem, done: make(chan struct{})}
	}
	return out, nil
}

// proxyListeners wraps each listener so that, with proxy_protocol, every
// connection must start with a PROXY header from a peer in
// proxy_allow_ips (see package proxyproto); off, it does nothing.
func proxyListeners(lns []net.Listener, cfg *config.Config) error {
	pol, err := proxyproto.NewPolicy(cfg)
	if err != nil || pol == nil {
		return err
	}
	for i, ln := range lns {
		lns[i] = &proxyproto.Listener{Listener: ln, Policy: pol, Timeout: cfg.HeaderTimeout}
	}
	return nil
}

// limitListener caps open connections (worker_connections): Accept waits
// for a free slot, so excess connections wait in the kernel's backlog
// where a sibling worker may take them.
type limitListener struct {
	net.Listener
	sem       chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	return &limitConn{Conn: c, release: func() { <-l.sem }}, nil
}

func (l *limitListener) Close() error {
	l.closeOnce.Do(func() { close(l.done) })
	return l.Listener.Close()
}

type limitConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
