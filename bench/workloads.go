package main

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Workload kinds: how a workload is driven.
const (
	kindClosed = "closed" // wrk sweep over concurrency + one open-loop run
	kindSlow   = "slow"   // slow clients while a normal closed-loop load runs
	kindIdle   = "idle"   // many idle keep-alive connections; memory per connection
)

// workload is one traffic shape.
type workload struct {
	name     string
	kind     string
	app      string   // the multiserve app that serves it
	paths    []string // request targets; several are sent round-robin
	method   string   // "" is GET
	body     []byte   // sent with every request
	probe    string   // GET that answers 200 once the app is up; "" is "/"
	close    bool     // send Connection: close (a new connection per request)
	rate     int      // open-loop requests per second
	needsSim bool     // needs /sim (cpu, io, size), which not every peer has
	cpuBound bool     // judged by requests per server CPU-second rather than peak throughput
	waits    bool     // requests wait (on IO) rather than compute: where a blocking model collapses
	conc     []int    // fixed concurrency levels instead of --concurrency
	pool     int      // evloop-pool's handler pool size on this workload (0: the default 4)
	classes  []string // only these multiserve rows run it (spread)
	desc     string   // what it is, for the report
	question string   // the user's situation it answers, for "how to choose"
}

// mixedPaths is 70 % tiny, 20 % 20 ms waits, 10 % 2 ms of CPU, each kind
// on a path of its own (sim serves any path), as a real application's
// routes are: a class that places requests by route (auto) tells them apart.
var mixedPaths = []string{
	"/fast?size=13", "/db?io=20ms", "/fast?size=13", "/fast?size=13", "/cpu?cpu=2ms",
	"/fast?size=13", "/db?io=20ms", "/fast?size=13", "/fast?size=13", "/fast?size=13",
}

// allWorkloads lists the built-in workloads in the order they run.
func allWorkloads() []*workload {
	return []*workload{
		{name: "hello", kind: kindClosed, cpuBound: true, app: "hello", paths: []string{"/"}, rate: 5000,
			desc:     "`hello`: a 13-byte response on kept-alive connections; measures the server's own overhead.",
			question: "Tiny, fast handlers (cached JSON, health checks, redirects)"},
		{name: "io", kind: kindClosed, waits: true, app: "sim", paths: []string{"/sim?io=20ms"}, rate: 1000, needsSim: true,
			desc:     "`sim?io=20ms`: each request waits 20 ms (a database or upstream call) and uses almost no CPU.",
			question: "Handlers that mostly wait on a database or another service"},
		{name: "io-1000", kind: kindClosed, waits: true, app: "sim", paths: []string{"/sim?io=10ms"}, rate: 5000, needsSim: true, conc: []int{1000}, pool: 1000,
			desc:     "`sim?io=10ms` on 1000 connections: does evloop with a handler pool (here 1000 goroutines, one per connection) keep up with plain net/http? (Inline it is capped near loops ÷ 10 ms.)",
			question: "Many concurrent requests that each wait briefly"},
		{name: "cpu", kind: kindClosed, cpuBound: true, app: "sim", paths: []string{"/sim?cpu=2ms"}, rate: 200, needsSim: true,
			desc:     "`sim?cpu=2ms`: each request burns 2 ms of CPU; one server CPU caps everyone near 500 req/s.",
			question: "CPU-heavy handlers (templating, compression, crypto)"},
		{name: "mixed", kind: kindClosed, waits: true, app: "sim", paths: mixedPaths, rate: 500, needsSim: true,
			desc:     "70 % tiny (`/fast?size=13`), 20 % 20 ms waits (`/db?io=20ms`), 10 % 2 ms of CPU (`/cpu?cpu=2ms`), round-robin, all served by `sim`.",
			question: "A typical web app: mostly fast, some slow queries, some CPU"},
		{name: "large", kind: kindClosed, cpuBound: true, app: "sim", paths: []string{"/sim?size=1048576"}, rate: 200, needsSim: true,
			desc:     "`sim?size=1048576`: a 1 MiB response per request.",
			question: "Large responses (downloads, reports, images)"},
		{name: "conn-per-request", kind: kindClosed, cpuBound: true, app: "hello", paths: []string{"/"}, close: true, rate: 2000,
			desc:     "`hello` with `Connection: close`: a new TCP connection for every request (clients without keep-alive).",
			question: "Clients that do not keep connections alive"},
		{name: "slow-clients", kind: kindSlow, app: "hello", paths: []string{"/"},
			desc:     "slow clients each send their request one byte per second while a normal keep-alive `hello` load runs: does slow IO starve everyone else? The table is the normal load's.",
			question: "Slow clients reaching the server directly (no buffering proxy in front)"},
		{name: "idle", kind: kindIdle, app: "hello", paths: []string{"/"},
			desc:     "idle keep-alive connections (each made one `hello` request, then stays open): memory per connection from the server processes' RSS.",
			question: "Many idle keep-alive connections (long polling, chatty clients behind no proxy)"},
		{name: "reload", kind: kindReload, app: "hello", paths: []string{"/"}, conc: []int{reloadConns},
			desc: "`hello` on kept-alive connections while the server is told to reload (SIGHUP) once a second: requests lost while workers are replaced."},
		{name: "spread", kind: kindSpread, app: "hello", paths: []string{"/"}, close: true, conc: []int{16}, classes: spreadClasses,
			desc: "`hello` with `Connection: close` on 3 workers, shared listening socket vs `reuse_port` (a SO_REUSEPORT socket per worker): how evenly the kernel spreads new connections across workers."},
	}
}

