package accesslog

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// fixture returns a request and a recorded entry with known values.
func fixture() (*http.Request, *entry) {
	r := httptest.NewRequest("GET", "/p/a%20b?x=1&y=2", nil)
	r.RemoteAddr = "192.0.2.1:5555"
	r.Header.Set("Referer", "http://ref.example/")
	r.Header.Set("User-Agent", "curl/8.0")
	r.Header.Set("X-Real-Ip", "10.1.2.3")
	r.SetBasicAuth("alice", "pw")
	e := &entry{
		start:  time.Date(2000, 10, 10, 13, 55, 36, 123e6, time.FixedZone("", -7*3600)),
		dur:    1234567 * time.Microsecond,
		status: 201,
		bytes:  42,
		header: http.Header{"X-Out": {"v1"}},
		queue:  2500 * time.Microsecond,
		rid:    "rid-1",
	}
	return r, e
}

func line(t *testing.T, format string, r *http.Request, e *entry) string {
	t.Helper()
	var buf bytes.Buffer
	l, err := New(&buf, format)
	if err != nil {
		t.Fatalf("New(%q): %v", format, err)
	}
	l.write(r, e)
	out := buf.String()
	if !strings.HasSuffix(out, "\n") || strings.Count(out, "\n") != 1 {
		t.Fatalf("not one line: %q", out)
	}
	return strings.TrimSuffix(out, "\n")
}

func TestAtoms(t *testing.T) {
	t.Setenv("ACCESSLOG_TEST_VAR", "from-env")
	pid := strconv.Itoa(os.Getpid())
	for _, tc := range []struct{ format, want string }{
		{"%(h)s", "192.0.2.1"},
		{"%(l)s", "-"},
		{"%(u)s", "alice"},
		{"%(t)s", "[10/Oct/2000:13:55:36 -0700]"},
		{"%(r)s", "GET /p/a%20b?x=1&y=2 HTTP/1.1"},
		{"%(m)s", "GET"},
		{"%(U)s", "/p/a b"},
		{"%(q)s", "x=1&y=2"},
		{"%(H)s", "HTTP/1.1"},
		{"%(s)s", "201"},
		{"%(B)s", "42"},
		{"%(b)s", "42"},
		{"%(f)s", "http://ref.example/"},
		{"%(a)s", "curl/8.0"},
		{"%(T)s", "1"},
		{"%(D)s", "1234567"},
		{"%(M)s", "1234"},
		{"%(L)s", "1.234567"},
		{"%(p)s", "<" + pid + ">"},
		{"%({x-real-ip}i)s", "10.1.2.3"},
		{"%({X-Missing}i)s", "-"},
		{"%({x-out}o)s", "v1"},
		{"%({X-Nope}o)s", "-"},
		{"%({ACCESSLOG_TEST_VAR}e)s", "from-env"},
		{"%({ACCESSLOG_UNSET_VAR}e)s", "-"},
		{"%({REMOTE_PORT}e)s %({REMOTE_ADDR}e)s", "5555 192.0.2.1"},
		{"%({RAW_URI}e)s %({HTTP_USER_AGENT}e)s", "/p/a%20b?x=1&y=2 curl/8.0"},
		{"%(s)d", "201"},
		{"100%% %(s)s% done %s", "100% 201% done %s"},
		{"", `192.0.2.1 - alice [10/Oct/2000:13:55:36 -0700] "GET /p/a%20b?x=1&y=2 HTTP/1.1" 201 42 "http://ref.example/" "curl/8.0"`},
	} {
		r, e := fixture()
		if got := line(t, tc.format, r, e); got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.format, got, tc.want)
		}
	}
}

