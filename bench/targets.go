package main

import (
	"cmp"
	_ "embed"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// wsgiApp is the gunicorn peers' application: hello at every path, and
// /sim with the same cpu/io/size knobs as multiserve's sim app.
//
//go:embed peers/wsgi/benchapp.py
var wsgiApp []byte

// maxConns is the per-process connection cap every server is given, so the
// idle workload is limited by memory, not by a default setting. setup lowers
// it to fit RLIMIT_NOFILE (which the servers inherit): a cap the fd limit
// cannot cover would make some servers change mode or fail.
var maxConns = 30000

// fitConns sizes maxConns to an fd limit, keeping a reserve for the
// server's own descriptors.
func fitConns(nofile uint64) {
	maxConns = max(1000, min(30000, int(nofile)-2000))
}

// target is one server configuration: a multiserve class or a peer.
type target struct {
	name        string
	peer        bool
	procs       int    // processes in the tree once it is ready
	sim         bool   // serves /sim (cpu, io, size)
	reloads     bool   // its master reloads on SIGHUP (reload workload)
	unavailable string // why it cannot run (build failure, not installed, failed start)
	argv        func(addr string, wl *workload) []string
	show        string // the command line for the report, ADDR standing for the address
}

func (t *target) supports(wl *workload) bool {
	switch {
	case wl.kind == kindSpread:
		return !t.peer && slices.Contains(wl.classes, t.name)
	case wl.kind == kindReload:
		return t.reloads
	case wl.name == "custom":
		return !t.peer
	case wl.needsSim:
		return t.sim
	}
	return true
}

// classSpec is one multiserve configuration of the bench matrix.
type classSpec struct {
	name, class string
	threads     int // -1: do not pass --threads
}

// ownClasses are the rows of classes your program (--pkg/--bin) registers
// beside the built-in ones: with either, a --classes name that is not a
// built-in row is taken as a class name and passed to -k as is (the
// program refuses it at start if it does not know it).
func (o options) ownClasses() []classSpec {
	if o.pkg == "" && o.bin == "" || o.classes == "all" || o.classes == "none" {
		return nil
	}
	known := specNames(classSpecs(0, 0))
	var out []classSpec
	for n := range strings.SplitSeq(o.classes, ",") {
		if n = strings.TrimSpace(n); n != "" && !slices.Contains(known, n) {
			out = append(out, classSpec{n, n, -1})
		}
	}
	return out
}

// classSpecs lists the multiserve rows: every class at the same worker count.
func classSpecs(threadedThreads, pool int) []classSpec {
	return []classSpec{
		{"sync", "sync", -1},
		{"threaded", "threaded", threadedThreads},
		{"evloop", "evloop", 0},
		{"evloop-pool", "evloop", cmp.Or(pool, 4)},
		{"goroutine", "goroutine", -1},
		{"auto", "auto", -1}, // its pool is auto_pool (1000 by default)
	}
}

// multiserveTarget builds the row for one class: the binary, the class's
// flags, the user's --server-flags, then the workload's app.
func multiserveTarget(bin string, cs classSpec, o options) *target {
	base := func(addr string, threads int) []string {
		a := []string{bin, "-b", addr, "-w", strconv.Itoa(o.workers), "-k", cs.class}
		if threads >= 0 {
			a = append(a, "--threads", strconv.Itoa(threads))
		}
		a = append(a, "--worker-connections", strconv.Itoa(maxConns), "--graceful-timeout", "3s")
		return append(a, o.serverFlags...)
	}
	t := &target{name: cs.name, procs: 1 + o.workers, sim: true, reloads: true}
	t.argv = func(addr string, wl *workload) []string {
		threads := cs.threads
		switch {
		case cs.name != "evloop-pool":
		case o.pool > 0:
			threads = o.pool
		case wl.pool > 0:
			threads = wl.pool // a workload may size the pool to its concurrency
		}
		return append(base(addr, threads), wl.app)
	}
	t.show = strings.Join(base("ADDR", cs.threads), " ") + " APP"
	t.show = strings.Replace(t.show, bin, "multiserve", 1)
	return t
}

// peerEnv is what peer discovery needs.
type peerEnv struct {
	workers, threads int
	tmp              string // private temp dir for generated configs
	nethttpBin       string // built binaries; "" when the build failed
	gnetbareBin      string
	buildErr         map[string]string // peer name → why it was not built
}

// peerTargets returns the peers in run order; those not installed carry the
// reason in unavailable so the report can say so.
func peerTargets(pe peerEnv, want func(string) bool) []*target {
	var out []*target
	add := func(t *target) {
		if want(t.name) {
			t.peer = true
			out = append(out, t)
		}
	}
	add(binPeer("nethttp", pe.nethttpBin, pe.buildErr["nethttp"], true, func(addr string) []string {
		return []string{pe.nethttpBin, "-addr", addr}
	}))
	add(binPeer("gnetbare", pe.gnetbareBin, pe.buildErr["gnetbare"], false, func(addr string) []string {
		return []string{pe.gnetbareBin, "-addr", addr, "-loops", strconv.Itoa(pe.workers)}
	}))
	add(nginxTarget(pe))
	for _, k := range []string{"sync", "gthread", "gevent"} {
		add(gunicornTarget(pe, k))
	}
	return out
}

func binPeer(name, bin, buildErr string, sim bool, argv func(addr string) []string) *target {
	t := &target{name: name, procs: 1, sim: sim}
	if bin == "" {
		t.unavailable = "not built: " + buildErr
		return t
	}
	t.argv = func(addr string, _ *workload) []string { return argv(addr) }
	t.show = strings.Replace(strings.Join(argv("ADDR"), " "), bin, name, 1)
	return t
}

// nginxTarget answers `return 200` from a config generated per address.
func nginxTarget(pe peerEnv) *target {
	t := &target{name: "nginx", procs: 1 + pe.workers, reloads: true}
	bin, err := exec.LookPath("nginx")
	if err != nil {
		t.unavailable = "nginx not installed (make bench-deps)"
		return t
	}
	dir := filepath.Join(pe.tmp, "nginx")
	t.argv = func(addr string, _ *workload) []string {
		if err := writeNginxConf(dir, addr, pe.workers); err != nil {
			return []string{"/bin/false"} // reported as a failed start
		}
		return []string{bin, "-p", dir, "-c", filepath.Join(dir, "nginx.conf"), "-e", filepath.Join(dir, "error.log")}
	}
	t.show = fmt.Sprintf("nginx (worker_processes %d; location / { return 200 \"Hello, World!\"; })", pe.workers)
	return t
}

func writeNginxConf(dir, addr string, workers int) error {
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		return err
	}
	tmp := filepath.Join(dir, "tmp")
	conf := fmt.Sprintf(`daemon off;
master_process on;
worker_processes %d;
pid %s/nginx.pid;
error_log %s/error.log warn;
worker_rlimit_nofile %d;
events { worker_connections %d; }
http {
    access_log off;
    client_body_temp_path %s/body;
    proxy_temp_path %s/proxy;
    fastcgi_temp_path %s/fastcgi;
    uwsgi_temp_path %s/uwsgi;
    scgi_temp_path %s/scgi;
    keepalive_timeout 65s;
    keepalive_requests 100000000;
    server {
        listen %s backlog=2048;
        location / { default_type text/plain; return 200 "Hello, World!"; }
    }
}
`, workers, dir, dir, maxConns+1000, maxConns, tmp, tmp, tmp, tmp, tmp, addr)
	return os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o644)
}

