package accesslog

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/multiserve/multiserve/internal/respmeter"
)

// syncBuffer is a concurrency-safe log sink for tests.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *syncBuffer) lines() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Split(strings.TrimSuffix(s.buf.String(), "\n"), "\n")
}

// waitLine returns the first logged line, waiting up to 10 s for it.
func (s *syncBuffer) waitLine(t *testing.T) string {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if got := s.lines(); got[0] != "" {
			return got[0]
		}
	}
	t.Fatal("nothing logged within 10s")
	return ""
}

// newServer serves h wrapped with a "%(s)s %(B)s %(U)s" logger on a real
// loopback socket.
func newServer(t *testing.T, h http.Handler) (*httptest.Server, *syncBuffer) {
	t.Helper()
	sink := &syncBuffer{}
	l, err := New(sink, "%(s)s %(B)s %(U)s")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(Wrap(h, l))
	t.Cleanup(srv.Close)
	return srv, sink
}

func get(t *testing.T, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func TestWrapRecords(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/notfound", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(404)
		io.WriteString(w, "nope")
	})
	mux.HandleFunc("/empty", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("/hints", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Link", "</a.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.WriteHeader(202)
		io.WriteString(w, "ok")
	})
	mux.HandleFunc("/readfrom", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := w.(io.ReaderFrom); !ok {
			t.Error("wrapped writer lost io.ReaderFrom")
		}
		io.Copy(w, strings.NewReader(strings.Repeat("r", 5000)))
	})
	srv, sink := newServer(t, mux)
	for _, tc := range []struct {
		path string
		code int
		want string
	}{
		{"/notfound", 404, "404 4 /notfound"},
		{"/empty", 200, "200 0 /empty"},
		{"/hints", 202, "202 2 /hints"},
		{"/readfrom", 200, "200 5000 /readfrom"},
	} {
		resp, _ := get(t, srv.URL+tc.path)
		if resp.StatusCode != tc.code {
			t.Errorf("%s: status %d", tc.path, resp.StatusCode)
		}
		lines := sink.lines()
		if got := lines[len(lines)-1]; got != tc.want {
			t.Errorf("%s: logged %q, want %q", tc.path, got, tc.want)
		}
	}
}

// TestWrapFlush: a flushed first chunk reaches the client while the
// handler is still running, through both http.Flusher and
// http.ResponseController (which needs Unwrap).
func TestWrapFlush(t *testing.T) {
	for _, via := range []string{"flusher", "controller"} {
		t.Run(via, func(t *testing.T) {
			release := make(chan struct{})
			srv, sink := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "first\n")
				if via == "flusher" {
					w.(http.Flusher).Flush()
				} else if err := http.NewResponseController(w).Flush(); err != nil {
					t.Error(err)
				}
				<-release
				io.WriteString(w, "second\n")
			}))
			resp, err := http.Get(srv.URL + "/s")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			br := bufio.NewReader(resp.Body)
			first, err := br.ReadString('\n')
			close(release) // only after the first chunk arrived
			if err != nil || first != "first\n" {
				t.Fatalf("first chunk %q, %v", first, err)
			}
			io.ReadAll(br)
			resp.Body.Close()
			srv.Close() // waits for the handler, hence for the log line
			if got := sink.lines(); got[0] != "200 13 /s" {
				t.Errorf("logged %q", got)
			}
		})
	}
}

func TestWrapHijack(t *testing.T) {
	srv, sink := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, bw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close()
		bw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi")
		bw.Flush()
	}))
	if _, body := get(t, srv.URL+"/h"); body != "hi" {
		t.Errorf("body %q", body)
	}
	// srv.Close does not wait for a handler that hijacked its connection,
	// and the client may read "hi" before the handler returns and logs.
	if got := sink.waitLine(t); got != "101 0 /h" {
		t.Errorf("logged %q", got)
	}
	// A writer without Hijack support reports ErrNotSupported, not a panic.
	rec := respmeter.Get(httptest.NewRecorder())
	if _, _, err := rec.Hijack(); !errors.Is(err, http.ErrNotSupported) {
		t.Errorf("Hijack on recorder: %v", err)
	}
	rec.Flush() // httptest.ResponseRecorder flushes; must not panic
}

// TestWrapPanic: the line is written with 500 and the panic still reaches
// the server (net/http logs it and closes the connection).
func TestWrapPanic(t *testing.T) {
	srv, sink := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		panic(http.ErrAbortHandler) // net/http recovers it silently
	}))
	if _, err := http.Get(srv.URL + "/boom"); err == nil {
		t.Error("request to a panicking handler succeeded")
	}
	srv.Close()
	if got := sink.lines(); got[0] != "500 0 /boom" {
		t.Errorf("logged %q", got)
	}
}

func TestWrapNilLogger(t *testing.T) {
	h := http.NewServeMux()
	if Wrap(h, nil) != http.Handler(h) {
		t.Error("Wrap(h, nil) is not h")
	}
}

// TestWrapConcurrent: parallel requests each give exactly one intact line.
func TestWrapConcurrent(t *testing.T) {
	srv, sink := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.URL.Path)
	}))
	const n = 64
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(fmt.Sprintf("%s/%03d", srv.URL, i))
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}()
	}
	wg.Wait()
	srv.Close()
	seen := map[string]bool{}
	for _, l := range sink.lines() {
		seen[l] = true
	}
	for i := range n {
		if want := fmt.Sprintf("200 4 /%03d", i); !seen[want] {
			t.Errorf("missing line %q", want)
		}
	}
}

// TestWrapRequestIDAndQueue: an incoming X-Request-Id is kept, a missing
// one generated; both reach the log and the response; Q is the queue time
// from X-Request-Start, "-" without it.
func TestWrapRequestIDAndQueue(t *testing.T) {
	var buf bytes.Buffer
	l, err := New(&buf, "%(rid)s %(Q)s %({X-Request-Id}i)s")
	if err != nil {
		t.Fatal(err)
	}
	var seen string
	h := Wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { seen = r.Header.Get("X-Request-Id") }), l)

	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("X-Request-Id", "from-proxy")
	r.Header.Set("X-Request-Start", fmt.Sprintf("t=%d", time.Now().Add(-time.Second).UnixMicro()))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	f := strings.Fields(buf.String())
	if seen != "from-proxy" || w.Header().Get("X-Request-Id") != "from-proxy" || f[0] != "from-proxy" || f[2] != "from-proxy" {
		t.Fatalf("honoured id: handler %q, response %q, log %q", seen, w.Header().Get("X-Request-Id"), buf.String())
	}
	if q, err := strconv.Atoi(f[1]); err != nil || q < 1e6 || q > 60e6 {
		t.Fatalf("queue atom %q", f[1])
	}

	buf.Reset()
	w = httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/", nil))
	f = strings.Fields(buf.String())
	if len(seen) != 32 || w.Header().Get("X-Request-Id") != seen || f[0] != seen || f[1] != "-" {
		t.Fatalf("generated id: handler %q, response %q, log %q", seen, w.Header().Get("X-Request-Id"), buf.String())
	}
}
