package h1_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// A handler that answers without reading a body too large to drain closes
// the connection with the body's rest unread: the client must still get
// the whole response, not a reset that destroys it (lingering close).
func TestCloseWithUnreadBodyKeepsResponse(t *testing.T) {
	payload := strings.Repeat("r", 256<<10)
	addr, _ := testServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, payload)
	}), nil)
	for i := range 5 {
		c := dialRaw(t, addr)
		body := bytes.Repeat([]byte("b"), 4<<20)
		go func() {
			fmt.Fprintf(c.c, "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n", len(body))
			c.c.Write(body) // fails once the server closed: expected
		}()
		resp, got, err := c.read("POST")
		if err != nil || resp.StatusCode != 200 || len(got) != len(payload) {
			t.Fatalf("round %d: status %d, %d of %d bytes: %v", i, resp.StatusCode, len(got), len(payload), err)
		}
	}
}
