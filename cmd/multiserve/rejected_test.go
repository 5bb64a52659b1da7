package main

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/multiserve/multiserve/internal/testserver"
	"github.com/multiserve/multiserve/internal/tlsconf"
)

// TestRejectedRequestsLogged: requests the engine refuses (400 malformed,
// 414 line too long, 431 too many headers, 413 body over the limit, 408 a
// head that stopped coming: closed unanswered after header_timeout) leave
// an access log line with the peer, the status and the request line as
// sent, escaped, on every class that serves through the h1 engine, and
// are counted in /metrics by status and reason. goroutine's net/http
// engine refuses through the same hook: its gate's refusals and a head
// that stops coming while net/http reads it.
func TestRejectedRequestsLogged(t *testing.T) {
	bad := []struct {
		raw, want string
	}{
		{"GET /a\x01b HTTP/1.1\r\nHost: x\r\n\r\n", `"GET /a\x01b HTTP/1.1" 400`},
		{"GET /" + strings.Repeat("x", 300) + " HTTP/1.1\r\nHost: x\r\n\r\n", `" 414 `},
		{"GET /h HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", `"GET /h HTTP/1.1" 431`},
		{"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n", `"POST /p HTTP/1.1" 413`},
		{"", `"- - -" 408`}, // sent below
	}
	for _, run := range []struct{ name, class, engine string }{
		{"sync", "sync", "native"}, {"threaded", "threaded", "native"}, {"evloop", "evloop", "native"},
		{"goroutine", "goroutine", "native"}, {"goroutine-nethttp", "goroutine", "net/http"},
	} {
		class := run.class
		t.Run(run.name, func(t *testing.T) {
			acc := filepath.Join(t.TempDir(), "access.log")
			stats := freeAddr(t)
			s := testserver.Start(t, bin, "-b", "127.0.0.1:0", "-w", "1", "-k", class, "--http-engine", run.engine, "--access-logfile", acc, "--stats-bind", stats,
				"--header-timeout", "1", "--limit-request-line", "200", "--limit-request-fields", "2", "--limit-request-body", "10", "echo")
			for _, b := range bad {
				if b.raw != "" {
					rawExchange(t, s.Addr, b.raw)
				}
			}
			// A head that stops coming: closed unanswered after
			// header_timeout, logged as 408.
			if out := rawExchange(t, s.Addr, "GET /slow HTTP/1.1\r\nHost: x\r\n"); out != "" {
				t.Errorf("a timed-out head was answered: %q", out)
			}
			wants := make([]string, len(bad))
			for i, b := range bad {
				wants[i] = b.want
			}
			waitRejected(t, acc, stats, class, wants, `code="400",reason="malformed request"} 1`, `code="408",reason="request timeout"} 1`,
				`code="413",reason="body too large"} 1`, `code="414",reason="request line too long"} 1`, `code="431",reason="header fields too large"} 1`)
		})
	}
}

// TestRejectedOverTLSLogged: over TLS, goroutine's net/http engine checks
// the limit_request_* settings after net/http parsed a request; what it
// refuses there leaves the same access log line and metric. Host counts
// as a field, as on the native engine.
func TestRejectedOverTLSLogged(t *testing.T) {
	files, err := tlsconf.WriteTestFiles(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ca, err := os.ReadFile(files.CA)
	pool := x509.NewCertPool()
	if err != nil || !pool.AppendCertsFromPEM(ca) {
		t.Fatalf("CA: %v", err)
	}
	acc := filepath.Join(t.TempDir(), "access.log")
	stats := freeAddr(t)
	s := testserver.Start(t, bin, "-b", "127.0.0.1:0", "-w", "1", "-k", "goroutine", "--http-engine", "net/http",
		"--certfile", files.Cert, "--keyfile", files.Key, "--access-logfile", acc, "--stats-bind", stats, "--limit-request-fields", "2", "echo")
	c, err := tls.Dial("tcp", s.Addr, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", NextProtos: []string{"http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(c, "GET /h HTTP/1.1\r\nHost: x\r\nA: 1\r\nB: 2\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	if out, _ := io.ReadAll(c); !strings.HasPrefix(string(out), "HTTP/1.1 431 ") {
		t.Fatalf("too many fields over TLS answered %q", out)
	}
	waitRejected(t, acc, stats, "goroutine", []string{`"GET /h HTTP/1.1" 431`}, `code="431",reason="header fields too large"} 1`)
}

// waitRejected waits until the access log at acc has the lines in wants
// (one each from 127.0.0.1, nothing more) and /metrics at stats counts
// the rejections in metrics (label sets after class, with the value).
func waitRejected(t *testing.T, acc, stats, class string, wants []string, metrics ...string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		log := readFile(acc)
		missing := ""
		for _, w := range wants {
			if !strings.Contains(log, w) {
				missing = w
			}
		}
		if missing == "" && strings.Count(log, "127.0.0.1 ") == len(wants) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("access log lacks %q (want %d lines from 127.0.0.1):\n%s", missing, len(wants), log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	text := ""
	for range 100 {
		if resp, err := http.Get("http://" + stats + "/metrics"); err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if text = string(b); strings.Contains(text, "multiserve_rejected_requests_total") {
				break
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, w := range metrics {
		if !strings.Contains(text, `multiserve_rejected_requests_total{class="`+class+`",`+w) {
			t.Errorf("/metrics lacks %s:\n%s", w, grepLines(text, "rejected"))
		}
	}
}

func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
