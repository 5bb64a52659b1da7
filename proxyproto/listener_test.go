package proxyproto

import (
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/multiserve/multiserve/config"
)

// acceptOne wraps a loopback listener with cfg's policy, sends raw from a
// client and returns the server side's RemoteAddr and what it read.
func acceptOne(t *testing.T, cfg *config.Config, raw string) (string, string, error) {
	t.Helper()
	pol, err := NewPolicy(cfg)
	if err != nil {
		t.Fatal(err)
	}
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ln := &Listener{Listener: inner, Policy: pol, Timeout: 5 * time.Second}
	defer ln.Close()
	c, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, raw)
	c.(*net.TCPConn).CloseWrite()
	sc, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	remote := sc.RemoteAddr().String()
	data, err := io.ReadAll(sc)
	return remote, string(data), err
}

func TestListener(t *testing.T) {
	cfg := config.Default()
	cfg.ProxyProtocol = true
	hdr := string(v2(1, 0x11, []byte{192, 0, 2, 1, 192, 0, 2, 2, 0x30, 0x39, 0, 80}))
	remote, data, err := acceptOne(t, cfg, hdr+"hello")
	if err != nil || remote != "192.0.2.1:12345" || data != "hello" {
		t.Errorf("allowed peer: remote %s data %q err %v", remote, data, err)
	}
	if _, data, err := acceptOne(t, cfg, "hello"); err == nil || data != "" {
		t.Errorf("no header: data %q err %v", data, err)
	}
	cfg.ProxyAllowIPs = []string{"10.0.0.0/8"}
	remote, data, err = acceptOne(t, cfg, hdr+"hello")
	if !errors.Is(err, ErrNotAllowed) || data != "" || remote == "192.0.2.1:12345" {
		t.Errorf("non-allowed peer: remote %s data %q err %v", remote, data, err)
	}
}