func TestAtomEdgeValues(t *testing.T) {
	r, e := fixture()
	r.Header.Del("Authorization")
	r.Header.Del("Referer")
	r.RemoteAddr = "[::1]:8080"
	e.bytes, e.dur = 0, 5*time.Microsecond
	got := line(t, "%(u)s %(f)s %(h)s %(b)s %(B)s %(L)s %(T)s", r, e)
	if want := "- - ::1 - 0 0.000005 0"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	r.RemoteAddr = "@" // unix socket peer
	if got := line(t, "%(h)s %({REMOTE_PORT}e)s", r, e); got != "@ -" {
		t.Errorf("unix peer: %q", got)
	}
}

func TestEscaping(t *testing.T) {
	r, e := fixture()
	r.Header.Set("User-Agent", "evil\"\n127.0.0.1 - - fake\x1b[31m\\é")
	got := line(t, `"%(a)s"`, r, e)
	want := `"evil\"\x0a127.0.0.1 - - fake\x1b[31m\\\xc3\xa9"`
	if got != want {
		t.Errorf("got %s\nwant %s", got, want)
	}
}

func TestFormatErrors(t *testing.T) {
	for _, tc := range []struct{ format, want string }{
		{"%(h)s %(x)s", `accesslog: unknown atom %(x)s (known: h l u t r m U q H s B b f a T D M L p Q rid {Header}i {Header}o {VAR}e) (at byte 6 of format "%(h)s %(x)s")`},
		{"%({X}z)s", `accesslog: unknown atom %({X}z)s (known: h l u t r m U q H s B b f a T D M L p Q rid {Header}i {Header}o {VAR}e) (at byte 0 of format "%({X}z)s")`},
		{"%(h", `accesslog: unterminated atom %(h (at byte 0 of format "%(h")`},
		{"%(h)x", `accesslog: atom %(h) must be followed by s, as in %(h)s (at byte 0 of format "%(h)x")`},
		{"%(h)", `accesslog: atom %(h) must be followed by s, as in %(h)s (at byte 0 of format "%(h)")`},
	} {
		_, err := New(&bytes.Buffer{}, tc.format)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%q: err = %v\nwant %s", tc.format, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: error is not one line", tc.format)
		}
	}
}

func TestJSON(t *testing.T) {
	r, e := fixture()
	r.Header.Set("User-Agent", "a\"b\n\xff\u2028")
	got := line(t, JSONFormat, r, e)
	var m map[string]any
	if err := json.Unmarshal([]byte(got), &m); err != nil {
		t.Fatalf("invalid JSON %s: %v", got, err)
	}
	want := map[string]any{
		"time": "2000-10-10T13:55:36.123-07:00", "remote_addr": "192.0.2.1", "method": "GET",
		"uri": "/p/a%20b?x=1&y=2", "path": "/p/a b", "query": "x=1&y=2", "proto": "HTTP/1.1",
		"status": 201.0, "bytes": 42.0, "duration_us": 1234567.0, "referer": "http://ref.example/",
		"user_agent": "a\"b\n\ufffd\u2028", "pid": float64(os.Getpid()),
		"request_id": "rid-1", "queue_us": 2500.0,
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("%s = %#v, want %#v", k, m[k], v)
		}
	}
	if len(m) != len(want) {
		t.Errorf("keys %v", m)
	}
	if strings.Contains(got, "\u2028") {
		t.Errorf("raw U+2028 in %s", got)
	}
}

func BenchmarkLine(b *testing.B) {
	for _, bc := range []struct{ name, format string }{
		{"default", DefaultFormat},
		{"timed", `%(h)s %(t)s "%(r)s" %(s)s %(b)s %(D)s %(a)s`},
		{"headers", `%({X-Real-Ip}i)s %({X-Out}o)s %(L)s %(p)s %(U)s %(q)s`},
		{"json", JSONFormat},
	} {
		b.Run(bc.name, func(b *testing.B) {
			r, e := fixture()
			r.Header.Del("Authorization") // u decodes base64: one allocation when present
			e.start = time.Now()
			l, err := New(discard{}, bc.format)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				l.write(r, e)
			}
		})
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
