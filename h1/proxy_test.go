package h1

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/multiserve/multiserve/config"
)

// serveOne accepts one loopback connection, serves it with cfg through the
// blocking Conn, writes raw on the client side and returns all it read.
func serveOne(t *testing.T, cfg *config.Config, raw string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	srv := &Server{Config: cfg, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "remote="+r.RemoteAddr)
	})}
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	wg.Add(1)
	go func() {
		defer wg.Done()
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		srv.NewConn(nc).Serve(context.Background(), false)
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(c) // Connection: close below, or the server closes
	return string(out)
}

func TestProxyProtocolConn(t *testing.T) {
	const get = "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
	cfg := config.Default()
	cfg.ProxyProtocol = true // proxy_allow_ips defaults to loopback
	cfg.HeaderTimeout = 5 * time.Second

	v1 := "PROXY TCP4 192.0.2.7 198.51.100.1 4242 80\r\n"
	if out := serveOne(t, cfg, v1+get); !strings.Contains(out, "remote=192.0.2.7:4242") {
		t.Errorf("v1 from an allowed peer: %q", out)
	}
	v2 := "\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c\xc0\x00\x02\x08\xc6\x33\x64\x01\x10\x92\x00\x50"
	if out := serveOne(t, cfg, v2+get); !strings.Contains(out, "remote=192.0.2.8:4242") {
		t.Errorf("v2 from an allowed peer: %q", out)
	}
	if out := serveOne(t, cfg, "PROXY UNKNOWN\r\n"+get); !strings.Contains(out, "remote=127.0.0.1:") {
		t.Errorf("UNKNOWN keeps the peer address: %q", out)
	}
	if out := serveOne(t, cfg, get); out != "" {
		t.Errorf("no PROXY header: answered %q, want a silent close", out)
	}
	if out := serveOne(t, cfg, "PROXY TCP4 192.0.2.7 198.51.100.1 04242 80\r\n"+get); out != "" {
		t.Errorf("bad PROXY header: answered %q", out)
	}

	deny := config.Default()
	deny.ProxyProtocol = true
	deny.ProxyAllowIPs = []string{"10.0.0.0/8"}
	if out := serveOne(t, deny, v1+get); out != "" {
		t.Errorf("PROXY header from a non-allowed peer: answered %q, want a close", out)
	}

	off := config.Default()
	if out := serveOne(t, off, v1+get); strings.Contains(out, "192.0.2.7") || !strings.HasPrefix(out, "HTTP/1.1 400") {
		t.Errorf("proxy_protocol off: a PROXY line must be a bad request, got %q", out)
	}
}

func TestPreface(t *testing.T) {
	peer := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 1000}
	cfg := config.Default()
	srv := &Server{Config: cfg}
	if n, remote, done, err := srv.Preface(nil, peer); n != 0 || remote != "127.0.0.1:1000" || !done || err != nil {
		t.Fatalf("off: %d %q %v %v", n, remote, done, err)
	}
	on := config.Default()
	on.ProxyProtocol = true
	srv = &Server{Config: on}
	hdr := "PROXY TCP6 2001:db8::7 ::1 5 6\r\n"
	if _, _, done, err := srv.Preface([]byte(hdr[:10]), peer); done || err != nil {
		t.Fatalf("partial: done %v err %v", done, err)
	}
	n, remote, done, err := srv.Preface([]byte(hdr+"GET"), peer)
	if n != len(hdr) || remote != "[2001:db8::7]:5" || !done || err != nil {
		t.Fatalf("full: %d %q %v %v", n, remote, done, err)
	}
	if _, _, _, err := srv.Preface([]byte("GET / HTTP/1.1\r\n"), peer); !errors.Is(err, ErrProxyRefused) {
		t.Fatalf("no header: %v", err)
	}
	deny := config.Default()
	deny.ProxyProtocol, deny.ProxyAllowIPs = true, []string{"10.0.0.1"}
	srv = &Server{Config: deny}
	if _, _, _, err := srv.Preface([]byte(hdr), peer); !errors.Is(err, ErrProxyRefused) {
		t.Fatalf("non-allowed peer: %v", err)
	}
}
