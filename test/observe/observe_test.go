// Package observe tests the observability features end to end against
// the real multiserve binary: /metrics against the requests sent per
// class, busy/idle flips, ctl round trips for every verb, the control
// socket refusing another user, and timeout attribution in the log.
package observe

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/multiserve/multiserve/internal/testserver"
	"github.com/multiserve/multiserve/scoreboard"
	"github.com/multiserve/multiserve/stats"
)

var bin string // the multiserve binary, in a directory other users can reach

func TestMain(m *testing.M) { os.Exit(testserver.Main(m, &bin, "./cmd/multiserve")) }

var statsRE = regexp.MustCompile(`msg="stats endpoint listening" addr=tcp://(\S+)`)

// startStats starts a server with a stats endpoint on port 0 and returns
// the endpoint's base URL.
func startStats(t *testing.T, args ...string) (*testserver.Server, string) {
	t.Helper()
	s := testserver.Start(t, bin, append([]string{"-b", "127.0.0.1:0", "--stats-bind", "127.0.0.1:0"}, args...)...)
	m := statsRE.FindStringSubmatch(s.Log())
	if m == nil {
		t.Fatalf("no stats endpoint in the log:\n%s", s.Log())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("server log:\n%s", s.Log())
		}
	})
	return s, "http://" + m[1]
}

func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mf, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return mf
}

