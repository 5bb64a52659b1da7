package h1

import (
	"context"
	"net"
	"net/http"
	"testing"
)

// addrString must say exactly what net's String says, for every form
// an accepted socket's peer can take.
func TestAddrStringMatchesNet(t *testing.T) {
	for _, a := range []net.Addr{
		&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8000},
		&net.TCPAddr{IP: net.IP{10, 1, 2, 3}, Port: 65535},
		&net.TCPAddr{IP: net.ParseIP("::1"), Port: 1},
		&net.TCPAddr{IP: net.ParseIP("2001:db8::1:0:0:1"), Port: 443},
		&net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.1"), Port: 80},
		&net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 80, Zone: "eth0"},
		&net.TCPAddr{IP: net.IPv4zero, Port: 0},
		&net.TCPAddr{Port: 9},
		&net.UnixAddr{Name: "/run/x.sock", Net: "unix"},
		&net.UnixAddr{Net: "unix"},
	} {
		if got, want := addrString(a), a.String(); got != want {
			t.Errorf("addrString(%#v) = %q, want %q", a, got, want)
		}
	}
}

// A connection's context carries the local address as net/http's does,
// and is cancelled when the connection closes.
func TestConnContext(t *testing.T) {
	lc := &loopConn{req: []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), left: 1}
	c := (&Server{}).NewConn(lc)
	if got := c.ctx.Value(http.LocalAddrContextKey); got == nil || got.(net.Addr).String() != "127.0.0.1:80" {
		t.Fatalf("LocalAddrContextKey = %v", got)
	}
	if c.ctx.Value(http.ServerContextKey) != nil {
		t.Fatal("unexpected value for another key")
	}
	child, cancel := context.WithCancel(c.ctx)
	defer cancel()
	c.Close()
	<-child.Done()
	if c.ctx.Err() != context.Canceled {
		t.Fatalf("Err after Close = %v", c.ctx.Err())
	}
}
