package h1

import (
	"context"
	"net"
	"net/http"
	"net/netip"
)

// localAddrCtx is context.WithValue(context.Background(),
// http.LocalAddrContextKey, addr) as a value a Conn embeds: the
// connection's context is made for every connection, and this spares one
// of its allocations. It never is done (Background's Done is nil), so
// contexts derived from it need no goroutine to watch it.
type localAddrCtx struct {
	context.Context
	addr net.Addr
}

func (c *localAddrCtx) Value(key any) any {
	if key == http.LocalAddrContextKey {
		return c.addr
	}
	return c.Context.Value(key)
}

func (c *localAddrCtx) String() string { return "h1.localAddrCtx" }

// addrString is a.String() in one allocation for a TCP address (net's
// TCPAddr.String takes two: the IP's text, then host:port).
func addrString(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok && ta.Zone == "" && ta.Port >= 0 && ta.Port <= 0xffff {
		if ip, ok := netip.AddrFromSlice(ta.IP); ok {
			return netip.AddrPortFrom(ip.Unmap(), uint16(ta.Port)).String()
		}
	}
	return a.String()
}