// metric is the value of the first sample of name whose labels include
// labels (a histogram gives its sample count); -1 when absent.
func metric(mf map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	f := mf[name]
	if f == nil {
		return -1
	}
next:
	for _, m := range f.Metric {
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range m.Label {
				found = found || (lp.GetName() == labels[i] && lp.GetValue() == labels[i+1])
			}
			if !found {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return -1
}

// waitMetrics scrapes until cond holds or the deadline passes.
func waitMetrics(t *testing.T, base string, what string, cond func(map[string]*dto.MetricFamily) bool) map[string]*dto.MetricFamily {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		mf := scrape(t, base)
		if cond(mf) {
			return mf
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestMetricsCountRequestsPerClass: every class's counters match the
// requests sent (2xx and 4xx separately), and the latency histogram holds
// one sample per request.
func TestMetricsCountRequestsPerClass(t *testing.T) {
	const ok, bad = 25, 5
	for _, class := range []string{"sync", "threaded", "goroutine", "evloop"} {
		t.Run(class, func(t *testing.T) {
			s, base := startStats(t, "-w", "2", "-k", class, "sim")
			for i := 0; i < ok; i++ {
				if code, _ := get(t, s.URL("/sim?size=100")); code != 200 {
					t.Fatalf("status %d", code)
				}
			}
			for i := 0; i < bad; i++ {
				if code, _ := get(t, s.URL("/sim?cpu=bogus")); code != 400 {
					t.Fatalf("bad request got %d", code)
				}
			}
			mf := waitMetrics(t, base, fmt.Sprintf("%d requests", ok+bad), func(mf map[string]*dto.MetricFamily) bool {
				return metric(mf, "multiserve_requests_total", "class", class) == ok+bad
			})
			for _, c := range []struct {
				name   string
				labels []string
				want   float64
			}{
				{"multiserve_responses_total", []string{"class", class, "code", "2xx"}, ok},
				{"multiserve_responses_total", []string{"class", class, "code", "4xx"}, bad},
				{"multiserve_request_duration_seconds", []string{"class", class}, ok + bad},
				{"multiserve_workers", []string{"state", "idle"}, 2},
				{"multiserve_workers_target", nil, 2},
				{"multiserve_up", nil, 1},
				{"multiserve_worker_restarts_total", []string{"reason", "crash"}, 0},
			} {
				if got := metric(mf, c.name, c.labels...); got != c.want {
					t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
				}
			}
			if got := metric(mf, "multiserve_response_bytes_total", "class", class); got < ok*100 {
				t.Errorf("bytes %v < %d", got, ok*100)
			}
			if got := metric(mf, "multiserve_listen_queue_max"); got <= 0 {
				t.Errorf("listen_queue_max %v", got)
			}
		})
	}
}

// TestBusyIdleFlip: one worker is busy while a slow request is in its
// handler (the status page names the request) and idle afterwards.
func TestBusyIdleFlip(t *testing.T) {
	s, base := startStats(t, "-w", "1", "-k", "goroutine", "sim")
	waitMetrics(t, base, "an idle worker", func(mf map[string]*dto.MetricFamily) bool {
		return metric(mf, "multiserve_workers", "state", "idle") == 1
	})
	done := make(chan int, 1)
	go func() {
		resp, err := http.Get(s.URL("/sim?io=2s"))
		if err != nil {
			done <- -1
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	waitMetrics(t, base, "a busy worker", func(mf map[string]*dto.MetricFamily) bool {
		return metric(mf, "multiserve_workers", "state", "busy") == 1 &&
			metric(mf, "multiserve_workers", "state", "idle") == 0 &&
			metric(mf, "multiserve_saturation") == 1 && metric(mf, "multiserve_requests_in_flight") == 1
	})
	if _, page := get(t, base+"/"); !strings.Contains(page, "/sim?io=2s") || !strings.Contains(page, "handling") {
		t.Errorf("status page does not show the request in flight:\n%s", page)
	}
	if code := <-done; code != 200 {
		t.Fatalf("slow request: %d", code)
	}
	waitMetrics(t, base, "the worker idle again", func(mf map[string]*dto.MetricFamily) bool {
		return metric(mf, "multiserve_workers", "state", "idle") == 1 && metric(mf, "multiserve_workers", "state", "busy") == 0
	})
	if code, _ := get(t, base+"/healthz"); code != 200 {
		t.Errorf("/healthz %d", code)
	}
	if code, _ := get(t, base+"/readyz"); code != 200 {
		t.Errorf("/readyz %d", code)
	}
}

// ctl runs `multiserve ctl --socket path args...`.
func ctl(t *testing.T, path string, args ...string) (string, error) {
	t.Helper()
	out, err := exec.Command(bin, append([]string{"ctl", "--socket", path}, args...)...).CombinedOutput()
	return string(out), err
}

func mustCtl(t *testing.T, path string, args ...string) string {
	t.Helper()
	out, err := ctl(t, path, args...)
	if err != nil {
		t.Fatalf("ctl %v: %v\n%s", args, err, out)
	}
	return out
}

// waitWorkers polls `ctl show workers` until n non-retiring ready workers
// of generation gen are listed.
func waitWorkers(t *testing.T, path string, n, gen int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		out := mustCtl(t, path, "--json", "show", "workers")
		if c := strings.Count(out, `"generation": `+strconv.Itoa(gen)+",") - strings.Count(out, `"retiring": true`); c == n && !strings.Contains(out, `"ready": false`) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("want %d workers of generation %d:\n%s", n, gen, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestCtlVerbs: every verb against a running server.
func TestCtlVerbs(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "ctl.sock")
	logf := filepath.Join(dir, "access.log")
	s := testserver.Start(t, bin, "-b", "127.0.0.1:0", "-w", "2", "-k", "goroutine", "--control-socket", sock,
		"--access-logfile", logf, "hello")
	if st, err := os.Stat(sock); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("control socket: %v %v", st, err)
	}
	get(t, s.URL("/"))

	if out := mustCtl(t, sock, "show", "workers"); strings.Count(out, "goroutine") != 2 || !strings.Contains(out, "STATE") {
		t.Errorf("show workers:\n%s", out)
	}
	if out := mustCtl(t, sock, "show", "stats"); !strings.Contains(out, "class goroutine, target 2") || !strings.Contains(out, "goroutine: 1 requests") {
		t.Errorf("show stats:\n%s", out)
	}
	if out := mustCtl(t, sock, "--json", "show", "config"); !strings.Contains(out, `"workers": 2`) || !strings.Contains(out, `"control_socket": "`+sock) {
		t.Errorf("show config:\n%s", out)
	}
	if out := mustCtl(t, sock, "worker", "add", "2"); !strings.Contains(out, "target: 4") {
		t.Errorf("worker add:\n%s", out)
	}
	waitWorkers(t, sock, 4, 1)
	if out := mustCtl(t, sock, "--json", "worker", "remove", "3"); !strings.Contains(out, `"target": 1`) {
		t.Errorf("worker remove:\n%s", out)
	}
	waitWorkers(t, sock, 1, 1)

	// reopen: the access log moved aside is recreated (logrotate).
	if err := os.Rename(logf, logf+".1"); err != nil {
		t.Fatal(err)
	}
	if out := mustCtl(t, sock, "reopen"); !strings.Contains(out, "reopened") {
		t.Errorf("reopen:\n%s", out)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		get(t, s.URL("/after-reopen"))
		if b, err := os.ReadFile(logf); err == nil && strings.Contains(string(b), "/after-reopen") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("access log not reopened")
		}
		time.Sleep(50 * time.Millisecond)
	}

	if out := mustCtl(t, sock, "reload"); !strings.Contains(out, "reloading") {
		t.Errorf("reload:\n%s", out)
	}
	// The reload re-reads the configuration: the command line says 2.
	waitWorkers(t, sock, 2, 2)

	if out, err := ctl(t, sock, "frob"); err == nil || !strings.Contains(out, "unknown command") {
		t.Errorf("unknown verb: %v\n%s", err, out)
	}
	if out := mustCtl(t, sock, "shutdown"); !strings.Contains(out, "shutting down") {
		t.Errorf("shutdown:\n%s", out)
	}
	if code, err := s.Wait(30 * time.Second); err != nil || code != 0 {
		t.Fatalf("after shutdown: code %d, %v\n%s", code, err, s.Log())
	}
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("control socket left behind: %v", err)
	}
}

// TestCtlRefusesOtherUser: the client run as nobody gets nothing done.
func TestCtlRefusesOtherUser(t *testing.T) {
	uid, gid := testserver.Nobody(t)
	dir, err := os.MkdirTemp("", "observe-ctl-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	sock := filepath.Join(dir, "ctl.sock")
	s := testserver.Start(t, bin, "-b", "127.0.0.1:0", "-w", "1", "--control-socket", sock, "hello")
	cmd := exec.Command(bin, "ctl", "--socket", sock, "shutdown")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "permission denied") {
		t.Fatalf("ctl as nobody: %v\n%s", err, out)
	}
	select {
	case <-s.Done():
		t.Fatal("the arbiter obeyed another user")
	case <-time.After(200 * time.Millisecond):
	}
	if out := mustCtl(t, sock, "show", "workers"); !strings.Contains(out, "PID") {
		t.Fatalf("root client: %s", out)
	}
}

// TestTimeoutNamesRequest: a sync worker hung in a handler is killed on
// timeout and the arbiter's log names the request it was serving.
func TestTimeoutNamesRequest(t *testing.T) {
	s, base := startStats(t, "-w", "1", "-k", "sync", "--timeout", "1", "--graceful-timeout", "1", "sim")
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		resp, err := http.Get(s.URL("/sim?io=60s&status=299"))
		if err == nil {
			resp.Body.Close()
		}
	}()
	t.Cleanup(wg.Wait)
	re := regexp.MustCompile(`worker \d+ timed out: was serving GET /sim\?io=60s&status=299 from 127\.0\.0\.1:\d+, started \S+ ago`)
	deadline := time.Now().Add(30 * time.Second)
	for !re.MatchString(s.Log()) {
		if time.Now().After(deadline) {
			t.Fatalf("no timeout attribution in the log:\n%s", s.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	waitMetrics(t, base, "a timeout restart", func(mf map[string]*dto.MetricFamily) bool {
		return metric(mf, "multiserve_worker_restarts_total", "reason", "timeout") == 1
	})
}

// TestStatsBindTakenKeepsServing: an endpoint that cannot listen is logged
// and retried; the server serves meanwhile, and the endpoint comes up once
// its port is free (as after a binary upgrade, when the old arbiter exits).
func TestStatsBindTakenKeepsServing(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	s := testserver.Start(t, bin, "-b", "127.0.0.1:0", "-w", "1", "--stats-bind", addr, "hello")
	if code, _ := get(t, s.URL("/")); code != 200 {
		t.Fatalf("status %d", code)
	}
	if !strings.Contains(s.Log(), `msg="stats endpoint not listening, retrying every 2s"`) {
		t.Fatalf("no error logged:\n%s", s.Log())
	}
	ln.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if resp, err := http.Get("http://" + addr + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("stats endpoint never came up:\n%s", s.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestConnectionsAndStates: each class reports its open connections and
// the reading / keep-alive states (/status), and the connections gauge in
// /metrics (multiserve_connections{class}) equals the connections held
// open: two kept-alive connections held idle show keep-alive, a partial
// request head shows reading. The sync class closes after every response:
// only reading. net/http does not show a partial head: the goroutine class
// with it reports connections only (the state stays keep-alive).
func TestConnectionsAndStates(t *testing.T) {
	for _, tc := range []struct {
		name, class string
		args        []string
	}{
		{"sync", "sync", nil},
		{"threaded", "threaded", nil},
		{"evloop", "evloop", nil},
		{"goroutine", "goroutine", nil},
		{"goroutine-nethttp", "goroutine", []string{"--http-engine", "net/http"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, base := startStats(t, append([]string{"-w", "1", "-k", tc.class}, append(tc.args, "sim")...)...)
			waitConnGauge(t, base, tc.class, 0)
			open := 0
			if tc.name != "sync" {
				for range 2 {
					c := dialHold(t, s.Addr)
					if _, err := io.WriteString(c, "GET /sim HTTP/1.1\r\nHost: h\r\n\r\n"); err != nil {
						t.Fatal(err)
					}
					resp, err := http.ReadResponse(bufio.NewReader(c), nil)
					if err != nil {
						t.Fatal(err)
					}
					resp.Body.Close()
				}
				open = 2
				waitWorkerState(t, base, "keep-alive", open)
				waitConnGauge(t, base, tc.class, open)
			}
			c := dialHold(t, s.Addr)
			if _, err := io.WriteString(c, "GET /sim HTTP/1.1\r\nHo"); err != nil {
				t.Fatal(err)
			}
			want := "reading"
			if tc.name == "goroutine-nethttp" {
				want = "keep-alive"
			}
			waitWorkerState(t, base, want, open+1)
			waitConnGauge(t, base, tc.class, open+1)
		})
	}
}

// waitConnGauge scrapes /metrics until multiserve_connections{class} is n.
func waitConnGauge(t *testing.T, base, class string, n int) {
	t.Helper()
	waitMetrics(t, base, fmt.Sprintf("multiserve_connections{class=%q} = %d", class, n), func(mf map[string]*dto.MetricFamily) bool {
		return metric(mf, "multiserve_connections", "class", class) == float64(n)
	})
}

// dialHold opens a connection closed at the end of the test.
func dialHold(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	return c
}

// waitWorkerState polls /status until the only worker shows state and
// conns open connections.
func waitWorkerState(t *testing.T, base, state string, conns int) {
	t.Helper()
	var last string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		_, body := get(t, base+"/status")
		var st struct {
			Workers []struct {
				State       string `json:"state"`
				Connections int    `json:"connections"`
			} `json:"workers"`
		}
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Fatalf("/status: %v", err)
		}
		if len(st.Workers) == 1 && st.Workers[0].State == state && st.Workers[0].Connections == conns {
			return
		}
		last = body
	}
	t.Fatalf("want one worker %s with %d connections, last /status:\n%s", state, conns, last)
}

// TestAutoRoutesOnStatus: an auto worker's route table reaches /status,
// the page and /metrics through its scoreboard slot: a fast route is
// promoted inline, a waiting one stays pooled.
func TestAutoRoutesOnStatus(t *testing.T) {
	s, base := startStats(t, "-w", "1", "-k", "auto", "--auto-samples", "3", "sim")
	for range 5 {
		if code, _ := get(t, s.URL("/fast?size=10")); code != 200 {
			t.Fatalf("status %d", code)
		}
	}
	for range 3 {
		if code, _ := get(t, s.URL("/db?io=30ms")); code != 200 {
			t.Fatalf("status %d", code)
		}
	}
	var routes map[string]scoreboard.Route
	deadline := time.Now().Add(15 * time.Second)
	for {
		_, body := get(t, base+"/status")
		var st stats.Status
		if err := json.Unmarshal([]byte(body), &st); err != nil {
			t.Fatalf("/status: %v: %s", err, body)
		}
		routes = map[string]scoreboard.Route{}
		for _, w := range st.Workers {
			for _, r := range w.Routes {
				routes[r.Route] = r
			}
		}
		if routes["GET /fast"].Samples >= 5 && routes["GET /db"].Samples >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("routes on /status: %+v", routes)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if f, d := routes["GET /fast"], routes["GET /db"]; f.Placement != "inline" || f.Promotions != 1 || d.Placement != "pooled" || d.Mean < 30*time.Millisecond {
		t.Fatalf("GET /fast %+v, GET /db %+v: want inline after 1 promotion, and pooled at >= 30ms", f, d)
	}
	if _, page := get(t, base+"/"); !strings.Contains(page, "<b>inline</b> GET /fast") {
		t.Fatalf("the page lacks the route table:\n%s", page)
	}
	if got := metric(scrape(t, base), "multiserve_route_promotions_total", "class", "auto"); got != 1 {
		t.Fatalf("multiserve_route_promotions_total{class=auto} = %v, want 1", got)
	}
}
