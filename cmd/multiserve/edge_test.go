package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/multiserve/multiserve/internal/testserver"
)

// echoed is the part of the echo app's reply these tests read.
type echoed struct {
	Headers    map[string][]string `json:"headers"`
	RemoteAddr string              `json:"remote_addr"`
}

func getEcho(t *testing.T, url string, hdr map[string]string) echoed {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e echoed
	if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || resp.StatusCode != 200 {
		t.Fatalf("status %d, decode: %v", resp.StatusCode, err)
	}
	return e
}

// TestForwardedHeaders: X-Forwarded-* from a peer outside
// forwarded_allow_ips never reach the app, on every class; from a listed
// peer they do.
func TestForwardedHeaders(t *testing.T) {
	spoof := map[string]string{"X-Forwarded-For": "6.6.6.6", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"}
	for _, class := range classes {
		t.Run(class, func(t *testing.T) {
			untrusted := testserver.Start(t, bin, "-b", "127.0.0.1:0", "-w", "1", "-k", class,
				"--forwarded-allow-ips", "10.9.9.9", "echo")
			got := getEcho(t, untrusted.URL("/"), spoof)
			for k := range spoof {
				if v, ok := got.Headers[k]; ok {
					t.Errorf("spoofed %s from a non-allowed peer reached the app: %q", k, v)
				}
			}
			trusted := testserver.Start(t, bin, "-b", "127.0.0.1:0", "-w", "1", "-k", class,
				"--forwarded-allow-ips", "127.0.0.0/8", "echo")
			got = getEcho(t, trusted.URL("/"), spoof)
			if v := got.Headers["X-Forwarded-For"]; len(v) != 1 || v[0] != "6.6.6.6" {
				t.Errorf("X-Forwarded-For from an allowed peer: %q", v)
			}
		})
	}
}

// TestHeaderMap: header names with underscores are dropped by default and
// refused (400) with header_map=refuse, on every class and on the
// goroutine class's net/http engine.
func TestHeaderMap(t *testing.T) {
	type variant struct{ name, class string }
	vs := []variant{{"goroutine-nethttp", "goroutine"}}
	for _, c := range classes {
		vs = append(vs, variant{c, c})
	}
	for _, v := range vs {
		t.Run(v.name, func(t *testing.T) {
			args := []string{"-b", "127.0.0.1:0", "-w", "1", "-k", v.class}
			if v.name == "goroutine-nethttp" {
				args = append(args, "--http-engine", "net/http")
			}
			drop := testserver.Start(t, bin, append(args, "echo")...)
			got := getEcho(t, drop.URL("/"), map[string]string{"X_Under": "1", "X-Dash": "1"})
			for name := range got.Headers {
				if strings.Contains(name, "_") {
					t.Errorf("underscore header reached the app: %s", name)
				}
			}
			if _, ok := got.Headers["X-Dash"]; !ok {
				t.Errorf("X-Dash lost: %v", got.Headers)
			}
			refuse := testserver.Start(t, bin, append(args, "--header-map", "refuse", "echo")...)
			req, _ := http.NewRequest("GET", refuse.URL("/"), nil)
			req.Header["X_Under"] = []string{"1"}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("header_map=refuse: status %d, want 400", resp.StatusCode)
			}
		})
	}
}

// rawExchange sends raw on a fresh connection to addr and returns all it
// reads until the server closes (requests below say Connection: close).
func rawExchange(t *testing.T, addr, raw string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	out, _ := io.ReadAll(c)
	return string(out)
}

// TestProxyProtocol: with proxy_protocol, a PROXY header from an allowed
// peer sets the remote address the app sees; from a peer outside
// proxy_allow_ips the connection is closed unanswered and the header is
// never trusted. Every class, and the goroutine class's net/http engine.
func TestProxyProtocol(t *testing.T) {
	const get = "GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
	const v1 = "PROXY TCP4 203.0.113.9 198.51.100.1 4711 80\r\n"
	type variant struct{ name, class string }
	vs := []variant{{"goroutine-nethttp", "goroutine"}}
	for _, c := range classes {
		vs = append(vs, variant{c, c})
	}
	for _, v := range vs {
		t.Run(v.name, func(t *testing.T) {
			args := []string{"-b", "127.0.0.1:0", "-w", "1", "-k", v.class, "--proxy-protocol"}
			if v.name == "goroutine-nethttp" {
				args = append(args, "--http-engine", "net/http")
			}
			allowed := testserver.Start(t, bin, append(args, "echo")...)
			if out := rawExchange(t, allowed.Addr, v1+get); !strings.Contains(out, `"remote_addr":"203.0.113.9:4711"`) {
				t.Errorf("PROXY v1 from an allowed peer: %q", out)
			}
			if out := rawExchange(t, allowed.Addr, get); strings.Contains(out, "HTTP/1.1 200") {
				t.Errorf("no PROXY header was served: %q", out)
			}
			denied := testserver.Start(t, bin, append(args, "--proxy-allow-ips", "10.0.0.0/8", "echo")...)
			if out := rawExchange(t, denied.Addr, v1+get); strings.Contains(out, "203.0.113.9") || strings.Contains(out, "HTTP/1.1 200") {
				t.Errorf("PROXY header from a non-allowed peer was trusted: %q", out)
			}
		})
	}
}
