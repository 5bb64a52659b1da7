package arbiter_test

// Real-process tests (ARCHITECTURE §2.6 layer 4): the test binary re-execs
// itself as an arbiter ("master") and the arbiter re-execs it as workers.
// TestMain picks the role from the environment.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/multiserve/multiserve/arbiter"
	"github.com/multiserve/multiserve/config"
	"github.com/multiserve/multiserve/internal/proc"
	"github.com/multiserve/multiserve/internal/testwait"
	"github.com/multiserve/multiserve/workers"
	_ "github.com/multiserve/multiserve/workers/evloop"
	"github.com/multiserve/multiserve/workers/goroutine"
	_ "github.com/multiserve/multiserve/workers/sync"
	_ "github.com/multiserve/multiserve/workers/threaded"
)

// e2eClasses are the worker classes every end-to-end test runs with.
// A class joins with one line here (and its blank import above).
// "class+engine" picks the goroutine class's http_engine.
var e2eClasses = []string{
	"sync",
	"threaded",
	"evloop",
	"goroutine",
	"goroutine+net/http",
}

const envMaster = "ARBITER_TEST_MASTER" // path of the master's JSON config file

func TestMain(m *testing.M) {
	switch {
	case proc.IsWorker():
		os.Exit(workers.Main(testApp))
	case os.Getenv(envMaster) != "":
		os.Exit(runMaster(os.Getenv(envMaster)))
	}
	os.Exit(m.Run())
}

// runMaster is the arbiter process of a test: config from a JSON file (HUP
// re-reads it), readiness and addresses written to fd 3.
func runMaster(path string) int {
	cfg, err := readConfig(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "master:", err)
		return 2
	}
	unix.CloseOnExec(3)
	readyW := os.NewFile(3, "ready")
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	err = arbiter.Run(context.Background(), arbiter.Options{
		Config:     cfg,
		Reload:     func() (*config.Config, error) { return readConfig(path) },
		Executable: os.Args[0],
		Log:        log,
		Ready: func(addrs []net.Addr) {
			var s []string
			for _, a := range addrs {
				s = append(s, a.String())
			}
			fmt.Fprintf(readyW, "ready %s\n", strings.Join(s, " "))
		},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "master error:", err)
	}
	return arbiter.ExitCode(err)
}

func readConfig(path string) (*config.Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	cfg := config.Default()
	if err := json.Unmarshal(b, cfg); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	return cfg, nil
}

// testApp is the application the workers serve.
//
//	/          the worker's pid
//	/sleep?d=  sends headers at once, sleeps d, then the pid
//	/print?n=&tag= writes n tagged lines each to stdout and stderr, then the pid
//	/hang      never answers; with the stallbeat class it also stops the heartbeat
func testApp(cfg *config.Config) (http.Handler, error) {
	if cfg.App == "failload" {
		return nil, errors.New("boom: cannot load the app")
	}
	// "failif:PATH" fails to load while PATH exists (a crash loop on demand).
	if path, ok := strings.CutPrefix(cfg.App, "failif:"); ok {
		if _, err := os.Stat(path); err == nil {
			return nil, errors.New("failif: marker present")
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, os.Getpid())
	})
	mux.HandleFunc("/sleep", func(w http.ResponseWriter, r *http.Request) {
		d, _ := time.ParseDuration(r.URL.Query().Get("d"))
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		time.Sleep(d)
		fmt.Fprint(w, os.Getpid())
	})
	mux.HandleFunc("/block", func(w http.ResponseWriter, r *http.Request) {
		// Sends nothing until d passed or the request's context ends.
		d, _ := time.ParseDuration(r.URL.Query().Get("d"))
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return
		}
		fmt.Fprint(w, os.Getpid())
	})
	mux.HandleFunc("/print", func(w http.ResponseWriter, r *http.Request) {
		// n lines to stdout and n to stderr, each tagged.
		n, _ := strconv.Atoi(r.URL.Query().Get("n"))
		tag := r.URL.Query().Get("tag")
		for i := range n {
			fmt.Fprintf(os.Stdout, "stdout %s %d\n", tag, i)
			fmt.Fprintf(os.Stderr, "stderr %s %d\n", tag, i)
		}
		fmt.Fprint(w, os.Getpid())
	})
	mux.HandleFunc("/exit", func(w http.ResponseWriter, r *http.Request) {
		code, _ := strconv.Atoi(r.URL.Query().Get("code"))
		os.Exit(code)
	})
	mux.HandleFunc("/hang", func(w http.ResponseWriter, r *http.Request) {
		hanging.Store(true)
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		select {}
	})
	return mux, nil
}

