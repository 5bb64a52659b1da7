package apps

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func serve(h http.Handler, method, target string, body io.Reader) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, target, body))
	return rec
}

var registerGreeter sync.Once

func TestRegistry(t *testing.T) {
	for _, name := range []string{"hello", "echo", "sim"} {
		if _, err := Load(name); err != nil {
			t.Errorf("Load(%q): %v", name, err)
		}
	}
	registerGreeter.Do(func() { Register("test-greeter", Hello()) }) // -count=N safe
	if _, err := Load("test-greeter"); err != nil {
		t.Errorf("registered app: %v", err)
	}
	names := Names()
	want := []string{"echo", "hello", "sim", "static:DIR", "test-greeter"}
	if strings.Join(names, ",") != strings.Join(want, ",") {
		t.Errorf("Names() = %v, want %v", names, want)
	}
	for _, tc := range []struct{ spec, want string }{
		{"helo", `apps: unknown app "helo" (did you mean "hello"? known: echo, hello, sim, static:DIR, test-greeter)`},
		{"zzzzzzzzzz", `apps: unknown app "zzzzzzzzzz" (known: echo, hello, sim, static:DIR, test-greeter)`},
		{"", `apps: unknown app "" (known: echo, hello, sim, static:DIR, test-greeter)`},
	} {
		_, err := Load(tc.spec)
		if err == nil || err.Error() != tc.want {
			t.Errorf("Load(%q) err = %v\nwant %s", tc.spec, err, tc.want)
		}
	}
}

func TestRegisterPanics(t *testing.T) {
	for _, tc := range []struct {
		name string
		h    http.Handler
	}{
		{"", Hello()}, {"hello", Hello()}, {"a:b", Hello()}, {"static", Hello()}, {"fine-name", nil},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Register(%q, %v) did not panic", tc.name, tc.h)
				}
			}()
			Register(tc.name, tc.h)
		}()
	}
}

func TestHello(t *testing.T) {
	for _, method := range []string{"GET", "POST", "HEAD"} {
		rec := serve(Hello(), method, "/anything?x=1", nil)
		if rec.Code != 200 || rec.Body.String() != "Hello, World!" ||
			rec.Header().Get("Content-Length") != "13" ||
			rec.Header().Get("Content-Type") != "text/plain; charset=utf-8" {
			t.Errorf("%s: %d %q %v", method, rec.Code, rec.Body, rec.Header())
		}
	}
}

func TestEcho(t *testing.T) {
	for _, tc := range []struct {
		name, method, target, body string
		truncated                  bool
	}{
		{"get", "GET", "/a/b?x=1&y=2", "", false},
		{"post", "POST", "/p", `{"k":"v"}`, false},
		{"big", "PUT", "/", strings.Repeat("z", EchoBodyLimit+10), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.target, strings.NewReader(tc.body))
			req.Header.Set("X-Test", "yes")
			rec := httptest.NewRecorder()
			Echo().ServeHTTP(rec, req)
			if rec.Code != 200 || rec.Header().Get("X-Worker-Pid") != strconv.Itoa(os.Getpid()) {
				t.Fatalf("code %d headers %v", rec.Code, rec.Header())
			}
			if rec.Header().Get("Content-Length") != strconv.Itoa(rec.Body.Len()) {
				t.Errorf("Content-Length %s for %d bytes", rec.Header().Get("Content-Length"), rec.Body.Len())
			}
			var got echoReply
			if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			wantBody := tc.body
			if tc.truncated {
				wantBody = wantBody[:EchoBodyLimit]
			}
			path, query, _ := strings.Cut(tc.target, "?")
			if got.Method != tc.method || got.Path != path || got.Query != query ||
				got.Body != wantBody || got.BodyTruncated != tc.truncated ||
				got.PID != os.Getpid() || got.RemoteAddr != req.RemoteAddr ||
				got.Headers["X-Test"][0] != "yes" || got.Host != "example.com" {
				t.Errorf("reply %+v", got)
			}
		})
	}
}

func TestSim(t *testing.T) {
	for _, tc := range []struct {
		query string
		code  int
		size  int
	}{
		{"", 200, 0},
		{"size=10", 200, 10},
		{"size=100000", 200, 100000}, // several chunks
		{"size=1k", 200, 1024},
		{"size=2KiB", 200, 2048},
		{"cpu=2ms&io=1ms&size=5", 200, 5},
		{"io=3", 200, 0}, // bare integer = ms
		{"status=503&size=3", 503, 3},
		{"status=204", 204, 0},
	} {
		rec := serve(Sim(), "GET", "/?"+tc.query, nil)
		if rec.Code != tc.code || rec.Body.Len() != tc.size ||
			rec.Header().Get("X-Worker-Pid") != pidString {
			t.Errorf("%q: code %d, %d bytes, headers %v", tc.query, rec.Code, rec.Body.Len(), rec.Header())
		}
		if strings.Trim(rec.Body.String(), "x") != "" {
			t.Errorf("%q: body not all 'x'", tc.query)
		}
	}
}

