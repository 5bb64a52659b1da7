package reqmeta

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestQueueTime(t *testing.T) {
	now := time.Unix(1700000000, 0)
	for _, v := range []string{"t=1699999999900000", "1699999999900", "t=1699999999.9"} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set(HeaderRequestStart, v)
		if d := QueueTime(r, now); d < 99*time.Millisecond || d > 101*time.Millisecond {
			t.Errorf("%s: %v", v, d)
		}
	}
	for _, v := range []string{"", "junk", "t=1800000000"} {
		r := httptest.NewRequest("GET", "/", nil)
		if v != "" {
			r.Header.Set(HeaderRequestStart, v)
		}
		if d := QueueTime(r, now); d != 0 {
			t.Errorf("%q: %v, want 0", v, d)
		}
	}
}

func TestRequestID(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set(HeaderRequestID, "abc-123")
	if id := RequestID(r); id != "abc-123" {
		t.Fatalf("honoured: %q", id)
	}
	for _, bad := range []string{"", "has space", strings.Repeat("x", 129), "\x01"} {
		r := httptest.NewRequest("GET", "/", nil)
		if bad != "" {
			r.Header.Set(HeaderRequestID, bad)
		}
		id := RequestID(r)
		if len(id) != 32 || r.Header.Get(HeaderRequestID) != id {
			t.Fatalf("%q: generated %q, header %q", bad, id, r.Header.Get(HeaderRequestID))
		}
	}
	if NewID() == NewID() {
		t.Fatal("ids repeat")
	}
}