// route names what a workload requests, for chart titles:
// "hello, GET /", "mixed, GET /sim?size=13 /sim?io=20ms /sim?cpu=2ms".
func (wl *workload) route() string {
	r := wl.name + ", " + cmp.Or(wl.method, "GET") + " " + strings.Join(uniq(wl.paths), " ")
	if wl.close {
		r += " (Connection: close)"
	}
	if len(r) > 70 {
		r = r[:69] + "…"
	}
	return r
}

// probePath is what readiness, slow clients and idle connections GET.
func (wl *workload) probePath() string { return cmp.Or(wl.probe, "/") }

// customWorkload benches the user's own app at their paths.
func customWorkload(o options) *workload {
	req := strings.Join(o.pathArgs, " ")
	if o.method != "" {
		req = o.method + " " + req
	}
	if len(o.body) > 0 {
		req += fmt.Sprintf(" with a %d-byte body", len(o.body))
	}
	if len(o.pathArgs) > 1 {
		req += " (the paths in turn, each as often as its weight)"
	}
	return &workload{name: "custom", kind: kindClosed, app: o.app, paths: o.paths, method: o.method, body: o.body,
		probe: cmp.Or(o.probePath, o.paths[0]), rate: cmp.Or(o.rate, 500),
		desc:     fmt.Sprintf("your app `%s`: %s.", o.app, req),
		question: fmt.Sprintf("Your own handler (%s %s)", o.app, req)}
}

// ownHandler points the workloads that measure connection handling rather
// than a handler (slow clients, idle connections) at the user's app, so they
// probe the user's path instead of a / the app may not serve; slow-clients'
// normal load is the custom one.
func ownHandler(ws []*workload, o options) {
	custom := customWorkload(o)
	for _, wl := range ws {
		switch wl.kind {
		case kindSlow:
			wl.app, wl.paths, wl.method, wl.body, wl.probe = custom.app, custom.paths, custom.method, custom.body, custom.probe
			wl.desc = strings.Replace(wl.desc, "a normal keep-alive `hello` load", "the custom load", 1)
		case kindIdle:
			wl.app, wl.probe = custom.app, custom.probe
			wl.paths = []string{custom.probe}
			wl.desc = strings.Replace(wl.desc, "one `hello` request", fmt.Sprintf("one GET %s", custom.probe), 1)
		}
	}
}

// selectWorkloads resolves the --workloads list ("" or "all": every one).
func selectWorkloads(list string, all []*workload) ([]*workload, error) {
	if list == "" || list == "all" {
		return all, nil
	}
	var out []*workload
	for name := range strings.SplitSeq(list, ",") {
		name = strings.TrimSpace(name)
		i := slices.IndexFunc(all, func(w *workload) bool { return w.name == name })
		if i < 0 {
			names := make([]string, len(all))
			for j, w := range all {
				names[j] = w.name
			}
			return nil, fmt.Errorf("bench: unknown workload %q (known: %s)", name, strings.Join(names, ", "))
		}
		out = append(out, all[i])
	}
	return out, nil
}
