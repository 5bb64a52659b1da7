package proxyproto

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"
)

// Listener wraps a net.Listener (the goroutine class's net/http engine):
// every accepted connection must start with a PROXY header, read on the
// connection's own goroutine (the first Read or RemoteAddr call, which
// net/http makes first thing), so a slow peer never stalls Accept.
type Listener struct {
	net.Listener
	Policy *Policy
	// Timeout bounds the wait for the header (header_timeout); 0: none.
	Timeout time.Duration
}

// Accept returns the next connection, wrapped.
func (l *Listener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &Conn{Conn: c, policy: l.Policy, timeout: l.Timeout}, nil
}

// Conn is a connection whose PROXY header is read on first use.
type Conn struct {
	net.Conn
	policy  *Policy
	timeout time.Duration
	once    sync.Once
	err     error
	remote  net.Addr
	rest    []byte // bytes read past the header
}

// ErrNotAllowed: the peer is not in proxy_allow_ips.
var ErrNotAllowed = errors.New("proxyproto: peer not in proxy_allow_ips")

func (c *Conn) init() {
	c.once.Do(func() {
		peer := c.Conn.RemoteAddr()
		c.remote = peer
		if !c.policy.Allowed(peer) {
			c.err = fmt.Errorf("%w: %v", ErrNotAllowed, peer)
			c.Conn.Close()
			return
		}
		if c.timeout > 0 {
			_ = c.Conn.SetReadDeadline(time.Now().Add(c.timeout))
		}
		h, rest, err := ReadHeader(c.Conn)
		if err != nil {
			c.err = err
			c.Conn.Close()
			return
		}
		_ = c.Conn.SetReadDeadline(time.Time{})
		c.rest = rest
		if !h.Local && h.Src.IsValid() {
			c.remote = net.TCPAddrFromAddrPort(h.Src)
		}
	})
}

// ReadHeader reads from r until a PROXY header is complete; it returns
// the header and any bytes read past it.
func ReadHeader(r interface{ Read([]byte) (int, error) }) (Header, []byte, error) {
	buf := make([]byte, 0, 256)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		h, used, perr := Parse(buf)
		switch {
		case perr == nil:
			return h, buf[used:], nil
		case !errors.Is(perr, ErrNeedMore):
			return Header{}, nil, perr
		case err != nil:
			return Header{}, nil, fmt.Errorf("proxyproto: read header: %w", err)
		}
	}
}

// Read reads the connection's data after the PROXY header.
func (c *Conn) Read(b []byte) (int, error) {
	c.init()
	if c.err != nil {
		return 0, c.err
	}
	if len(c.rest) > 0 {
		n := copy(b, c.rest)
		c.rest = c.rest[n:]
		return n, nil
	}
	return c.Conn.Read(b)
}

// RemoteAddr is the client's address from the PROXY header (the peer's
// for LOCAL/UNKNOWN headers or when the header was refused).
func (c *Conn) RemoteAddr() net.Addr {
	c.init()
	return c.remote
}
