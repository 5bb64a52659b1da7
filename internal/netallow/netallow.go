// Package netallow matches peer addresses against the allow-lists of
// forwarded_allow_ips and proxy_allow_ips: IP addresses, CIDR networks, or
// "*" for every peer.
package netallow

import (
	"fmt"
	"net"
	"net/netip"
)

// List is a parsed allow-list. The zero value allows nobody.
type List struct {
	all      bool
	prefixes []netip.Prefix
}

// Parse reads entries as config validates them: "*", an IP, or a CIDR.
func Parse(entries []string) (*List, error) {
	l := &List{}
	for _, e := range entries {
		if e == "*" {
			l.all = true
			continue
		}
		if a, err := netip.ParseAddr(e); err == nil {
			a = a.Unmap()
			l.prefixes = append(l.prefixes, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		p, err := netip.ParsePrefix(e)
		if err != nil {
			return nil, fmt.Errorf("netallow: %q is not an IP, CIDR or *", e)
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
		}
		l.prefixes = append(l.prefixes, p.Masked())
	}
	return l, nil
}

// All reports whether the list is "*".
func (l *List) All() bool { return l.all }

// Contains reports whether addr is allowed (IPv4-mapped IPv6 counts as IPv4).
func (l *List) Contains(addr netip.Addr) bool {
	if l.all {
		return true
	}
	addr = addr.Unmap()
	for _, p := range l.prefixes {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// ContainsNetAddr is Contains for a connection's address. A non-IP peer (a
// unix socket) reports ok=false: the caller decides what that means.
func (l *List) ContainsNetAddr(a net.Addr) (allowed, ok bool) {
	if ta, isTCP := a.(*net.TCPAddr); isTCP {
		ip, valid := netip.AddrFromSlice(ta.IP)
		if !valid {
			return false, false
		}
		return l.Contains(ip), true
	}
	if a == nil {
		return false, false
	}
	return l.ContainsString(a.String())
}

// ContainsString is Contains for an http.Request's RemoteAddr ("ip:port"
// or a bare IP). A non-IP address (a unix socket peer) reports ok=false.
func (l *List) ContainsString(remote string) (allowed, ok bool) {
	host := remote
	if h, _, err := net.SplitHostPort(remote); err == nil {
		host = h
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false, false
	}
	return l.Contains(ip.WithZone("")), true
}
