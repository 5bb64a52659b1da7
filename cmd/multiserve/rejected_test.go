package main

import (
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/multiserve/multiserve/internal/testserver"
)

// TestRejectedRequestsLogged: requests the engine refuses (400 malformed,
// 414 line too long, 431 too many headers, 413 body over the limit, 408 a
// head that stopped coming: closed unanswered after header_timeout) leave
// an access log line with the peer, the status and the request line as
// sent, escaped, on every class that serves through the h1 engine, and
// are counted in /metrics by status and reason.
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
	for _, class := range []string{"sync", "threaded", "evloop", "goroutine"} {
		t.Run(class, func(t *testing.T) {
			acc := filepath.Join(t.TempDir(), "access.log")
			stats := freeAddr(t)
			s := testserver.Start(t, bin, "-b", "127.0.0.1:0", "-w", "1", "-k", class, "--access-logfile", acc, "--stats-bind", stats,
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
			deadline := time.Now().Add(30 * time.Second)
			for {
				log := readFile(acc)
				missing := ""
				for _, b := range bad {
					if !strings.Contains(log, b.want) {
						missing = b.want
					}
				}
				if missing == "" && strings.Count(log, "127.0.0.1 ") == len(bad) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("access log lacks %q (want %d lines from 127.0.0.1):\n%s", missing, len(bad), log)
				}
				time.Sleep(20 * time.Millisecond)
			}
			metrics := ""
			for range 100 {
				if resp, err := http.Get("http://" + stats + "/metrics"); err == nil {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if metrics = string(b); strings.Contains(metrics, "multiserve_rejected_requests_total") {
						break
					}
				}
				time.Sleep(100 * time.Millisecond)
			}
			for _, w := range []string{`code="400",reason="malformed request"} 1`, `code="408",reason="request timeout"} 1`, `code="413",reason="body too large"} 1`,
				`code="414",reason="request line too long"} 1`, `code="431",reason="header fields too large"} 1`} {
				if !strings.Contains(metrics, `multiserve_rejected_requests_total{class="`+class+`",`+w) {
					t.Errorf("/metrics lacks %s:\n%s", w, grepLines(metrics, "rejected"))
				}
			}
		})
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
