package h1

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/multiserve/multiserve/config"
	"github.com/multiserve/multiserve/proxyproto"
)

// Server is the per-worker engine configuration shared by all connections.
// Its fields must not change once connections are being served.
type Server struct {
	Handler          http.Handler
	Config           *config.Config // limit_request_*, keepalive, header_timeout, request_timeout
	Log              *slog.Logger
	DisableKeepAlive bool // sync class: every response carries Connection: close
	// WatchClient makes the blocking Conn read in the background once the
	// handler of a bodiless, non-pipelined request has run for 50 ms, so its
	// context is cancelled when the client goes away (a fast request pays
	// for a stopped timer and a cancellable context).
	WatchClient bool
	// Observer, if set, is told about connections opening, closing and
	// reading request heads (the worker's scoreboard slot).
	Observer ConnObserver
	// Rejected, if set, hears every request the engine refuses with an
	// error status (400, 413, 414, 431, ...): the peer, the status and the
	// bytes of the request the client sent, as far as they are known, for
	// the access log. It is called on the connection's goroutine or loop
	// and must not block.
	Rejected func(remote string, status int, head []byte)
	// Draining, if set, is the worker's drain flag: once true (the arbiter
	// began a graceful stop), every response committed from then on
	// carries Connection: close and its connection closes after it, while
	// idle connections are left alone (one atomic load per response).
	Draining *atomic.Bool

	// The per-configuration state every connection needs, resolved from
	// Config on first use (see resolved).
	once  sync.Once
	proxy *proxyproto.Policy // nil: proxy_protocol off
	tls   *tls.Config        // nil: no certfile
}

// resolved returns the PROXY policy and TLS configuration of s's Config,
// worked out once per server: parsing proxy_allow_ips or loading the
// certificate per connection would be waste.
func (s *Server) resolved() (*proxyproto.Policy, *tls.Config) {
	s.once.Do(func() {
		cfg := s.config()
		s.proxy = proxyPolicy(cfg)
		s.tls = tlsConfig(cfg)
	})
	return s.proxy, s.tls
}

// State is what Conn.Serve reports when it returns.
type State int

const (
	StateClosed State = iota // the connection was closed by Serve
	StateIdle                // between requests, nothing buffered: wait for readability, call Serve again
)

func (s State) String() string {
	if s == StateIdle {
		return "idle"
	}
	return "closed"
}

var defaultConfig = sync.OnceValue(config.Default)

func (s *Server) config() *config.Config {
	if s.Config != nil {
		return s.Config
	}
	return defaultConfig()
}

// WriteStall is how long one write may wait for a client that reads
// nothing under cfg: the write deadline every response write sets.
func WriteStall(cfg *config.Config) time.Duration {
	if cfg.HeaderTimeout <= 0 {
		return WriteStallLimit
	}
	return cfg.HeaderTimeout
}

func (s *Server) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

// keepAliveAllowed is whether the server lets a connection carry more than
// one request at all (keepalive <= 0 disables it, as in gunicorn).
func (s *Server) keepAliveAllowed() bool {
	return !s.DisableKeepAlive && s.config().Keepalive > 0
}

// Handle runs the handler for req, writing to w: request_timeout (the
// handler's context is cancelled at the deadline and a 503 is sent if
// nothing was), panic recovery (500 if nothing was sent, a log line, the
// connection closes; http.ErrAbortHandler silently), then w.Finish. It
// reports whether the connection may carry another request. Event-loop
// classes call it wherever they run handlers.
func (s *Server) Handle(w *Response, req *http.Request) (keepAlive bool) {
	if !s.runHandler(w, req) {
		w.Finish()
		return false
	}
	return w.Finish()
}

// runHandler calls the handler; false means it panicked or timed out.
func (s *Server) runHandler(w *Response, req *http.Request) (ok bool) {
	w.draining = s.Draining
	if rt := s.config().RequestTimeout; rt > 0 {
		ctx, cancel := context.WithTimeout(req.Context(), rt)
		fired := make(chan struct{})
		stop := context.AfterFunc(ctx, func() {
			defer close(fired)
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				w.timeout()
			}
		})
		defer func() {
			if !stop() {
				<-fired // the timeout response is being written: let it finish
			} else if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				w.timeout() // the handler saw the deadline before the timer func ran
			}
			cancel()
			w.mu.Lock()
			ok = ok && !w.timedOut
			w.mu.Unlock()
		}()
		req = req.WithContext(ctx)
	}
	defer func() {
		if v := recover(); v != nil {
			ok = false
			if v == http.ErrAbortHandler {
				w.abort()
				return
			}
			s.LogPanic(req, v)
			w.writeError(http.StatusInternalServerError)
		}
	}()
	s.Handler.ServeHTTP(w, req)
	return true
}

// LogPanic logs a handler's panic v with the stack of the goroutine that
// recovered it: the one line an engine writes for it.
func (s *Server) LogPanic(req *http.Request, v any) {
	s.log().Error("h1: handler panic", "method", req.Method, "uri", req.RequestURI,
		"remote", req.RemoteAddr, "panic", v, "stack", string(debug.Stack()))
}
