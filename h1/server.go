package h1

import (
	"context"
	"log/slog"
	"net"
	"net/http"

	"github.com/multiserve/multiserve/config"
)

// Server is the per-worker engine configuration shared by all connections.
type Server struct {
	Handler          http.Handler
	Config           *config.Config // limit_request_*, keepalive, header_timeout, request_timeout
	Log              *slog.Logger
	DisableKeepAlive bool // sync class: every response carries Connection: close
}

// State is what Conn.Serve reports when it returns.
type State int

const (
	StateClosed State = iota // the connection was closed by Serve
	StateIdle                // between requests, nothing buffered: wait for readability, call Serve again
)

// Conn is one accepted connection served by the engine.
type Conn struct {
	srv *Server
	nc  net.Conn
}

// NewConn wraps an accepted connection. nc may do blocking reads/writes; it
// must honour SetReadDeadline/SetWriteDeadline.
func (s *Server) NewConn(nc net.Conn) *Conn { return &Conn{srv: s, nc: nc} }

// Serve answers requests on the connection, in order. STUB: closes at once.
func (c *Conn) Serve(ctx context.Context, park bool) State {
	c.nc.Close()
	return StateClosed
}

// Close closes the connection.
func (c *Conn) Close() error { return c.nc.Close() }
