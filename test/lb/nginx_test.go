package lb

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/multiserve/multiserve/internal/testserver"
)

// named is an upstream that answers its own name.
func named(t *testing.T, name string) *httptest.Server {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		_, _ = io.WriteString(w, name)
	}))
	t.Cleanup(s.Close)
	return s
}

func get(t *testing.T, n *Nginx, method string) string {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+n.Addr+"/x", strings.NewReader("body"))
	if err != nil {
		t.Fatal(err)
	}
	req.Close = true
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s through nginx: %v", method, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("%s through nginx: %d %q %v\nerror.log:\n%s", method, resp.StatusCode, b, err, n.ErrorLog())
	}
	return string(b)
}

// TestNginxHarness: requests reach the upstream, a reload switches the
// upstream list (and waits out the old worker), the access log names the
// upstream, and stopping leaves no process behind.
func TestNginxHarness(t *testing.T) {
	a, b := named(t, "a"), named(t, "b")
	n := Start(t, a.Listener.Addr().String())
	if got := get(t, n, http.MethodPost); got != "a" {
		t.Fatalf("answered by %q, want a", got)
	}
	master := n.cmd.Process.Pid
	old := testserver.Children(master)
	if len(old) != 1 {
		t.Fatalf("nginx workers %v, want 1", old)
	}
	if err := n.SetUpstreams(b.Listener.Addr().String()); err != nil {
		t.Fatal(err)
	}
	if syscall.Kill(old[0], 0) == nil && testserver.PPid(old[0]) == master {
		t.Fatalf("old worker %d still running after the reload", old[0])
	}
	for range 3 {
		if got := get(t, n, http.MethodGet); got != "b" {
			t.Fatalf("after reload answered by %q, want b", got)
		}
	}
	if err := n.SetUpstreams(); err == nil {
		t.Fatal("an empty upstream list was accepted")
	}
	// nginx writes a request's log line after its response.
	var log []Entry
	for deadline := time.Now().Add(10 * time.Second); len(log) < 4 && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var err error
		if log, err = n.AccessLog(); err != nil {
			t.Fatal(err)
		}
	}
	var byUp = map[string]int{}
	for _, e := range log {
		if e.Status != 200 {
			t.Errorf("logged %+v", e)
		}
		byUp[e.Upstream]++
	}
	if byUp[a.Listener.Addr().String()] != 1 || byUp[b.Listener.Addr().String()] != 3 {
		t.Errorf("access log by upstream %v, want a 1 and b 3", byUp)
	}
	if err := n.Stop(); err != nil {
		t.Fatal(err)
	}
	if kids := testserver.Children(master); len(kids) != 0 {
		t.Errorf("nginx processes left: %v", kids)
	}
	if _, err := os.Stat(filepath.Join(n.dir, "nginx.pid")); err == nil {
		t.Error("pid file left")
	}
	if err := n.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}
