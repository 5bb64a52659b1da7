package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

const modulePath = "github.com/multiserve/multiserve"

// moduleRoot finds the multiserve module above the working directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("bench: working directory: %w", err)
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.Contains(string(b), "module "+modulePath+"\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("bench: not inside the multiserve module (run from its checkout, or pass --bin and --out)")
		}
		dir = parent
	}
}

// goBuild builds each name → package into dir, in parallel. A package that
// does not build is reported in errs, not fatal: its rows become
// "unavailable".
func goBuild(ctx context.Context, root, dir string, pkgs map[string]string) (bins, errs map[string]string) {
	bins, errs = map[string]string{}, map[string]string{}
	version := gitDescribe(root)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for name, pkg := range pkgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out := filepath.Join(dir, name)
			cmd := exec.CommandContext(ctx, "go", "build", "-o", out,
				"-ldflags", "-X "+modulePath+"/internal/version.Version="+version, pkg)
			cmd.Dir = root
			msg, err := cmd.CombinedOutput()
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs[name] = fmt.Sprintf("go build %s: %v: %s", pkg, err, lastLines(string(msg), 3))
				return
			}
			bins[name] = out
		}()
	}
	wg.Wait()
	return bins, errs
}

func gitDescribe(root string) string {
	cmd := exec.Command("git", "describe", "--always", "--dirty")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return "dev"
	}
	return strings.TrimSpace(string(out))
}

// buildInfo describes the machine and the code measured, for the report.
type buildInfo struct {
	Commit, GoVersion, Kernel, CPU string
	CPUs                           int
	Tools                          map[string]string
}

func collectBuildInfo(root string) buildInfo {
	bi := buildInfo{Commit: gitDescribe(root), GoVersion: runtime.Version(), CPUs: len(usableCPUsAtStart), Tools: map[string]string{}}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		bi.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for l := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(l, "model name"); ok {
				bi.CPU = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(v), ":"))
				break
			}
		}
	}
	for tool, args := range map[string][]string{"wrk": {"-v"}, "nginx": {"-v"}, "gunicorn": {"--version"}} {
		if p, err := exec.LookPath(tool); err == nil {
			out, _ := exec.Command(p, args...).CombinedOutput()
			first, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
			bi.Tools[tool] = first
		}
	}
	return bi
}

// usableCPUsAtStart is the runner's affinity before it pins itself.
var usableCPUsAtStart = usableCPUs()

// raiseNoFile lifts RLIMIT_NOFILE as far as allowed: the idle workload
// holds thousands of connections in the runner and in the server, which
// inherits the limit.
func raiseNoFile() (uint64, error) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("bench: getrlimit: %w", err)
	}
	want := uint64(1 << 17)
	if lim.Max < want {
		raised := unix.Rlimit{Cur: want, Max: want} // root may raise the hard limit
		if unix.Setrlimit(unix.RLIMIT_NOFILE, &raised) == nil {
			return want, nil
		}
	}
	lim.Cur = lim.Max
	if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		return lim.Cur, fmt.Errorf("bench: setrlimit: %w", err)
	}
	return lim.Cur, nil
}
