package h1

import (
	"errors"
	"fmt"
	"net"

	"github.com/multiserve/multiserve/config"
	"github.com/multiserve/multiserve/proxyproto"
)

// proxyPolicy returns the PROXY protocol policy of cfg, nil when
// proxy_protocol is off (or proxy_allow_ips is invalid, which config
// validation already refuses).
func proxyPolicy(cfg *config.Config) *proxyproto.Policy {
	if !cfg.ProxyProtocol {
		return nil
	}
	p, err := proxyproto.NewPolicy(cfg)
	if err != nil {
		return nil
	}
	return p
}

// readPreface consumes the PROXY header every connection starts with when
// proxy_protocol is on, before the first request, within header_timeout.
// A peer outside proxy_allow_ips is closed before anything is read; a
// missing or malformed header closes the connection without an answer.
// From then on the request's RemoteAddr is the header's source address.
func (c *Conn) readPreface() bool {
	peer := c.nc.RemoteAddr()
	for {
		n, remote, done, err := c.srv.Preface(c.buf[c.r:c.w], peer)
		if err != nil {
			c.srv.log().Warn("h1: closing connection", "err", err)
			return false
		}
		if done {
			c.r += n
			c.remote = remote
			return true
		}
		if c.p == nil {
			c.acquireParser() // readIdle released it
		}
		if !c.fillHead(true) {
			return false
		}
	}
}

// ErrProxyRefused is returned by Preface for a connection that must be
// closed without an answer (peer not in proxy_allow_ips, or no valid
// PROXY header).
var ErrProxyRefused = errors.New("h1: PROXY header refused")

// Preface is the non-blocking form of the PROXY header check, for event
// loops: call it with every byte received so far on a new connection until
// done, before handing bytes to the Parser. It returns how many bytes the
// header used (discard them), the remote address to pass to
// Parser.Request from then on, and done once the header was read; an error
// (wrapping ErrProxyRefused) means close the connection unanswered.
// With proxy_protocol off it returns done at once with peer's address.
func (s *Server) Preface(b []byte, peer net.Addr) (n int, remote string, done bool, err error) {
	if peer != nil {
		remote = peer.String()
	}
	pol, _ := s.resolved()
	if pol == nil {
		return 0, remote, true, nil
	}
	if !pol.Allowed(peer) {
		return 0, remote, false, fmt.Errorf("%w: peer %s not in proxy_allow_ips", ErrProxyRefused, remote)
	}
	h, n, err := proxyproto.Parse(b)
	switch {
	case err == nil:
		return n, proxyproto.Remote(h, peer), true, nil
	case errors.Is(err, proxyproto.ErrNeedMore):
		return 0, remote, false, nil
	}
	return 0, remote, false, fmt.Errorf("%w: %w", ErrProxyRefused, err)
}
