package h1

import (
	"errors"
	"sync"

	"github.com/multiserve/multiserve/config"
	"github.com/multiserve/multiserve/proxyproto"
)

// proxyPolicies caches proxy_protocol's policy per configuration (a worker
// has one; parsing proxy_allow_ips per connection would be waste).
var proxyPolicies sync.Map // *config.Config -> *proxyproto.Policy

// ProxyPolicy returns the PROXY protocol policy of cfg, nil when
// proxy_protocol is off (or proxy_allow_ips is invalid, which config
// validation already refuses).
func ProxyPolicy(cfg *config.Config) *proxyproto.Policy {
	if !cfg.ProxyProtocol {
		return nil
	}
	if p, ok := proxyPolicies.Load(cfg); ok {
		return p.(*proxyproto.Policy)
	}
	p, err := proxyproto.NewPolicy(cfg)
	if err != nil || p == nil {
		return nil
	}
	actual, _ := proxyPolicies.LoadOrStore(cfg, p)
	return actual.(*proxyproto.Policy)
}

// readPreface consumes the PROXY header every connection starts with when
// proxy_protocol is on, before the first request, within header_timeout.
// A peer outside proxy_allow_ips is closed before anything is read; a
// missing or malformed header closes the connection without an answer.
// From then on the request's RemoteAddr is the header's source address.
func (c *Conn) readPreface(pol *proxyproto.Policy) bool {
	peer := c.nc.RemoteAddr()
	if !pol.Allowed(peer) {
		c.srv.log().Warn("h1: PROXY header from a peer not in proxy_allow_ips, closing", "peer", c.remote)
		return false
	}
	for {
		h, n, err := proxyproto.Parse(c.buf[c.r:c.w])
		if err == nil {
			c.r += n
			c.remote = proxyproto.Remote(h, peer)
			return true
		}
		if !errors.Is(err, proxyproto.ErrNeedMore) {
			c.srv.log().Debug("h1: bad PROXY header, closing", "peer", c.remote, "err", err)
			return false
		}
		if c.p == nil {
			c.acquireParser() // readIdle released it
		}
		if !c.fillHead(true) {
			return false
		}
	}
}
