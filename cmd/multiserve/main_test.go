package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/multiserve/multiserve/internal/testserver"
)

// bin is the multiserve binary under test, built once by TestMain.
var bin string

func TestMain(m *testing.M) { os.Exit(testserver.Main(m, &bin, "./cmd/multiserve")) }

// classes is every worker class: each end-to-end test runs against all.
var classes = []string{"sync", "threaded", "evloop", "goroutine", "auto"}

// run executes the binary to completion and returns its exit code and output.
func run(t *testing.T, env []string, args ...string) (int, string) {
	t.Helper()
	s := testserver.Launch(t, bin, env, args...)
	code, err := s.Wait(60 * time.Second)
	if err != nil {
		t.Fatalf("%v\n%s", err, s.Log())
	}
	return code, s.Log()
}

func TestBadInput(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string { return writeFile(t, dir, name, body) }
	unknownKey := write("unknown.toml", "wrokers = 3\n")
	broken := write("broken.toml", "workers = = 3\n")
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()

	for _, tc := range []struct {
		name string
		args []string
		code int
		want []string // substrings of the output
	}{
		{"unknown flag", []string{"--wrokers", "2"}, 2, []string{"wrokers", "workers"}},
		{"unknown class", []string{"-k", "theaded"}, 2, []string{"theaded", "threaded"}},
		{"zero workers", []string{"-w", "0"}, 2, []string{"workers"}},
		{"negative timeout", []string{"-t", "-5s"}, 2, []string{"timeout"}},
		{"bad bind", []string{"-b", "127.0.0.1"}, 2, []string{"bind"}},
		{"unknown config key", []string{"-c", unknownKey}, 2, []string{"wrokers", "workers"}},
		{"broken config file", []string{"-c", broken}, 2, []string{"broken.toml"}},
		{"missing config file", []string{"-c", filepath.Join(dir, "nope.toml")}, 2, []string{"nope.toml"}},
		{"port in use", []string{"-b", taken.Addr().String()}, 1, []string{"address already in use"}},
		{"unknown app", []string{"-b", "127.0.0.1:0", "nosuchapp"}, 4, []string{"nosuchapp"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, out := run(t, nil, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d; output:\n%s", code, tc.code, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Errorf("output lacks %q:\n%s", w, out)
				}
			}
			if tc.code == 2 && strings.Count(strings.TrimSpace(out), "\n") > 0 {
				t.Errorf("usage error should be one line:\n%s", out)
			}
		})
	}
}

func TestPrintAndCheckConfig(t *testing.T) {
	code, out := run(t, []string{"MULTISERVE_WORKERS=3"}, "--print-config", "-k", "threaded")
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	for _, w := range []string{"workers", "3", "env", "worker_class", "threaded", "flag", "default"} {
		if !strings.Contains(out, w) {
			t.Errorf("--print-config lacks %q:\n%s", w, out)
		}
	}
	if code, out := run(t, nil, "--check-config", "echo"); code != 0 {
		t.Errorf("--check-config exit %d:\n%s", code, out)
	}
}

// TestH1Probe runs ../shared/h1probe (gunicorn's request fixtures) against
// every class through the real binary, in the default mode (zero failures)
// and in --strict mode (failures only among strictAllowed). sync closes
// after each response (like gunicorn's sync worker), which RFC 9112 §9.6
// allows for pipelines: --allow-early-close accepts that and nothing else.
func TestH1Probe(t *testing.T) {
	root, err := testserver.ModuleRoot()
	if err != nil {
		t.Fatal(err)
	}
	probe := filepath.Join(root, "..", "shared", "h1probe", "h1probe.py")
	if _, err := os.Stat(probe); err != nil {
		t.Skipf("h1probe not found: %v", err)
	}
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not installed")
	}
	for _, class := range classes {
		t.Run(class, func(t *testing.T) {
			s := testserver.Start(t, bin, "-b", "127.0.0.1:0", "-w", "2", "-k", class, "echo")
			_, port, _ := net.SplitHostPort(s.Addr)
			for _, strict := range []bool{false, true} {
				runH1Probe(t, probe, class, port, strict, s.Log)
			}
		})
	}
}

