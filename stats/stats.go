// Package stats is the arbiter's observability endpoint, served on
// stats_bind from the arbiter process (never from a worker):
//
//	/metrics  Prometheus text format (client_golang): workers by state,
//	          busy/idle/saturation, requests and responses by class,
//	          latency and queue-time histograms by class, restarts by
//	          reason, accept-queue length of each TCP listener, open
//	          connections by class
//	/status   the same as JSON, plus one record per worker
//	/healthz  200 while the arbiter runs and at least one worker is ready
//	/readyz   200 once the first generation is ready, while a worker is
//	          ready and the arbiter is not draining (stopping); else 503
//	/         a self-refreshing HTML page: one row per worker
//
// The arbiter's state belongs to its loop goroutine, so the endpoint asks
// for it through Source (the arbiter answers from its loop); per-request
// figures come from the scoreboard, read without locks.
package stats

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/multiserve/multiserve/config"
	"github.com/multiserve/multiserve/scoreboard"
)

// Snapshot is the arbiter's view of its pool at one moment.
type Snapshot struct {
	ArbiterPID int        `json:"arbiter_pid"`
	Started    time.Time  `json:"started"`
	Class      string     `json:"class"`  // the current generation's worker class
	Target     int        `json:"target"` // workers the arbiter keeps running
	Booted     bool       `json:"booted"` // the first generation became ready
	Draining   bool       `json:"draining"`
	Workers    []Worker   `json:"-"`
	Restarts   Restarts   `json:"restarts"`
	Listeners  []Listener `json:"-"`
}

// Worker is the arbiter's record of one worker process.
type Worker struct {
	PID        int
	Age        int // spawn sequence number
	Generation int
	Class      string
	Slot       int // scoreboard slot, -1 without one
	Ready      bool
	Retiring   bool
	Spawned    time.Time
}

// Listener is one of the arbiter's listening sockets.
type Listener struct {
	Name string
	FD   int
}

// Restart reasons: why the arbiter had to replace a worker it did not ask
// to stop.
const (
	ReasonTimeout     = "timeout"      // silent past timeout: SIGABRT/SIGKILL
	ReasonBootTimeout = "boot_timeout" // not ready within boot_timeout
	ReasonMaxRequests = "max_requests" // clean exit after max_requests
	ReasonCrash       = "crash"        // non-zero exit or a signal the arbiter did not send
	ReasonKilled      = "killed"       // SIGKILL from outside the arbiter (the OOM killer, an operator)
)

// Restarts counts worker replacements by reason.
type Restarts map[string]uint64

// Source is what the endpoint needs from the arbiter.
type Source interface {
	// Snapshot returns the pool's current state. It fails when the
	// arbiter no longer answers (stopped).
	Snapshot() (Snapshot, error)
}

// Server is a running stats endpoint.
type Server struct {
	srv  *http.Server
	ln   net.Listener
	path string // unix socket path to remove at Close
	done chan struct{}
}

// Start listens on bind (HOST:PORT or unix:PATH) and serves in the
// background until Close.
func Start(bind string, src Source, board *scoreboard.Board, log *slog.Logger) (*Server, error) {
	network, addr, err := config.ParseBind(bind)
	if err != nil {
		return nil, fmt.Errorf("stats: stats_bind %q: %w", bind, err)
	}
	if network == "fd" {
		return nil, fmt.Errorf("stats: stats_bind %q: must be HOST:PORT or unix:PATH", bind)
	}
	s := &Server{done: make(chan struct{})}
	if network == "unix" {
		removeStaleSocket(addr)
		s.path = addr
	}
	if s.ln, err = net.Listen(network, addr); err != nil {
		return nil, fmt.Errorf("stats: listen %s: %w", bind, err)
	}
	if network == "unix" {
		_ = os.Chmod(addr, 0o600)
	}
	s.srv = &http.Server{
		Handler:           Handler(src, board),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("stats endpoint stopped", "err", err)
		}
	}()
	log.Info("stats endpoint listening", "addr", s.Addr().Network()+"://"+s.Addr().String())
	return s, nil
}

// removeStaleSocket unlinks a unix socket path nobody accepts on.
func removeStaleSocket(path string) {
	if st, err := os.Lstat(path); err != nil || st.Mode()&os.ModeSocket == 0 {
		return
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return
	}
	_ = os.Remove(path)
}

// Addr is the bound address (port 0 resolved).
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops the endpoint, waiting briefly for requests in progress.
func (s *Server) Close() error {
	if s == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if err != nil {
		err = s.srv.Close()
	}
	<-s.done
	if s.path != "" {
		_ = os.Remove(s.path)
	}
	return err
}
