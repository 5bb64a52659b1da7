//go:build lb

package lb

import (
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/multiserve/multiserve/internal/rawload"
	"github.com/multiserve/multiserve/internal/testserver"
	"github.com/multiserve/multiserve/internal/testwait"
)

// TestRetireBehindNginx: two instances of one class behind nginx (upstream
// keep-alive, so every retirement meets pooled connections; a POST that
// reached an instance is never retried), max_requests recycling workers
// all along, under a load that retries nothing. A rolling change that
// leaves nginx's upstreams alone: HUP one instance, USR2-upgrade the
// other (then WINCH and TERM its old arbiter); then the orchestrated one:
// TERM the first (out of nginx during shutdown_delay) and start it again.
// nginx must answer every request 2xx, retry none and log no error.
func TestRetireBehindNginx(t *testing.T) {
	if _, err := Find(); err != nil {
		t.Skipf("skipping: %v", err)
	}
	bin, err := testserver.Build(t.TempDir(), "./cmd/multiserve")
	if err != nil {
		t.Fatal(err)
	}
	for _, class := range []string{"threaded", "evloop", "goroutine"} {
		t.Run(class, func(t *testing.T) { retireBehindNginx(t, bin, class) })
	}
}

var newArbiterRE = regexp.MustCompile(`new_pid=(\d+)`)

func retireBehindNginx(t *testing.T, bin, class string) {
	start := func() *testserver.Server {
		return testserver.Start(t, bin, "--bind", "127.0.0.1:0", "--workers", "2", "--worker-class", class,
			"--max-requests", "300", "--max-requests-jitter", "100",
			"--shutdown-delay", "2s", "--graceful-timeout", "10s", "hello")
	}
	a, b := start(), start()
	labels := map[string]string{a.Addr: "a", b.Addr: "b"}
	n := Start(t, a.Addr, b.Addr)
	// A connection per request on the client side: nginx's own reload
	// (the TERM step) closes its idle client connections, which is
	// nginx's loss, not the instances'.
	load := rawload.Start(rawload.Options{Addr: n.Addr, Clients: 8, PostEvery: 2, BodySize: 2048})
	defer load.Stop()
	begin := time.Now()
	progress := func(what string) {
		t.Helper()
		k := load.OK.Load()
		testwait.Until(t, waitLimit, what, func() bool { return load.OK.Load() > k+1000 })
	}
	progress("load through nginx")

	for i := range 2 {
		if err := a.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		testwait.Until(t, waitLimit, "a: reload complete", func() bool { return strings.Count(a.Log(), "reload complete") == i+1 })
		progress("after a HUP")
	}

	if err := b.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, waitLimit, "b: new arbiter ready", func() bool {
		return newArbiterRE.MatchString(b.Log()) && strings.Count(b.Log(), "msg=ready addrs=") == 2
	})
	newPid, _ := strconv.Atoi(newArbiterRE.FindStringSubmatch(b.Log())[1])
	progress("both arbiters of b")
	if err := b.Signal(syscall.SIGWINCH); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, waitLimit, "b: old workers gone", func() bool {
		kids := testserver.Children(b.Pid())
		return len(kids) == 1 && kids[0] == newPid
	})
	if err := b.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Not b.Wait: the new arbiter holds b's output pipe, so Wait only
	// returns once it exits too. "arbiter stopped" is a clean stop's line.
	testwait.Until(t, waitLimit, "b's old arbiter stopped", func() bool {
		return strings.Contains(b.Log(), "arbiter stopped") && syscall.Kill(b.Pid(), 0) != nil
	})
	progress("b upgraded")

	if err := a.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, waitLimit, "a draining", func() bool { return strings.Contains(a.Log(), "draining: reporting not ready") })
	if err := n.SetUpstreams(b.Addr); err != nil {
		t.Fatal(err)
	}
	if code, err := a.Wait(30 * time.Second); err != nil || code != 0 {
		t.Fatalf("a after TERM: exit %d %v", code, err)
	}
	a2 := start()
	labels[a2.Addr] = "a2"
	if err := n.SetUpstreams(a2.Addr, b.Addr); err != nil {
		t.Fatal(err)
	}
	progress("a restarted")
	load.Stop()
	recycles := strings.Count(a.Log()+b.Log()+a2.Log(), "max_requests reached")
	t.Logf("%s: load through nginx in %v, %d max_requests recycles: %s", class, time.Since(begin).Round(time.Millisecond), recycles, load)
	load.WantNoLoss(t, true)
	if load.Posts.Load() == 0 || recycles == 0 {
		t.Errorf("no POSTs or no max_requests recycles: %s", load)
	}
	checkAccessLog(t, n, labels, begin)
	if t.Failed() {
		for name, s := range map[string]*testserver.Server{"a": a, "b": b, "a2": a2} {
			t.Logf("%s log:\n%s", name, lastLines(s.Log(), 60))
		}
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}
