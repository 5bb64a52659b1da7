package respmeter

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestRecorder(t *testing.T) {
	for _, tc := range []struct {
		name   string
		handle func(w http.ResponseWriter)
		status int
		bytes  int64
	}{
		{"nothing written", func(http.ResponseWriter) {}, 0, 0},
		{"implicit 200", func(w http.ResponseWriter) { w.Write([]byte("hello")) }, 200, 5},
		{"1xx then final", func(w http.ResponseWriter) { w.WriteHeader(103); w.WriteHeader(404) }, 404, 0},
		{"WriteString", func(w http.ResponseWriter) { io.WriteString(w, "hello") }, 200, 5},
		{"flush commits 200", func(w http.ResponseWriter) { w.(http.Flusher).Flush() }, 200, 0},
	} {
		rec := Get(httptest.NewRecorder())
		tc.handle(rec)
		if rec.Status != tc.status || rec.Bytes != tc.bytes {
			t.Errorf("%s: status %d bytes %d, want %d %d", tc.name, rec.Status, rec.Bytes, tc.status, tc.bytes)
		}
		Put(rec)
	}
	rec := Get(httptest.NewRecorder())
	if n, err := rec.ReadFrom(strings.NewReader("abcdef")); n != 6 || err != nil || rec.Bytes != 6 || rec.Status != 200 {
		t.Errorf("ReadFrom: n=%d err=%v bytes=%d status=%d", n, err, rec.Bytes, rec.Status)
	}
	if _, _, err := rec.Hijack(); !errors.Is(err, http.ErrNotSupported) {
		t.Errorf("Hijack on a writer without it: %v", err)
	}
}

// TestWriteStringNoAlloc: io.WriteString through the Recorder reaches the
// server's WriteString without a []byte copy.
func TestWriteStringNoAlloc(t *testing.T) {
	rec := Get(stringWriter{httptest.NewRecorder()})
	defer Put(rec)
	if n := testing.AllocsPerRun(100, func() { io.WriteString(rec, "hello, world") }); n != 0 {
		t.Fatalf("%v allocations per WriteString", n)
	}
}

// stringWriter is a ResponseWriter whose WriteString does not allocate.
type stringWriter struct{ http.ResponseWriter }

func (stringWriter) WriteString(s string) (int, error) { return len(s), nil }
