package scoreboard

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"testing"

	"github.com/multiserve/multiserve/config"
	"github.com/multiserve/multiserve/h1"
)

// TestMiddlewareOverH1: through the real engine the middleware reads the
// status and body bytes from h1.Response (no recorder): three requests on
// one kept-alive loopback connection, 404 with 4 bytes, 200 with 5 bytes
// written through io.WriteString, and a panic (500 from the engine).
func TestMiddlewareOverH1(t *testing.T) {
	s := newBoard(t, 1).Slot(0)
	s.Started(os.Getpid())
	app := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := w.(ResponseMeter); !ok {
			t.Errorf("handler got %T, not the engine's metered writer", w)
		}
		switch r.URL.Path {
		case "/missing":
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte("nope"))
		case "/panic":
			panic("boom")
		default:
			io.WriteString(w, "hello")
		}
	})
	srv := &h1.Server{Handler: Middleware(app, s), Config: config.Default(), Log: slog.New(slog.DiscardHandler)}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
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
	br := bufio.NewReader(c)
	for _, tc := range []struct {
		path   string
		status int
	}{{"/missing", 404}, {"/", 200}, {"/panic", 500}} {
		fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", tc.path)
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s: %v", tc.path, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status {
			t.Fatalf("%s: status %d, want %d", tc.path, resp.StatusCode, tc.status)
		}
	}
	c.Close()
	<-done
	got := s.Counters()
	if got.Requests != 3 || got.Status[1] != 1 || got.Status[3] != 1 || got.Status[4] != 1 || got.Bytes != 9 {
		t.Fatalf("counters: %+v", got)
	}
}
