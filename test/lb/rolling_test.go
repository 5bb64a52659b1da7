//go:build lb

package lb

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/multiserve/multiserve/internal/rawload"
	"github.com/multiserve/multiserve/internal/testserver"
	"github.com/multiserve/multiserve/internal/testwait"
)

// The instances' stop timing: shutdown_delay is the window in which the
// load balancer must stop sending (here: nginx reloaded without the
// instance), so it is several reloads long on a loaded machine.
const (
	shutdownDelay   = 3 * time.Second
	gracefulTimeout = 10 * time.Second
)

// instance is one multiserve server behind nginx.
type instance struct {
	name, version string
	srv           *testserver.Server
	stats         string // host:port of the stats endpoint
}

func (in *instance) label() string { return in.name + "@" + in.version }

var statsRE = regexp.MustCompile(`msg="stats endpoint listening" addr=tcp://(\S+)`)

func startInstance(t *testing.T, bin, name, version string) *instance {
	t.Helper()
	s := testserver.Start(t, bin, "--bind", "127.0.0.1:0", "--stats-bind", "127.0.0.1:0",
		"--workers", "2", "--worker-class", "goroutine",
		"--shutdown-delay", shutdownDelay.String(), "--graceful-timeout", gracefulTimeout.String(), "hello")
	m := statsRE.FindStringSubmatch(s.Log())
	if m == nil {
		t.Fatalf("instance %s: no stats endpoint in the log:\n%s", name, s.Log())
	}
	if !strings.Contains(s.Log(), "multiserve "+version+" starting") {
		t.Fatalf("instance %s: not version %s:\n%s", name, version, s.Log())
	}
	return &instance{name: name, version: version, srv: s, stats: m[1]}
}

// readyz is the status of the instance's /readyz.
func (in *instance) readyz() int {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+in.stats+"/readyz", nil)
	req.Close = true
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

func addrs(ins []*instance) []string {
	out := make([]string, len(ins))
	for i, in := range ins {
		out[i] = in.srv.Addr
	}
	return out
}

// TestRollingDeploy: three instances behind nginx under a load that
// retries nothing (GETs and POSTs with bodies); each in turn is stopped
// the way an orchestrator does it (TERM; its /readyz fails; nginx is
// reloaded without it while shutdown_delay keeps it serving) and replaced
// by an instance of a new binary. nginx must answer every request 2xx.
//
// The client opens a connection per request: a kept-alive client
// connection to nginx can meet nginx's own reload closing it when idle,
// which is nginx's loss to measure, not the backends'. Between nginx and
// the instances connections are kept alive (keepalive 32).
func TestRollingDeploy(t *testing.T) {
	if _, err := Find(); err != nil {
		t.Skipf("skipping: %v", err)
	}
	dir := t.TempDir()
	v1, v2 := filepath.Join(dir, "multiserve-v1"), filepath.Join(dir, "multiserve-v2")
	for bin, v := range map[string]string{v1: "rolling-v1", v2: "rolling-v2"} {
		if err := testserver.BuildStatic(bin, v); err != nil {
			t.Fatal(err)
		}
	}
	var live []*instance
	for _, name := range []string{"a", "b", "c"} {
		live = append(live, startInstance(t, v1, name, "rolling-v1"))
	}
	labels := map[string]string{}
	for _, in := range live {
		labels[in.srv.Addr] = in.label()
	}
	n := Start(t, addrs(live)...)
	load := rawload.Start(rawload.Options{Addr: n.Addr, Clients: 8, PostEvery: 2, BodySize: 2048})
	defer load.Stop()
	begin := time.Now()
	time.Sleep(time.Second)

	for i := range live {
		old := live[i]
		step := time.Now()
		if err := old.srv.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		testwait.Until(t, waitLimit, old.name+" /readyz 503", func() bool { return old.readyz() == http.StatusServiceUnavailable })
		rest := append(append([]*instance(nil), live[:i]...), live[i+1:]...)
		if err := n.SetUpstreams(addrs(rest)...); err != nil {
			t.Fatal(err)
		}
		removed := time.Since(step)
		if removed > shutdownDelay {
			t.Errorf("%s: nginx reload took %v, more than shutdown_delay %v", old.name, removed, shutdownDelay)
		}
		code, err := old.srv.Wait(shutdownDelay + gracefulTimeout + 20*time.Second)
		if err != nil || code != 0 {
			t.Fatalf("%s after TERM: exit %d %v\n%s", old.label(), code, err, old.srv.Log())
		}
		stopped := time.Since(step)
		next := startInstance(t, v2, old.name, "rolling-v2")
		labels[next.srv.Addr] = next.label()
		testwait.Until(t, waitLimit, next.name+" /readyz 200", func() bool { return next.readyz() == http.StatusOK })
		live[i] = next
		if err := n.SetUpstreams(addrs(live)...); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s -> %s: out of nginx %v after TERM, exited at %v, replacement serving at %v",
			old.label(), next.label(), removed.Round(time.Millisecond), stopped.Round(time.Millisecond),
			time.Since(step).Round(time.Millisecond))
	}
	time.Sleep(time.Second)
	load.Stop()
	t.Logf("load through nginx in %v: %s", time.Since(begin).Round(time.Millisecond), load)
	load.WantNoLoss(t, true)
	if load.OK.Load() == 0 || load.Posts.Load() == 0 {
		t.Errorf("no load served: %s", load)
	}
	checkAccessLog(t, n, labels, begin)
}

// checkAccessLog prints requests served per instance per second and fails
// on any non-2xx answer or request nginx had to retry on another instance.
func checkAccessLog(t *testing.T, n *Nginx, labels map[string]string, begin time.Time) {
	t.Helper()
	var log []Entry
	var err error
	// nginx writes a request's line after its response.
	want := 0
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if log, err = n.AccessLog(); err != nil {
			t.Fatal(err)
		}
		if len(log) == want {
			break
		}
		want = len(log)
	}
	perSec := map[int]map[string]int{}
	last := 0
	for _, e := range log {
		if e.Status/100 != 2 {
			t.Errorf("nginx answered %+v", e)
		}
		if strings.Contains(e.Upstream, ",") {
			t.Errorf("nginx retried a request on another instance: %+v", e)
		}
		sec := int(e.Time.Sub(begin) / time.Second)
		if perSec[sec] == nil {
			perSec[sec] = map[string]int{}
		}
		perSec[sec][labels[e.Upstream]]++
		last = max(last, sec)
	}
	names := make([]string, 0, len(labels))
	for _, l := range labels {
		names = append(names, l)
	}
	sort.Strings(names)
	var b strings.Builder
	fmt.Fprintf(&b, "requests served per instance per second (%d logged):\n  s  %s\n", len(log), strings.Join(names, " "))
	for s := 0; s <= last; s++ {
		fmt.Fprintf(&b, "%3d ", s)
		for _, l := range names {
			fmt.Fprintf(&b, " %*d", len(l), perSec[s][l])
		}
		b.WriteString("\n")
	}
	t.Log(b.String())
	if strings.Contains(n.ErrorLog(), "[error]") {
		t.Errorf("nginx logged errors:\n%s", grepLines(n.ErrorLog(), "[error]"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// waitLimit is how long a test waits for a rolling step.
const waitLimit = 30 * time.Second
