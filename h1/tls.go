package h1

import (
	"crypto/tls"
	"errors"
	"net"
	"time"

	"github.com/multiserve/multiserve/config"
	"github.com/multiserve/multiserve/internal/tlsconf"
)

// tlsConfig is the TLS configuration of cfg, nil without certfile. Config
// validation already loaded the files once, so an error here means they
// changed underneath: every handshake is then refused.
func tlsConfig(cfg *config.Config) *tls.Config {
	if cfg.Certfile == "" {
		return nil
	}
	c, err := tlsconf.Load(cfg.Certfile, cfg.Keyfile, cfg.CACerts, "http/1.1")
	if err != nil {
		return &tls.Config{GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return nil, err }}
	}
	return c
}

// tlsConn is the connection h1 serves when certfile is set. Until start it
// passes bytes through untouched (the PROXY header precedes the TLS
// handshake); then reads and writes go through crypto/tls. Deadlines and
// Close always go to the socket, so interrupt and Close stay safe from
// other goroutines. The handshake runs on the first read, within the read
// deadline h1 sets for the first request (header_timeout), and its writes
// within the write deadline set here.
type tlsConn struct {
	net.Conn // the socket
	cfg      *tls.Config
	t        *tls.Conn
	peek     []byte // read by pending, returned by the next Read
}

// tlsPending reports whether nc is a TLS connection with input already
// buffered inside crypto/tls (a pipelined request in the same record or
// read ahead): the socket does not show it as readable, so park mode must
// not return StateIdle for it.
func tlsPending(nc net.Conn) bool {
	t, ok := nc.(*tlsConn)
	return ok && t.pending()
}

// pending tries a read that cannot wait (deadline in the past): crypto/tls
// answers from its buffers if it can, and a deadline error does not break
// the connection (crypto/tls treats it as temporary). Any other error
// counts as pending: the next Read reports it.
func (c *tlsConn) pending() bool {
	if c.t == nil || len(c.peek) > 0 {
		return len(c.peek) > 0
	}
	_ = c.Conn.SetReadDeadline(time.Unix(1, 0))
	var b [1]byte
	n, err := c.t.Read(b[:])
	if n > 0 {
		c.peek = append(c.peek[:0], b[0])
		return true
	}
	var ne net.Error
	return err != nil && !(errors.As(err, &ne) && ne.Timeout())
}

// start begins TLS; rest are bytes already read from the socket after the
// PROXY header (the start of the ClientHello).
func (c *tlsConn) start(rest []byte, handshakeTimeout time.Duration) {
	var under net.Conn = c.Conn
	if len(rest) > 0 {
		under = &prefixConn{Conn: c.Conn, rest: append([]byte(nil), rest...)}
	}
	if handshakeTimeout > 0 {
		_ = c.Conn.SetWriteDeadline(time.Now().Add(handshakeTimeout))
	}
	c.t = tls.Server(under, c.cfg)
}

func (c *tlsConn) Read(b []byte) (int, error) {
	if len(c.peek) > 0 {
		n := copy(b, c.peek)
		c.peek = c.peek[n:]
		return n, nil
	}
	if c.t == nil {
		return c.Conn.Read(b)
	}
	return c.t.Read(b)
}

func (c *tlsConn) Write(b []byte) (int, error) {
	if c.t == nil {
		return c.Conn.Write(b)
	}
	return c.t.Write(b)
}

// state is the TLS state for http.Request.TLS (nil before the handshake).
func (c *tlsConn) state() *tls.ConnectionState {
	if c.t == nil {
		return nil
	}
	st := c.t.ConnectionState()
	if !st.HandshakeComplete {
		return nil
	}
	return &st
}

// prefixConn replays bytes read ahead before reading the socket again.
type prefixConn struct {
	net.Conn
	rest []byte
}

func (c *prefixConn) Read(b []byte) (int, error) {
	if len(c.rest) > 0 {
		n := copy(b, c.rest)
		c.rest = c.rest[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}
