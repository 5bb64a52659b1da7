package workerstest

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// H1Probe runs ../shared/h1probe/h1probe.py (relative to the module root)
// against addr and fails the test unless every case passes. strict judges
// the RFC's "either" cases by gunicorn's stricter choice; extra flags are
// passed on to h1probe. It skips when python3 or the probe is
// missing, and in -short mode.
func H1Probe(t *testing.T, addr string, strict bool, extra ...string) {
	t.Helper()
	if testing.Short() {
		t.Skip("h1probe skipped in -short mode")
	}
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed: h1probe skipped")
	}
	script, err := probeScript()
	if err != nil {
		t.Skipf("h1probe not found: %v", err)
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("h1probe: address %q: %v", addr, err)
	}
	args := []string{script, "--host", host, "--port", port, "--jobs", "8"}
	if strict {
		args = append(args, "--strict")
	}
	args = append(args, extra...)
	out, err := exec.Command(py, args...).CombinedOutput()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	summary := lines[len(lines)-1]
	if err != nil {
		t.Errorf("h1probe (strict=%v) against %s: %v\n%s", strict, addr, err, out)
		return
	}
	t.Logf("h1probe (strict=%v): %s", strict, summary)
}

func probeScript() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", err
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", os.ErrNotExist
	}
	p := filepath.Join(filepath.Dir(gomod), "..", "shared", "h1probe", "h1probe.py")
	if _, err := os.Stat(p); err != nil {
		return "", err
	}
	return p, nil
}
