package proxyproto

import (
	"fmt"
	"net"

	"github.com/multiserve/multiserve/config"
	"github.com/multiserve/multiserve/internal/netallow"
)

// Policy is proxy_protocol + proxy_allow_ips for one worker.
type Policy struct {
	allow *netallow.List
}

// NewPolicy returns the policy of cfg, or nil when proxy_protocol is off.
func NewPolicy(cfg *config.Config) (*Policy, error) {
	if cfg == nil || !cfg.ProxyProtocol {
		return nil, nil
	}
	allow, err := netallow.Parse(cfg.ProxyAllowIPs)
	if err != nil {
		return nil, fmt.Errorf("proxyproto: proxy_allow_ips: %w", err)
	}
	return &Policy{allow: allow}, nil
}

// Allowed reports whether peer may send a PROXY header. Unix-socket peers
// are local processes and are allowed, as forwarded_allow_ips does. A
// connection from a peer that is not allowed must be closed unread: with
// proxy_protocol on, its first bytes can only be a (forged) header.
func (p *Policy) Allowed(peer net.Addr) bool {
	allowed, isIP := p.allow.ContainsNetAddr(peer)
	return allowed || !isIP
}

// Remote is the address to report for a connection from peer that sent h:
// the header's source, or the peer itself for LOCAL/UNKNOWN headers.
func Remote(h Header, peer net.Addr) string {
	if h.Local || !h.Src.IsValid() {
		if peer == nil {
			return ""
		}
		return peer.String()
	}
	return h.Src.String()
}
