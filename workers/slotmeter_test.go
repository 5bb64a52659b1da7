package workers

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"

	"github.com/multiserve/multiserve/config"
	"golang.org/x/sys/unix"

	"github.com/multiserve/multiserve/h1"
	"github.com/multiserve/multiserve/internal/proc"
	"github.com/multiserve/multiserve/scoreboard"
)

func newBoard(t testing.TB, n int) *scoreboard.Board {
	t.Helper()
	b, err := scoreboard.Create(n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func TestSlotMeter(t *testing.T) {
	b := newBoard(t, 1)
	s := b.Slot(0)
	s.Started(os.Getpid())
	h := slotMeter(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/panic":
			panic("boom")
		case "/teapot":
			w.WriteHeader(418)
		}
		io.WriteString(w, "hello")
	}), s)
	for _, p := range []string{"/", "/teapot"} {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", p, nil))
	}
	func() {
		defer func() { recover() }()
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/panic", nil))
	}()
	c := s.Counters()
	if c.Requests != 3 || c.Status[1] != 1 || c.Status[3] != 1 || c.Status[4] != 1 || c.Bytes != 10 {
		t.Fatalf("counters: %+v", c)
	}
	if in := s.Info(); in.State != scoreboard.StateIdle || in.InFlight != 0 {
		t.Fatalf("state after: %+v", in)
	}
}

// The overhead benchmarks: the same hello handler served over loopback
// keep-alive with and without the middleware, in one run:
//
//	go test -run ^$ -bench SlotMeterHello -count 5 ./workers
func BenchmarkSlotMeterHello(b *testing.B) {
	hello := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "Hello, World!\n") })
	board := newBoard(b, 1)
	s := board.Slot(0)
	s.Started(os.Getpid())
	for _, tc := range []struct {
		name string
		h    http.Handler
	}{{"off", hello}, {"on", slotMeter(hello, s)}} {
		b.Run(tc.name, func(b *testing.B) { benchLoopback(b, tc.h) })
	}
}

func benchLoopback(b *testing.B, h http.Handler) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go srv.Serve(ln)
	defer srv.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	br := bufio.NewReader(c)
	req := []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
}

// BenchmarkSlotMeterOnly is the meter's own cost per request.
func BenchmarkSlotMeterOnly(b *testing.B) {
	benchslotMeter(b, func(w *httptest.ResponseRecorder) http.ResponseWriter { return w })
}

// BenchmarkSlotMeterEngine is BenchmarkSlotMeterOnly with a writer that
// implements ResponseMeter, as h1.Response does: no wrapper.
func BenchmarkSlotMeterEngine(b *testing.B) {
	benchslotMeter(b, func(w *httptest.ResponseRecorder) http.ResponseWriter {
		return &meteredWriter{ResponseWriter: w}
	})
}

func benchslotMeter(b *testing.B, writer func(*httptest.ResponseRecorder) http.ResponseWriter) {
	board := newBoard(b, 1)
	s := board.Slot(0)
	h := slotMeter(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(200) }), s)
	r := httptest.NewRequest("GET", "/hello", nil)
	w := writer(httptest.NewRecorder())
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		h.ServeHTTP(w, r)
	}
}

// meteredWriter is an engine writer that keeps its own figures
// (ResponseMeter).
type meteredWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (w *meteredWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *meteredWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = 200
	}
	w.bytes += int64(len(p))
	return w.ResponseWriter.Write(p)
}

func (w *meteredWriter) ResponseStatus() int  { return w.status }
func (w *meteredWriter) ResponseBytes() int64 { return w.bytes }

// TestSlotMeterEngine: with a writer implementing ResponseMeter the meter
// takes status and bytes from it.
func TestSlotMeterEngine(t *testing.T) {
	s := newBoard(t, 1).Slot(0)
	s.Started(os.Getpid())
	var inHandler scoreboard.Info
	h := slotMeter(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/panic" {
			panic("boom")
		}
		inHandler = s.Info()
		w.WriteHeader(404)
		io.WriteString(w, "nope")
	}), s)
	h.ServeHTTP(&meteredWriter{ResponseWriter: httptest.NewRecorder()}, httptest.NewRequest("GET", "/x", nil))
	if inHandler.InFlight != 1 || inHandler.Current.Path != "/x" {
		t.Fatalf("in handler: %+v", inHandler)
	}
	func() {
		defer func() { recover() }()
		h.ServeHTTP(&meteredWriter{ResponseWriter: httptest.NewRecorder()}, httptest.NewRequest("GET", "/panic", nil))
	}()
	c := s.Counters()
	if c.Requests != 2 || c.Status[3] != 1 || c.Status[4] != 1 || c.Bytes != 4 {
		t.Fatalf("counters: %+v", c)
	}
	if in := s.Info(); in.InFlight != 0 || in.State != scoreboard.StateIdle {
		t.Fatalf("after: %+v", in)
	}
}

// TestSlotMeterOverH1: through the real engine the meter reads the
// status and body bytes from h1.Response (no recorder): three requests on
// one kept-alive loopback connection, 404 with 4 bytes, 200 with 5 bytes
// written through io.WriteString, and a panic (500 from the engine).
func TestSlotMeterOverH1(t *testing.T) {
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
	srv := &h1.Server{Handler: slotMeter(app, s), Config: config.Default(), Log: slog.New(slog.DiscardHandler)}
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

// TestAttachSlot: the runtime maps the slot its spec names and marks it
// started with this pid; a spec without a scoreboard gives the zero Slot.
func TestAttachSlot(t *testing.T) {
	if s, err := attachSlot(proc.Spec{}); err != nil || !s.IsZero() {
		t.Fatalf("no scoreboard: %v, zero %v", err, s.IsZero())
	}
	b := newBoard(t, 4)
	idx, _ := b.Assign(0)
	fd, err := unix.Dup(int(b.File().Fd()))
	if err != nil {
		t.Fatal(err)
	}
	s, err := attachSlot(proc.Spec{ScoreboardFD: fd, ScoreboardSlot: idx})
	if err != nil {
		t.Fatal(err)
	}
	st := s.Begin("GET", "/x", "peer", 0)
	s.End(st, 200, 1)
	if in := b.Slot(idx).Info(); in.PID != os.Getpid() || in.Requests != 1 || in.State != scoreboard.StateIdle {
		t.Fatalf("slot as the arbiter reads it: %+v", in)
	}
	if _, err := attachSlot(proc.Spec{ScoreboardFD: fd, ScoreboardSlot: 99}); err == nil {
		t.Fatal("a slot beyond the board was mapped")
	}
}
