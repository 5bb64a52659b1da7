package stats

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/multiserve/multiserve/scoreboard"
)

type fakeSource struct {
	mu   sync.Mutex
	snap Snapshot
	err  error
}

func (f *fakeSource) Snapshot() (Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.snap, f.err
}

// ParseMetrics parses a Prometheus text exposition.
func parseMetrics(t *testing.T, r io.Reader) map[string]*dto.MetricFamily {
	t.Helper()
	p := expfmt.NewTextParser(model.UTF8Validation)
	mf, err := p.TextToMetricFamilies(r)
	if err != nil {
		t.Fatal(err)
	}
	return mf
}

func value(mf map[string]*dto.MetricFamily, name string, labels map[string]string) (float64, bool) {
	f := mf[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.Metric {
		for _, lp := range m.Label {
			if want, ok := labels[lp.GetName()]; ok && want != lp.GetValue() {
				continue next
			}
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue(), true
		case m.Gauge != nil:
			return m.Gauge.GetValue(), true
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount()), true
		}
	}
	return 0, false
}

func TestEndpoint(t *testing.T) {
	board, err := scoreboard.Create(8)
	if err != nil {
		t.Fatal(err)
	}
	defer board.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	lf, _ := ln.(*net.TCPListener).File()
	defer lf.Close()

	busy, _ := board.Assign(os.Getpid())
	idle, _ := board.Assign(os.Getpid())
	s := board.Slot(busy)
	s.Started(os.Getpid())
	s.End(s.Begin("GET", "/done", "c", 0), 200, 5)
	s.Begin("GET", "/slow", "1.2.3.4:9", 0)
	board.Slot(idle).Started(os.Getpid())
	s.ConnOpened()
	s.ConnOpened()
	board.Slot(idle).ConnOpened()
	src := &fakeSource{snap: Snapshot{
		ArbiterPID: os.Getpid(), Class: "sync", Target: 2, Booted: true,
		Workers: []Worker{
			{PID: os.Getpid(), Age: 1, Class: "sync", Slot: busy, Ready: true, Spawned: time.Now()},
			{PID: os.Getpid(), Age: 2, Class: "sync", Slot: idle, Ready: true, Spawned: time.Now()},
		},
		Restarts:  Restarts{ReasonCrash: 2},
		Listeners: []Listener{{Name: "test", FD: int(lf.Fd())}},
	}}
	srv, err := Start("127.0.0.1:0", src, board, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	base := "http://" + srv.Addr().String()
	get := func(path string) (int, string) {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	code, body := get("/metrics")
	if code != 200 {
		t.Fatalf("/metrics %d", code)
	}
	mf := parseMetrics(t, strings.NewReader(body))
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"multiserve_requests_total", map[string]string{"class": "sync"}, 1},
		{"multiserve_responses_total", map[string]string{"class": "sync", "code": "2xx"}, 1},
		{"multiserve_request_duration_seconds", map[string]string{"class": "sync"}, 1},
		{"multiserve_workers", map[string]string{"state": "busy"}, 1},
		{"multiserve_workers", map[string]string{"state": "idle"}, 1},
		{"multiserve_saturation", nil, 0.5},
		{"multiserve_worker_restarts_total", map[string]string{"reason": "crash"}, 2},
		{"multiserve_worker_restarts_total", map[string]string{"reason": "timeout"}, 0},
		{"multiserve_listen_queue_length", map[string]string{"listener": "test"}, 0},
		{"multiserve_up", nil, 1},
		{"multiserve_connections", map[string]string{"class": "sync"}, 3},
	} {
		if got, ok := value(mf, c.name, c.labels); !ok || got != c.want {
			t.Errorf("%s%v = %v (found %v), want %v", c.name, c.labels, got, ok, c.want)
		}
	}

	if got, _ := value(mf, "multiserve_workers_threads", nil); got < 2 {
		t.Errorf("threads %v", got)
	}
	if got, _ := value(mf, "multiserve_workers_rss_bytes", nil); got < 1<<20 {
		t.Errorf("rss %v", got)
	}

	code, body = get("/status")
	var st Status
	if err := json.Unmarshal([]byte(body), &st); code != 200 || err != nil {
		t.Fatalf("/status %d %v: %s", code, err, body)
	}
	if len(st.Workers) != 2 || st.Workers[0].Current == nil || st.Workers[0].Current.Path != "/slow" ||
		st.Workers[0].Threads == 0 || st.Workers[0].RSSBytes == 0 || st.Classes["sync"].Requests != 1 {
		t.Fatalf("/status: %s", body)
	}
	if c := st.Classes["sync"]; c.LatencyP50 != scoreboard.Buckets[0] || c.LatencyP99 != scoreboard.Buckets[0] || c.LatencyMean <= 0 {
		t.Errorf("latency summary %+v", c)
	}
	if st.Summary.Connections != 3 || st.Workers[0].Connections != 2 {
		t.Errorf("/status connections: summary %d, worker %d", st.Summary.Connections, st.Workers[0].Connections)
	}
	if code, body = get("/"); code != 200 || !strings.Contains(body, "/slow") || !strings.Contains(body, "refresh") ||
		!strings.Contains(body, "<th>connections</th>") || !strings.Contains(body, "<td>2</td><td>5 B</td>") {
		t.Fatalf("/ %d: %s", code, body)
	}
	if code, _ = get("/healthz"); code != 200 {
		t.Fatalf("/healthz %d", code)
	}
	if code, _ = get("/readyz"); code != 200 {
		t.Fatalf("/readyz %d", code)
	}
	src.mu.Lock()
	src.snap.Draining = true
	src.mu.Unlock()
	if code, _ = get("/readyz"); code != 503 {
		t.Fatalf("/readyz while draining %d", code)
	}
	src.mu.Lock()
	src.err = errors.New("arbiter gone")
	src.mu.Unlock()
	if code, _ = get("/healthz"); code != 503 {
		t.Fatalf("/healthz without arbiter %d", code)
	}
}