// hanging makes the stallbeat class stop beating, as a class whose serving
// loop is stuck in a request would (sync, evloop inline).
var hanging atomic.Bool

func init() {
	workers.Register(workers.Class{
		Name:    "stallbeat",
		Summary: "test only: goroutine class whose heartbeat stops while /hang runs",
		New:     func() workers.Worker { return stallbeat{} },
	})
	workers.Register(workers.Class{
		Name: "neverready", Summary: "test only: never calls Ready",
		New: func() workers.Worker { return neverready{} },
	})
	workers.Register(workers.Class{
		Name: "failboot", Summary: "test only: Serve fails at once",
		New: func() workers.Worker { return failboot{} },
	})
}

type stallbeat struct{}

// neverready is a class that serves but never reports ready.
type neverready struct{}

func (neverready) Serve(ctx context.Context, _ *workers.Env) error {
	<-ctx.Done()
	return nil
}

// failboot is a class that cannot start.
type failboot struct{}

func (failboot) Serve(context.Context, *workers.Env) error {
	return errors.New("failboot: cannot open the widget")
}

func (stallbeat) Serve(ctx context.Context, env *workers.Env) error {
	e := *env
	cfg := *env.Config
	cfg.HTTPEngine = "net/http"
	e.Config = &cfg
	e.Beat = func() {
		if !hanging.Load() {
			env.Beat()
		}
	}
	return (&goroutine.Worker{}).Serve(ctx, &e)
}

// testConfig is a config for class on an ephemeral loopback port.
func testConfig(class string, workers int) *config.Config {
	cfg := config.Default()
	cfg.Bind = []string{"127.0.0.1:0"}
	class, cfg.HTTPEngine, _ = strings.Cut(class, "+")
	if cfg.HTTPEngine == "" {
		cfg.HTTPEngine = config.Default().HTTPEngine
	}
	cfg.WorkerClass = class
	cfg.Workers = workers
	cfg.GracefulTimeout = 10 * time.Second
	cfg.Timeout = 30 * time.Second
	cfg.Loglevel = "debug"
	return cfg
}

// master is a running arbiter process.
type master struct {
	t       *testing.T
	cmd     *exec.Cmd
	cfgPath string
	logPath string
	addrs   []string
	exited  chan struct{}
	code    int
}

// startMaster starts an arbiter and, if wantReady, waits until its workers
// are ready. Every process of its group is SIGKILLed at cleanup.
func startMaster(t *testing.T, cfg *config.Config, wantReady bool) *master {
	t.Helper()
	dir := t.TempDir()
	m := &master{t: t, cfgPath: dir + "/config.json", logPath: dir + "/log", exited: make(chan struct{})}
	m.writeConfig(cfg)
	logf, err := os.OpenFile(m.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	readyR, readyW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer readyR.Close()
	m.cmd = exec.Command(os.Args[0], "-test.run=^$")
	m.cmd.Env = append(os.Environ(), envMaster+"="+m.cfgPath)
	if os.Getenv("GORACE") == "" {
		// The race detector sleeps 1s at every exit by default.
		m.cmd.Env = append(m.cmd.Env, "GORACE=atexit_sleep_ms=0")
	}
	m.cmd.Stdout, m.cmd.Stderr = logf, logf
	m.cmd.ExtraFiles = []*os.File{readyW}
	m.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	err = m.cmd.Start()
	readyW.Close()
	if err != nil {
		t.Fatal(err)
	}
	pgid := m.cmd.Process.Pid
	go func() {
		m.cmd.Wait()
		m.code = m.cmd.ProcessState.ExitCode()
		close(m.exited)
	}()
	t.Cleanup(func() {
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-m.exited
		if t.Failed() || os.Getenv("ARBITER_TEST_SHOWLOG") != "" {
			b, _ := os.ReadFile(m.logPath)
			t.Logf("arbiter log:\n%s", b)
		}
	})
	if wantReady {
		m.waitReady(readyR)
	}
	return m
}

func (m *master) waitReady(r io.Reader) {
	m.t.Helper()
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(r).ReadString('\n')
		line <- s
	}()
	select {
	case s := <-line:
		f := strings.Fields(s)
		if len(f) < 2 || f[0] != "ready" {
			m.t.Fatalf("arbiter did not report ready: %q", s)
		}
		m.addrs = f[1:]
	case <-time.After(60 * time.Second):
		m.t.Fatal("arbiter not ready within 60s")
	}
}

