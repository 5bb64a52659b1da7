package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestOwnHandlerFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		err  string
	}{
		{[]string{"--path", "work", "--app", "x"}, "starts with / (did you mean /work?)"},
		{[]string{"--path", "/work"}, "--path needs --app"},
		{[]string{"--app", "x"}, "give --path too"},
		{[]string{"--pkg", "./x", "--method", "POST"}, "give --path too"},
		{[]string{"--app", "x", "--path", "0:/a"}, "weight before ':' must be 1 to 100"},
		{[]string{"--app", "x", "--path", "101:/a"}, "weight before ':' must be 1 to 100"},
		{[]string{"--app", "x", "--path", "/a b"}, "percent-encoded"},
		{[]string{"--app", "x", "--path", "/a", "--method", "GE T"}, "not an HTTP method"},
		{[]string{"--app", "x", "--path", "/a", "--probe-path", "health"}, "--probe-path"},
		{[]string{"--app", "x", "--path", "/a", "--body", "@/nonexistent/body"}, "--body"},
		{[]string{"--pool", "-1"}, "--pool"},
	} {
		if _, err := parseFlags(c.args); err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("%v: error %v, want %q", c.args, err, c.err)
		}
	}
	o, err := parseFlags([]string{"--bin", "/x", "--path", "3:/a?b=1", "--path", "/c", "--method", "POST", "--body", "{}"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"/a?b=1", "/a?b=1", "/a?b=1", "/c"}; !slices.Equal(o.paths, want) || o.workloads != "custom" || string(o.body) != "{}" {
		t.Errorf("paths %v workloads %q body %q", o.paths, o.workloads, o.body)
	}
	wl := customWorkload(o)
	if wl.probePath() != "/a?b=1" || wl.method != "POST" {
		t.Errorf("custom workload probes %q with %q", wl.probePath(), wl.method)
	}
	if got := (request{method: "POST", path: "/a", body: []byte("{}")}).wire(false); got != "POST /a HTTP/1.1\r\nHost: bench\r\nContent-Length: 2\r\n\r\n{}" {
		t.Errorf("wire = %q", got)
	}
	if got := luaQuote("a\"b\\c\n"); got != `"a\034b\092c\010"` {
		t.Errorf("luaQuote = %s", got)
	}
	if got := shellJoin([]string{"--server-flags", "--keep-alive 5", "--path", "/a?x=1"}); got != "--server-flags '--keep-alive 5' --path '/a?x=1'" {
		t.Errorf("shellJoin = %s", got)
	}
}

// TestOwnHandlerFromOutsideModule does what a user does: a module of
// their own that requires multiserve (here through a replace directive to
// this checkout) and registers one app that answers only at /work, and the
// documented command run from that module. The bench must pick the app,
// probe /work (not /) for every workload, run no peers, and exit 0.
func TestOwnHandlerFromOutsideModule(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a module and runs servers")
	}
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	gomod := readFile(t, filepath.Join(root, "go.mod"))
	goLine := regexp.MustCompile(`(?m)^go .*$`).FindString(gomod)
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("go.mod", "module example.com/benchuser\n\n"+goLine+"\n\nrequire "+modulePath+" v0.0.0\n\nreplace "+modulePath+" => "+root+"\n")
	// Offline, go cannot fetch the checksums `go run -mod=mod` records on a
	// user's machine; the checkout's go.sum has them all.
	write("go.sum", readFile(t, filepath.Join(root, "go.sum")))
	write("main.go", `package main

import (
	"net/http"

	"github.com/multiserve/multiserve"
)

func main() {
	multiserve.Register("work", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/work" {
			http.NotFound(w, r)
			return
		}
		w.Write([]byte("worked\n"))
	}))
	multiserve.Main()
}
`)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	out := filepath.Join(dir, "out")
	cmd := exec.CommandContext(ctx, "go", "run", "-mod=mod", modulePath+"/bench", "--pkg", ".", "--path", "/work",
		"--classes", "goroutine", "--workloads", "custom,idle", "--duration", "300ms", "--repeat", "2", "--concurrency", "2",
		"--open-duration", "0", "--idle", "20", "--driver", "go", "--out", out, "--fail-if", "custom:goroutine:errors>0")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOPROXY=off", "GOSUMDB=off", "GOFLAGS=-mod=mod")
	msg, err := cmd.CombinedOutput()
	t.Logf("%s", msg)
	if err != nil {
		t.Fatalf("bench from a module outside the tree: %v", err)
	}
	report := readFile(t, filepath.Join(out, "report.md"))
	for _, want := range []string{"benching app work, the one your program registers", "pass `custom:goroutine:errors>0`",
		"median of 2 interleaved rounds", "eta "} {
		if !strings.Contains(string(msg)+report, want) {
			t.Errorf("output and report lack %q", want)
		}
	}
	if !regexp.MustCompile(`\| goroutine( †)? \| 2 \| [1-9][0-9,]* \([0-9,]+–[0-9,]+\)`).MatchString(report) || !strings.Contains(report, "| goroutine | 20 / 20 |") {
		t.Errorf("custom or idle not measured:\n%s", report)
	}
	if strings.Contains(report, "(peer)") {
		t.Error("peers ran for a custom handler without --peers")
	}
}

// TestServerFlagsChecked: --server-flags that the program rejects fail the
// run before any server starts, with the program's own message.
func TestServerFlagsChecked(t *testing.T) {
	fake := filepath.Join(t.TempDir(), "fake")
	if err := os.WriteFile(fake, []byte("#!/bin/sh\necho \"multiserve: unknown flag: --kep-alive\" >&2\nexit 2\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	o, err := parseFlags([]string{"--bin", fake, "--classes", "goroutine", "--peers", "none", "--workloads", "hello",
		"--server-flags", "--kep-alive 5", "--out", t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	o.logw, o.skipBuildInfo = testLog{t}, true
	_, err = runBench(context.Background(), o)
	if err == nil || !strings.Contains(err.Error(), `--server-flags "--kep-alive 5": multiserve: unknown flag: --kep-alive`) {
		t.Errorf("runBench error %v", err)
	}
}
