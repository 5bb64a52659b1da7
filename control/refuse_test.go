package control

import (
	"bufio"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRefusalReadableAfterClose: the refusal is readable even when the
// client writes only after the server closed the connection (EPIPE).
func TestRefusalReadableAfterClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ctl.sock")
	s, err := listen(path, &fakeArb{}, nil, slog.New(slog.DiscardHandler), func(uint32) bool { return false })
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n') // the server answers and closes first
	if err != nil || !strings.Contains(line, "permission denied") {
		t.Fatalf("refusal %q, %v", line, err)
	}
	if _, err := Do(path, []string{"reload"}); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("Do: %v", err)
	}
}