// strictAllowed are the h1probe cases that --strict judges "invalid" (what
// gunicorn does) while the RFCs let a server accept them, and multiserve
// deliberately accepts. Every other strict failure fails the test.
var strictAllowed = map[string]string{
	// RFC 9110 §9.1 / RFC 9112 §3: a method is any token ("-bl" is one);
	// an unknown method is the application's business (405/501), and the
	// echo app answers every method.
	"gu-invalid-003c_host": "RFC 9110 §9.1: '-bl' is a valid method token",
	// RFC 9110 §5.3: a recipient may combine repeated fields; only fields
	// that frame the message (Content-Length, Host, Transfer-Encoding) must
	// be refused when repeated, and h1 refuses those.
	"gu-invalid-041": "RFC 9110 §5.3: duplicate Content-Type is not a framing field",
	// RFC 9110 §5.4 leaves header size limits to the server. h1's
	// limit_request_field_size (8190) counts the field line without its
	// CRLF and limit_request_fields counts fields, not bytes, so these
	// lines, at most 8190 bytes before CRLF, are within the limits;
	// gunicorn counts the CRLF as well.
	"gu-invalid-008":                     "RFC 9110 §5.4: 8189-byte field line is within limit_request_field_size",
	"gu-invalid-017_host":                "RFC 9110 §5.4: 8189-byte field line is within limit_request_field_size",
	"gu-invalid-limit_header_default_01": "RFC 9110 §5.4: 8190-byte field line is within limit_request_field_size",
	// RFC 9110 §5.1 allows any token as a field name; header_map=drop
	// removes Transfer_Encoding before anything reads it (as nginx does),
	// so framing follows the one real Transfer-Encoding: chunked.
	"gu-invalid-chunked_07_host": "RFC 9110 §5.1: Transfer_Encoding is a distinct (dropped) field name",
	// RFC 9110 §6.5.1: a recipient must not merge forbidden trailer
	// fields into the header section; discarding them (h1 drops them) is
	// the other allowed choice, refusing is not required.
	"gu-invalid-rfc9110_trailer_forbidden_cl_01":   "RFC 9110 §6.5.1: forbidden trailer field dropped, not merged",
	"gu-invalid-rfc9110_trailer_forbidden_host_01": "RFC 9110 §6.5.1: forbidden trailer field dropped, not merged",
	"gu-invalid-rfc9110_trailer_forbidden_te_01":   "RFC 9110 §6.5.1: forbidden trailer field dropped, not merged",
}

// runH1Probe runs one h1probe mode against a running server, logs the
// summary and fails on any failure that mode does not allow.
func runH1Probe(t *testing.T, probe, class, port string, strict bool, serverLog func() string) {
	t.Helper()
	mode, allowed := "default", map[string]string{}
	args := []string{probe, "--host", "127.0.0.1", "--port", port, "--jobs", "4"}
	if strict {
		mode, allowed = "strict", strictAllowed
		args = append(args, "--strict")
	}
	if class == "sync" {
		args = append(args, "--allow-early-close")
	}
	report := filepath.Join(t.TempDir(), "h1probe.json")
	args = append(args, "--allow-fail", strconv.Itoa(len(allowed)), "--json", report)
	out, err := exec.Command("python3", args...).CombinedOutput()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	t.Logf("h1probe %s %s: %s", class, mode, lines[len(lines)-1])
	if err != nil {
		t.Errorf("h1probe %s failed: %v\n%s\nserver log:\n%s", mode, err, out, serverLog())
	}
	var res struct {
		Results []struct {
			ID     string `json:"id"`
			Pass   bool   `json:"pass"`
			Reason string `json:"reason"`
		} `json:"results"`
	}
	data, err := os.ReadFile(report)
	if err == nil {
		err = json.Unmarshal(data, &res)
	}
	if err != nil {
		t.Fatalf("h1probe %s report: %v\n%s", mode, err, out)
	}
	var failed []string
	for _, r := range res.Results {
		if r.Pass {
			continue
		}
		if why, ok := allowed[r.ID]; ok {
			failed = append(failed, r.ID)
			t.Logf("h1probe %s %s: allowed failure %s (%s)", class, mode, r.ID, why)
			continue
		}
		t.Errorf("h1probe %s %s: %s failed: %s", class, mode, r.ID, r.Reason)
	}
	if len(res.Results) == 0 {
		t.Errorf("h1probe %s ran no case:\n%s", mode, out)
	}
}

// TestConcurrencyModel shows each blocking model through the real binary:
// sync with 2 workers runs 3 concurrent 1 s requests in two rounds, threaded
// with 4 threads runs 4 in one. The bounds are one whole round wide on the
// side a busy machine can push (a slow machine makes rounds longer, never
// shorter, so the sync lower bound cannot flake; the threaded upper bound has
// a 1 s margin).
func TestConcurrencyModel(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		clients  int
		min, max time.Duration
	}{
		{"sync 2 workers", []string{"-k", "sync", "-w", "2"}, 3, 2 * time.Second, 0},
		{"threaded 4 threads", []string{"-k", "threaded", "-w", "1", "--threads", "4"}, 4, time.Second, 2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := append([]string{"-b", "127.0.0.1:0", "-t", "30s"}, tc.args...)
			s := testserver.Start(t, bin, append(args, "sim")...)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			start := time.Now()
			errs := make(chan error, tc.clients)
			for range tc.clients {
				go func() {
					resp, _, err := s.Get(ctx, "/?io=1s")
					if err == nil && resp.StatusCode != http.StatusOK {
						err = fmt.Errorf("status %d", resp.StatusCode)
					}
					errs <- err
				}()
			}
			for range tc.clients {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
			took := time.Since(start)
			t.Logf("%d concurrent sim?io=1s took %v", tc.clients, took.Round(time.Millisecond))
			if took < tc.min {
				t.Errorf("took %v, less than %v: more requests ran at once than the model allows", took, tc.min)
			}
			if tc.max > 0 && took >= tc.max {
				t.Errorf("took %v, at least %v: the requests did not run at once", took, tc.max)
			}
		})
	}
}

// writeFile writes body to dir/name and returns the path.
func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
