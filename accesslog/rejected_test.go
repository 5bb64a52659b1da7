package accesslog

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestRejected: a refused request's line has the peer, the status and
// the request line as sent, escaped and cut at its end; a flood is cut to
// rejectBurst lines per window and the next line says how many were not
// written.
func TestRejected(t *testing.T) {
	var buf bytes.Buffer
	l, err := New(&buf, `%(h)s "%(r)s" %(s)s %({x-rejected-dropped}o)s`)
	if err != nil {
		t.Fatal(err)
	}
	l.Rejected("10.0.0.7:5555", 400, []byte("GET /a\x01\"b HTTP/1.1\r\nHost: x\r\n"))
	l.Rejected("10.0.0.7:5556", 431, nil)
	want := "10.0.0.7 \"GET /a\\x01\\\"b HTTP/1.1\" 400 -\n10.0.0.7 \"- - -\" 431 -\n"
	if got := buf.String(); got != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	buf.Reset()
	for range 3 * rejectBurst {
		l.Rejected("10.0.0.7:1", 414, bytes.Repeat([]byte("x"), 10000))
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) > rejectBurst || len(lines[0]) > headMax+40 {
		t.Fatalf("%d lines (want at most %d), first %d bytes", len(lines), rejectBurst, len(lines[0]))
	}
	buf.Reset()
	l.rejects.window = time.Now().Add(-2 * rejectWindow) // the next window
	l.Rejected("10.0.0.7:1", 400, []byte("BAD"))
	if got := buf.String(); !strings.HasSuffix(got, " 400 "+strconv.Itoa(3*rejectBurst-len(lines))+"\n") {
		t.Fatalf("line after the flood %q does not count the %d dropped", got, 3*rejectBurst-len(lines))
	}
}
