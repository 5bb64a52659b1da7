package evloop

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestCloseWithUnreadBodyKeepsResponse: a connection the server ends while
// its client is still sending a body the handler never read must deliver
// the whole response and a clean EOF, not a reset that destroys what the
// client has not read yet. The client reads only once it sent everything
// (or the server stopped taking it), so the response sits unread while the
// server closes.
func TestCloseWithUnreadBodyKeepsResponse(t *testing.T) {
	payload := strings.Repeat("r", 256<<10)
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Connection", "close")
		_, _ = io.WriteString(w, payload)
	})
	for _, tc := range []struct {
		name    string
		threads int
		limit   int64 // limit_request_body: a 413 answers the head
		get     bool  // a GET followed by pipelined bytes, not a POST body
	}{
		{"inline/unread", 0, 0, false},
		{"inline/413", 0, 1 << 10, false},
		{"inline/pipelined", 0, 0, true},
		{"pool/unread", 2, 0, false},
		{"pool/413", 2, 1 << 10, false},
		{"pool/pipelined", 2, 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.Threads = tc.threads
			cfg.LimitRequestBody = tc.limit
			cfg.EvloopConnBuffer = 256 << 10
			hs := startServer(t, cfg, h)
			for round := range 3 {
				unreadBodyRound(t, hs.addrs[0], tc.limit == 0, tc.get, payload, round)
			}
		})
	}
}

func unreadBodyRound(t *testing.T, addr string, wantOK, get bool, payload string, round int) {
	t.Helper()
	c := dial(t, addr)
	body := strings.Repeat("b", 8<<20) // past socket buffers and evloop_conn_buffer
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		if get {
			fmt.Fprint(c.nc, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		} else {
			fmt.Fprintf(c.nc, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", len(body))
		}
		_, _ = io.WriteString(c.nc, body) // fails if the server closes before taking it all
	}()
	select {
	case <-sent:
	case <-time.After(20 * time.Second):
		t.Fatalf("round %d: the body was neither taken nor refused", round)
	}
	time.Sleep(50 * time.Millisecond) // let the server's close land first
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		t.Fatalf("round %d: response head: %v", round, err)
	}
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("round %d: status %d, %d bytes, then %v", round, resp.StatusCode, len(got), err)
	}
	if wantOK && (resp.StatusCode != 200 || string(got) != payload) {
		t.Fatalf("round %d: status %d, %d of %d bytes", round, resp.StatusCode, len(got), len(payload))
	}
	if !wantOK && resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("round %d: status %d, want 413", round, resp.StatusCode)
	}
	if b, err := c.br.ReadByte(); err != io.EOF {
		t.Fatalf("round %d: after the response: %q, %v; want a clean EOF", round, b, err)
	}
}