// TestAcceptQueue: connections nobody accepts show up in the queue length.
func TestAcceptQueue(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	lf, _ := ln.(*net.TCPListener).File()
	defer lf.Close()
	for range 3 {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		ls := listenerStatus(Listener{Name: "x", FD: int(lf.Fd())})
		if ls.Measured && ls.Queue == 3 && ls.Backlog > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("accept queue: %+v", ls)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestUnixBind(t *testing.T) {
	path := t.TempDir() + "/stats.sock"
	srv, err := Start("unix:"+path, &fakeSource{}, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode: %v %v", st, err)
	}
	srv.Close()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("socket left behind: %v", err)
	}
}

func TestQuantile(t *testing.T) {
	per := make([]uint64, len(scoreboard.Buckets)+1)
	per[0], per[3], per[len(per)-1] = 50, 49, 1
	for _, c := range []struct{ q, want float64 }{{.5, scoreboard.Buckets[0]}, {.99, scoreboard.Buckets[3]}, {1, -1}} {
		if got := quantile(per, c.q); got != c.want {
			t.Errorf("q%v = %v, want %v", c.q, got, c.want)
		}
	}
	if quantile(make([]uint64, 3), .5) != 0 {
		t.Error("empty")
	}
}

// TestRouteTable: the route table a worker publishes in its slot shows on
// /status, on the page, and as placement counters in /metrics.
func TestRouteTable(t *testing.T) {
	board, err := scoreboard.Create(4)
	if err != nil {
		t.Fatal(err)
	}
	defer board.Close()
	idx, _ := board.Assign(os.Getpid())
	board.Slot(idx).Started(os.Getpid())
	rows := []scoreboard.Route{
		{Route: "GET /fast", Placement: "inline", Samples: 500, Mean: 2 * time.Microsecond, Max: time.Millisecond, Promotions: 1},
		{Route: "GET /db", Placement: "pooled", Samples: 20, Mean: 10 * time.Millisecond, Max: 15 * time.Millisecond, Demotions: 1},
	}
	board.Slot(idx).SetRoutes(rows, 2, 1)
	src := &fakeSource{snap: Snapshot{ArbiterPID: os.Getpid(), Class: "auto", Target: 1, Booted: true,
		Workers: []Worker{{PID: os.Getpid(), Age: 1, Class: "auto", Slot: idx, Ready: true, Spawned: time.Now()}}}}
	h := Handler(src, board)
	get := func(path string) string {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != 200 {
			t.Fatalf("%s: %d %s", path, rec.Code, rec.Body)
		}
		return rec.Body.String()
	}
	var st Status
	if err := json.Unmarshal([]byte(get("/status")), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Workers) != 1 || !reflect.DeepEqual(st.Workers[0].Routes, rows) {
		t.Fatalf("/status routes: %+v", st.Workers)
	}
	if c := st.Classes["auto"]; c.Promotions != 2 || c.Demotions != 1 {
		t.Fatalf("/status class totals: %+v", c)
	}
	if page := get("/"); !strings.Contains(page, "<b>pooled</b> GET /db · 20 requests, handler mean 10ms") {
		t.Fatalf("page lacks the route table:\n%s", page)
	}
	mf := parseMetrics(t, strings.NewReader(get("/metrics")))
	for name, want := range map[string]float64{"multiserve_route_promotions_total": 2, "multiserve_route_demotions_total": 1} {
		if got, ok := value(mf, name, map[string]string{"class": "auto"}); !ok || got != want {
			t.Errorf("%s = %v (found %v), want %v", name, got, ok, want)
		}
	}
}

// TestReadyz: ready means a booted pool with a worker serving and no drain;
// a load balancer must not be told "ready" while nobody can answer.
func TestReadyz(t *testing.T) {
	ready := []Worker{{PID: 1, Ready: true}}
	for _, c := range []struct {
		name string
		snap Snapshot
		err  error
		code int
		body string
	}{
		{"serving", Snapshot{Booted: true, Workers: ready}, nil, 200, "ok\n"},
		{"starting", Snapshot{Workers: ready}, nil, 503, "starting\n"},
		{"draining", Snapshot{Booted: true, Draining: true, Workers: ready}, nil, 503, "draining\n"},
		{"no worker (WINCH)", Snapshot{Booted: true}, nil, 503, "no worker ready\n"},
		{"only retiring", Snapshot{Booted: true, Workers: []Worker{{PID: 1, Ready: true, Retiring: true}}}, nil, 503, "no worker ready\n"},
		{"arbiter gone", Snapshot{}, errors.New("gone"), 503, "gone\n"},
	} {
		h := Handler(&fakeSource{snap: c.snap, err: c.err}, nil)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
		if rec.Code != c.code || rec.Body.String() != c.body {
			t.Errorf("%s: %d %q, want %d %q", c.name, rec.Code, rec.Body.String(), c.code, c.body)
		}
	}
}