func TestSimValidation(t *testing.T) {
	for _, tc := range []struct{ query, msg string }{
		{"cpu=abc", `sim: cpu="abc": want a duration such as 20ms or 1.5s`},
		{"cpu=-1ms", `sim: cpu="-1ms": want a duration in 0..10m0s`},
		{"io=-5", `sim: io="-5": want a duration in 0..10m0s`},
		{"io=11m", `sim: io="11m": want a duration in 0..10m0s`},
		{"io=99999999999999999", `sim: io="99999999999999999": want a duration in 0..10m0s`},
		{"io=1e400s", `sim: io="1e400s": want a duration such as 20ms or 1.5s`},
		{"size=-1", `sim: size="-1": want a byte count in 0..1073741824 (K, M, G suffixes allowed)`},
		{"size=2G", `sim: size="2G": want a byte count in 0..1073741824 (K, M, G suffixes allowed)`},
		{"size=9223372036854775807k", `sim: size="9223372036854775807k": want a byte count in 0..1073741824 (K, M, G suffixes allowed)`},
		{"size=lots", `sim: size="lots": want a byte count in 0..1073741824 (K, M, G suffixes allowed)`},
		{"size=", `sim: size="": want a byte count in 0..1073741824 (K, M, G suffixes allowed)`},
		{"status=99", `sim: status="99": want an integer in 200..599`},
		{"status=x", `sim: status="x": want an integer in 200..599`},
		{"status=204&size=1", `sim: status 204 allows no body but size=1`},
		{"size=1&size=2", `sim: size given 2 times`},
		{"szie=1", `sim: unknown parameter "szie" (known: cpu, io, size, status)`},
	} {
		rec := serve(Sim(), "GET", "/?"+tc.query, nil)
		if rec.Code != 400 || strings.TrimSpace(rec.Body.String()) != tc.msg {
			t.Errorf("%q: %d %q\nwant 400 %q", tc.query, rec.Code, rec.Body, tc.msg)
		}
	}
}

// TestSimIOCancel: a cancelled request ends the wait at once instead of
// holding the worker for the whole io duration.
func TestSimIOCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	req := httptest.NewRequest("GET", "/?io=10m", nil).WithContext(ctx)
	done := make(chan struct{})
	go func() {
		Sim().ServeHTTP(httptest.NewRecorder(), req)
		close(done)
	}()
	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second): // a deadline, not a timing assertion
		t.Fatal("sim io did not honour context cancellation")
	}
}

// TestSimCPU checks that cpu= burns at least that much thread CPU time.
func TestSimCPU(t *testing.T) {
	if _, ok := threadCPU(); !ok {
		t.Skip("no thread CPU clock")
	}
	start := time.Now()
	burnCPU(20 * time.Millisecond)
	if el := time.Since(start); el < 20*time.Millisecond {
		t.Errorf("burned for %v wall time, less than the CPU asked for", el)
	}
}

func TestStatic(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(root, "a.txt"), []byte("AAA"), 0o644))
	must(os.WriteFile(filepath.Join(root, ".env"), []byte("SECRET"), 0o644))
	must(os.Mkdir(filepath.Join(root, ".git"), 0o755))
	must(os.WriteFile(filepath.Join(root, ".git", "config"), []byte("SECRET"), 0o644))
	must(os.Mkdir(filepath.Join(root, "sub"), 0o755))
	must(os.WriteFile(filepath.Join(root, "sub", "b.txt"), []byte("BBB"), 0o644))
	must(os.WriteFile(filepath.Join(outside, "secret.txt"), []byte("SECRET"), 0o644))
	must(os.Symlink(filepath.Join(outside, "secret.txt"), filepath.Join(root, "escape.txt")))
	must(os.Symlink(outside, filepath.Join(root, "escdir")))
	must(os.Symlink(filepath.Join(root, "a.txt"), filepath.Join(root, "inside.txt")))

	h, err := Load("static:" + root)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		target string
		code   int
		body   string
	}{
		{"/a.txt", 200, "AAA"},
		{"/sub/b.txt", 200, "BBB"},
		{"/inside.txt", 200, "AAA"},
		{"/.env", 404, ""},
		{"/.git/config", 404, ""},
		{"/sub/../.env", 404, ""},
		{"/../" + filepath.Base(outside) + "/secret.txt", 404, ""},
		{"/escape.txt", 404, ""},
		{"/escdir/secret.txt", 404, ""},
		{"/nope", 404, ""},
	} {
		req := httptest.NewRequest("GET", "/", nil)
		req.URL.Path = tc.target // bypass client-side cleaning
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != tc.code || (tc.body != "" && rec.Body.String() != tc.body) {
			t.Errorf("%s: %d %q, want %d %q", tc.target, rec.Code, rec.Body, tc.code, tc.body)
		}
		if strings.Contains(rec.Body.String(), "SECRET") {
			t.Errorf("%s leaked a secret", tc.target)
		}
	}
	list := serve(h, "GET", "/", nil)
	if list.Code != 200 || !strings.Contains(list.Body.String(), "a.txt") ||
		strings.Contains(list.Body.String(), ".env") || strings.Contains(list.Body.String(), ".git") {
		t.Errorf("listing: %d %q", list.Code, list.Body)
	}
}

func TestStaticLoadErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "f")
	os.WriteFile(file, nil, 0o644)
	for _, spec := range []string{"static:", "static:" + file, "static:/no/such/dir"} {
		if _, err := Load(spec); err == nil || !strings.HasPrefix(err.Error(), "apps: static: ") {
			t.Errorf("Load(%q) err = %v", spec, err)
		}
	}
}

func BenchmarkHello(b *testing.B) {
	h := Hello()
	req := httptest.NewRequest("GET", "/", nil)
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	for b.Loop() {
		clear(w.h)
		h.ServeHTTP(w, req)
	}
}

type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(p []byte) (int, error) { return len(p), nil }
func (d *discardWriter) WriteHeader(int)             {}