// gunicornTarget runs the WSGI bench app under one gunicorn worker class.
func gunicornTarget(pe peerEnv, kind string) *target {
	t := &target{name: "gunicorn-" + kind, procs: 1 + pe.workers, sim: true, reloads: true}
	bin, err := exec.LookPath("gunicorn")
	if err != nil {
		t.unavailable = "gunicorn not installed (make bench-deps)"
		return t
	}
	if kind == "gevent" && !pythonHas(bin, "gevent") {
		t.unavailable = "gevent not importable by gunicorn's python (make bench-deps installs python3-gevent)"
		return t
	}
	dir := filepath.Join(pe.tmp, "wsgi")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.unavailable = err.Error()
		return t
	}
	if err := os.WriteFile(filepath.Join(dir, "benchapp.py"), wsgiApp, 0o644); err != nil {
		t.unavailable = err.Error()
		return t
	}
	args := func(addr string) []string {
		a := []string{bin, "-b", addr, "-w", strconv.Itoa(pe.workers), "-k", kind,
			"--chdir", dir, "--graceful-timeout", "3", "--keep-alive", "65", "--backlog", "2048",
			"--worker-connections", strconv.Itoa(maxConns), "--log-level", "warning"}
		if kind == "gthread" {
			a = append(a, "--threads", strconv.Itoa(pe.threads))
		}
		return append(a, "benchapp:app")
	}
	t.argv = func(addr string, _ *workload) []string { return args(addr) }
	t.show = strings.Replace(strings.Join(args("ADDR"), " "), bin, "gunicorn", 1)
	t.show = strings.Replace(t.show, dir, "DIR", 1)
	return t
}

// pythonHas reports whether the interpreter on gunicorn's #! line can
// import mod (Debian's gunicorn uses /usr/bin/python3, which may not be the
// python3 first on PATH).
func pythonHas(gunicorn, mod string) bool {
	b, err := os.ReadFile(gunicorn)
	if err != nil {
		return false
	}
	first, _, _ := strings.Cut(string(b), "\n")
	py := strings.Fields(strings.TrimPrefix(first, "#!"))
	if len(py) == 0 {
		return false
	}
	args := append(py[1:], "-c", "import "+mod)
	return exec.Command(py[0], args...).Run() == nil
}
