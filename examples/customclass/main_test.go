package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/multiserve/multiserve/examples/customclass/perconn"
	"github.com/multiserve/multiserve/internal/testserver"
	"github.com/multiserve/multiserve/stats"
)

var bin string

func TestMain(m *testing.M) { os.Exit(testserver.Main(m, &bin, "./examples/customclass")) }

// TestHelpAndCheckConfig: the class linked in by one blank import is a
// worker_class choice in --help and passes --check-config; a misspelling
// gets a did-you-mean naming it.
func TestHelpAndCheckConfig(t *testing.T) {
	out, err := exec.Command(bin, "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), perconn.Name) {
		t.Errorf("--help: %v, lacks %s:\n%s", err, perconn.Name, out)
	}
	out, err = exec.Command(bin, "--check-config", "-k", perconn.Name, "hello").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "configuration OK") {
		t.Errorf("--check-config -k %s: %v\n%s", perconn.Name, err, out)
	}
	out, err = exec.Command(bin, "--check-config", "-k", "perconm", "hello").CombinedOutput()
	if err == nil || !strings.Contains(string(out), `did you mean "perconn"?`) {
		t.Errorf("--check-config -k perconm: %v\n%s", err, out)
	}
}

// TestServesAndReports: the banner names the class and gives its
// concurrency sentence, it serves, and the status page and /status count
// its requests under its name.
func TestServesAndReports(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "stats.sock")
	s := testserver.Start(t, bin, "-b", "127.0.0.1:0", "-w", "2", "-k", perconn.Name, "--stats-bind", "unix:"+sock, "hello")
	for _, want := range []string{"using worker class: " + perconn.Name, "2 workers, an OS thread per connection"} {
		if !strings.Contains(s.Log(), want) {
			t.Errorf("banner lacks %q:\n%s", want, s.Log())
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for range 3 {
		resp, body, err := s.Get(ctx, "/")
		if err != nil || resp.StatusCode != 200 || len(body) == 0 {
			t.Fatalf("GET /: %v %v %q", err, resp, body)
		}
	}
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	var st stats.Status
	deadline := time.Now().Add(20 * time.Second)
	for st.Classes[perconn.Name].Requests < 3 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		if b := get(t, c, "/status"); b != nil {
			st = stats.Status{}
			if err := json.Unmarshal(b, &st); err != nil {
				t.Fatalf("/status: %v\n%s", err, b)
			}
		}
	}
	if st.Classes[perconn.Name].Requests < 3 {
		t.Fatalf("/status does not count 3 %s requests: %+v", perconn.Name, st.Classes)
	}
	if page := get(t, c, "/"); !strings.Contains(string(page), perconn.Name) {
		t.Errorf("status page lacks %s:\n%s", perconn.Name, page)
	}
}

func get(t *testing.T, c *http.Client, path string) []byte {
	t.Helper()
	resp, err := c.Get("http://stats" + path)
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return b
}
