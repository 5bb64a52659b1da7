package proxyheaders

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/multiserve/multiserve/config"
)

// seen records what the application got.
type seen struct {
	header http.Header
	scheme string
}

func serve(t *testing.T, cfg *config.Config, remote string, hdr map[string]string) (int, seen) {
	t.Helper()
	var got seen
	h, err := Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = seen{header: r.Header.Clone(), scheme: Scheme(r)}
	}), cfg)
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("GET", "/", nil)
	req.RemoteAddr = remote
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code, got
}

func TestUntrustedPeerStripped(t *testing.T) {
	cfg := config.Default() // forwarded_allow_ips 127.0.0.1, ::1
	spoof := map[string]string{
		"X-Forwarded-For": "1.2.3.4", "X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil",
		"X-Forwarded-Ssl": "on", "X-Forwarded-Protocol": "ssl", "Forwarded": "for=1.2.3.4", "X-Other": "kept",
	}
	code, got := serve(t, cfg, "203.0.113.7:5555", spoof)
	if code != 200 {
		t.Fatalf("status %d", code)
	}
	for k := range spoof {
		if k == "X-Other" {
			continue
		}
		if v := got.header.Get(k); v != "" {
			t.Errorf("%s from an untrusted peer reached the app: %q", k, v)
		}
	}
	if got.header.Get("X-Other") != "kept" || got.scheme != "http" {
		t.Errorf("X-Other %q scheme %q", got.header.Get("X-Other"), got.scheme)
	}
}

func TestTrustedPeer(t *testing.T) {
	cfg := config.Default()
	cfg.ForwardedAllowIPs = []string{"10.0.0.0/8", "::1"}
	for _, tc := range []struct {
		name, remote string
		hdr          map[string]string
		code         int
		scheme       string
	}{
		{"proto https", "10.1.2.3:1", map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-For": "1.2.3.4"}, 200, "https"},
		{"proto case", "10.1.2.3:1", map[string]string{"X-Forwarded-Proto": "HTTPS"}, 200, "https"},
		{"proto http", "10.1.2.3:1", map[string]string{"X-Forwarded-Proto": "http"}, 200, "http"},
		{"ssl on", "[::1]:1", map[string]string{"X-Forwarded-Ssl": "on"}, 200, "https"},
		{"contradictory", "10.1.2.3:1", map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-Ssl": "off"}, 400, ""},
		{"none", "10.1.2.3:1", nil, 200, "http"},
		{"unix peer trusted", "@", map[string]string{"X-Forwarded-Proto": "https"}, 200, "https"},
		{"untrusted", "11.0.0.1:1", map[string]string{"X-Forwarded-Proto": "https"}, 200, "http"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, got := serve(t, cfg, tc.remote, tc.hdr)
			if code != tc.code || (code == 200 && got.scheme != tc.scheme) {
				t.Fatalf("code %d scheme %q, want %d %q", code, got.scheme, tc.code, tc.scheme)
			}
			if tc.name == "proto https" && got.header.Get("X-Forwarded-For") != "1.2.3.4" {
				t.Errorf("X-Forwarded-For from a trusted peer dropped: %v", got.header)
			}
		})
	}
}

func TestStarAndCustomTable(t *testing.T) {
	cfg := config.Default()
	cfg.ForwardedAllowIPs = []string{"*"}
	cfg.SecureSchemeHeaders = map[string]string{"X-SCHEME": "secure"}
	if _, got := serve(t, cfg, "198.51.100.1:1", map[string]string{"X-Scheme": "secure"}); got.scheme != "https" {
		t.Errorf("custom header from * peer: scheme %q", got.scheme)
	}
	// X-Forwarded-Proto is no longer a secure scheme header in this table.
	if _, got := serve(t, cfg, "198.51.100.1:1", map[string]string{"X-Forwarded-Proto": "https"}); got.scheme != "http" {
		t.Errorf("X-Forwarded-Proto outside the table made it https")
	}
	cfg.ForwardedAllowIPs = []string{"bogus"}
	if _, err := Wrap(http.NotFoundHandler(), cfg); err == nil {
		t.Error("bad forwarded_allow_ips accepted")
	}
}

func TestHeaderMapNetHTTP(t *testing.T) {
	for _, tc := range []struct {
		engine, mode string
		code         int
		kept         bool
	}{
		{"net/http", "drop", 200, false},
		{"net/http", "refuse", 400, false},
		{"net/http", "dangerous", 200, true},
		{"native", "drop", 200, true}, // h1 already dropped it while parsing
	} {
		cfg := config.Default()
		cfg.WorkerClass, cfg.HTTPEngine, cfg.HeaderMap = "goroutine", tc.engine, tc.mode
		code, got := serve(t, cfg, "127.0.0.1:1", map[string]string{"X_Forwarded_For": "6.6.6.6", "X-Ok": "1"})
		if code != tc.code {
			t.Fatalf("%s %s: status %d, want %d", tc.engine, tc.mode, code, tc.code)
		}
		if code == 200 && (got.header.Get("X_Forwarded_For") != "") != tc.kept {
			t.Errorf("%s %s: header %v", tc.engine, tc.mode, got.header)
		}
	}
}

// BenchmarkPolicy is the per-request cost of the policy on the default
// config: a direct request (no proxy headers: the fast path), a browser's
// set of headers, and one from a trusted proxy with X-Forwarded-Proto.
func BenchmarkPolicy(b *testing.B) {
	h, err := Wrap(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), config.Default())
	if err != nil {
		b.Fatal(err)
	}
	for _, bc := range []struct {
		name string
		hdr  map[string]string
	}{
		{"direct", nil},
		{"browser", map[string]string{"Accept": "text/html", "Accept-Encoding": "gzip", "Accept-Language": "en",
			"User-Agent": "Mozilla/5.0", "Cookie": "a=b", "Referer": "http://x/", "Cache-Control": "no-cache"}},
		{"trusted-proxy", map[string]string{"X-Forwarded-Proto": "https", "X-Forwarded-For": "192.0.2.1"}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			req := httptest.NewRequest("GET", "/", nil)
			req.RemoteAddr = "127.0.0.1:40000"
			for k, v := range bc.hdr {
				req.Header.Set(k, v)
			}
			b.ReportAllocs()
			for b.Loop() {
				h.ServeHTTP(nil, req)
			}
		})
	}
}
