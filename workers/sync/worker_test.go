package sync

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/multiserve/multiserve/config"
	"github.com/multiserve/multiserve/internal/testwait"
	"github.com/multiserve/multiserve/workers/workerstest"
)

func start(t *testing.T, h http.Handler, cfg *config.Config) (string, *workerstest.Heart, *workerstest.Running) {
	t.Helper()
	env, addr, heart := workerstest.NewEnv(t, h, cfg)
	return addr, heart, workerstest.Serve(t, &Worker{}, env, heart)
}

// Three clients at once: the worker lets exactly one into the handler at a
// time; each answer closes its connection.
func TestOneRequestAtATime(t *testing.T) {
	g := workerstest.NewGauge()
	addr, _, _ := start(t, g, nil)
	wait := workerstest.GetAll(t, addr, "/", 3, true)
	for i := range 3 {
		g.Await(t, fmt.Sprintf("request %d", i))
		if c := g.Current(); c != 1 {
			t.Fatalf("%d requests in the handler at once, want 1", c)
		}
		g.Step()
	}
	wait()
	if m := g.Max(); m != 1 {
		t.Fatalf("max simultaneous handlers = %d, want 1", m)
	}
}

// An idle worker keeps beating (the loop's poll has a timeout); a worker
// busy with one request does not (its beat comes from the accept loop).
func TestBeatsWhileIdleNotWhileBusy(t *testing.T) {
	cfg := config.Default()
	cfg.Timeout = 40 * time.Millisecond // beat every 20ms
	g := workerstest.NewGauge()
	addr, heart, _ := start(t, g, cfg)
	b0 := heart.Beats()
	testwait.Until(t, 10*time.Second, "3 beats while idle", func() bool { return heart.Beats() >= b0+3 })

	done := make(chan struct{})
	go func() { defer close(done); workerstest.Get(t, addr, "/") }()
	g.Await(t, "the request")
	busy := heart.Beats()
	// Ten beat intervals with the request held: a correct worker cannot
	// beat at all, however the scheduler runs us.
	time.Sleep(10 * cfg.Timeout / 2)
	if b := heart.Beats(); b != busy {
		t.Fatalf("worker beat %d times while its only thread served a request", b-busy)
	}
	g.Release()
	<-done
}

// A graceful stop lets the request in flight finish, then Serve returns nil
// without accepting the connection that queued meanwhile.
func TestGracefulStopFinishesInFlight(t *testing.T) {
	g := workerstest.NewGauge()
	addr, _, run := start(t, g, nil)
	type result struct {
		resp *http.Response
		body string
	}
	res := make(chan result, 1)
	go func() {
		resp, body := workerstest.Get(t, addr, "/")
		res <- result{resp, body}
	}()
	g.Await(t, "the request")
	late, err := net.Dial("tcp", addr) // queued in the backlog behind the request
	if err != nil {
		t.Fatal(err)
	}
	defer late.Close()
	run.Cancel()
	g.Release()
	r := <-res
	if r.resp == nil || r.resp.StatusCode != 200 || r.body != "ok" {
		t.Fatalf("in-flight request got %v %q", r.resp, r.body)
	}
	run.Stop(t)
	if n := g.Max(); n != 1 {
		t.Fatalf("max in handler %d", n)
	}
	late.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
	late.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := bufio.NewReader(late).ReadByte(); err == nil {
		t.Fatal("a connection made after the stop was served")
	}
}

// A client that connects and sends nothing is dropped after header_timeout,
// so it cannot hold the worker's only thread forever.
func TestSilentClientReleasesWorker(t *testing.T) {
	cfg := config.Default()
	cfg.HeaderTimeout = 100 * time.Millisecond
	addr, _, _ := start(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("served"))
	}), cfg)
	silent, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	resp, body := workerstest.Get(t, addr, "/")
	if resp == nil || resp.StatusCode != 200 || !strings.Contains(body, "served") {
		t.Fatalf("second client got %v %q", resp, body)
	}
}

// A graceful stop does not wait header_timeout (an hour here) for a client
// that was accepted but sent nothing: the engine moves the read deadline to
// its short first-request grace, and fdconn carries that into the read
// already blocked in the kernel.
func TestGracefulStopDropsSilentClient(t *testing.T) {
	cfg := config.Default()
	cfg.HeaderTimeout = time.Hour
	addr, _, run := start(t, workerstest.NewGauge(), cfg)
	silent, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	testwait.Until(t, 10*time.Second, "the worker to accept", func() bool { return workerstest.Accepted(t, silent) })
	run.Cancel()
	if err, ok := run.WaitTimeout(10 * time.Second); !ok || err != nil {
		t.Fatalf("Serve returned %v (returned=%v) with a silent client connected, want nil promptly", err, ok)
	}
}

// Every --bind is served.
func TestTwoListeners(t *testing.T) { workerstest.ServesEveryListener(t, &Worker{}, true) }

func TestConformance(t *testing.T) {
	workerstest.Run(t, "sync", workerstest.Options{NoKeepAlive: true})
}