func (m *master) writeConfig(cfg *config.Config) {
	m.t.Helper()
	b, err := json.Marshal(cfg)
	if err != nil {
		m.t.Fatal(err)
	}
	if err := os.WriteFile(m.cfgPath, b, 0o644); err != nil {
		m.t.Fatal(err)
	}
}

func (m *master) pid() int { return m.cmd.Process.Pid }

func (m *master) signal(sig syscall.Signal) {
	m.t.Helper()
	if err := syscall.Kill(m.pid(), sig); err != nil {
		m.t.Fatalf("signal %v: %v", sig, err)
	}
}

// wait returns the arbiter's exit code.
func (m *master) wait() int {
	m.t.Helper()
	select {
	case <-m.exited:
		return m.code
	case <-time.After(60 * time.Second):
		m.t.Fatal("arbiter did not exit within 60s")
		return -1
	}
}

func (m *master) logText() string {
	b, _ := os.ReadFile(m.logPath)
	return string(b)
}

// waitLog waits until the log contains s.
func (m *master) waitLog(s string) {
	m.t.Helper()
	testwait.Until(m.t, waitLimit, "log line "+strconv.Quote(s), func() bool { return strings.Contains(m.logText(), s) })
}

var client = &http.Client{
	Timeout:   30 * time.Second,
	Transport: &http.Transport{DisableKeepAlives: true},
}

// get fetches path from the first address and returns the body.
func (m *master) get(path string) (string, error) {
	c := client
	host := m.addrs[0]
	if strings.HasPrefix(host, "/") {
		c = unixClient(host)
		host = "unix"
	}
	resp, err := c.Get("http://" + host + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return string(b), nil
}

// getPid fetches / and returns the pid of the worker that answered.
func (m *master) getPid() (int, error) {
	s, err := m.get("/")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(s)
}

// fdCount is the number of open fds of the arbiter.
func (m *master) fdCount() int {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", m.pid()))
	return len(ents)
}

// children returns the arbiter's live (non-zombie) child processes.
func (m *master) children() map[int]bool {
	return procsWhere(func(pid, ppid, pgid int) bool { return ppid == m.pid() })
}

// group returns the live processes of the arbiter's process group.
func (m *master) group() map[int]bool {
	return procsWhere(func(pid, ppid, pgid int) bool { return pgid == m.pid() })
}

func procsWhere(match func(pid, ppid, pgid int) bool) map[int]bool {
	out := map[int]bool{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// Fields after the parenthesised command: state ppid pgrp ...
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 3 || !alive(pid) {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		pgid, _ := strconv.Atoi(f[2])
		if match(pid, ppid, pgid) {
			out[pid] = true
		}
	}
	return out
}

// alive: some thread of pid is not a zombie. The thread group leader turns
// zombie before the other threads have finished exiting (and released the
// process's fds), so the leader's state alone is not enough.
func alive(pid int) bool {
	tasks, _ := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/stat", pid, t.Name()))
		if err != nil {
			continue
		}
		s := string(b)
		if f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]); len(f) > 0 && f[0] != "Z" && f[0] != "X" {
			return true
		}
	}
	return false
}

// servingPids polls / until n distinct worker pids answered.
func (m *master) servingPids(n int) map[int]bool {
	m.t.Helper()
	seen := map[int]bool{}
	testwait.Until(m.t, waitLimit, fmt.Sprintf("%d distinct workers answering", n), func() bool {
		pid, err := m.getPid()
		if err == nil {
			seen[pid] = true
		}
		return len(seen) >= n
	})
	return seen
}

type testConfigT = config.Config

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o644) }

func unixClient(path string) *http.Client {
	return &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DisableKeepAlives: true,
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, "unix", path)
			},
		},
	}
}

// waitLimit is how long a test waits for a process change (a worker started, a reload done).
const waitLimit = 60 * time.Second
