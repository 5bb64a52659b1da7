package control

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/multiserve/multiserve/config"
	"github.com/multiserve/multiserve/internal/testserver"
	"github.com/multiserve/multiserve/stats"
)

type fakeArb struct {
	mu       sync.Mutex
	target   int
	calls    []string
	shutdown chan struct{}
}

func (f *fakeArb) record(s string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, s)
}

func (f *fakeArb) Snapshot() (stats.Snapshot, error) {
	return stats.Snapshot{ArbiterPID: os.Getpid(), Class: "sync", Target: f.target, Booted: true,
		Workers: []stats.Worker{{PID: os.Getpid(), Age: 1, Class: "sync", Slot: -1, Ready: true, Spawned: time.Now()}}}, nil
}
func (f *fakeArb) Config() (*config.Config, error) {
	return &config.Config{Workers: 3, WorkerClass: "sync"}, nil
}
func (f *fakeArb) Scale(d int) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.target = max(1, f.target+d)
	return f.target, nil
}
func (f *fakeArb) Reload() error   { f.record("reload"); return nil }
func (f *fakeArb) Reopen() error   { f.record("reopen"); return nil }
func (f *fakeArb) Shutdown() error { close(f.shutdown); return nil }

func start(t *testing.T, dir string) (*Server, *fakeArb, string) {
	t.Helper()
	path := filepath.Join(dir, "ctl.sock")
	arb := &fakeArb{target: 2, shutdown: make(chan struct{})}
	s, err := Listen(path, arb, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, arb, path
}

func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(args, &out, &errb)
	return code, out.String(), errb.String()
}

func TestVerbs(t *testing.T) {
	_, arb, path := start(t, t.TempDir())
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v %v", st.Mode(), err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"show", "workers"}, "STATE"},
		{[]string{"show", "stats"}, "class sync, target 2"},
		{[]string{"show", "config"}, `"workers": 3`},
		{[]string{"worker", "add", "2"}, "target: 4"},
		{[]string{"worker", "remove", "1"}, "target: 3"},
		{[]string{"reload"}, "reloading"},
		{[]string{"reopen"}, "reopened"},
		{[]string{"--json", "show", "workers"}, `"pid": ` + strconv.Itoa(os.Getpid())},
		{[]string{"--json", "worker", "add", "1"}, `"target": 4`},
	} {
		code, out, errs := run(t, append([]string{"--socket", path}, tc.args...)...)
		if code != 0 || !strings.Contains(out, tc.want) {
			t.Errorf("%v: code %d, out %q, err %q; want %q", tc.args, code, out, errs, tc.want)
		}
	}
	if got := strings.Join(arb.calls, ","); got != "reload,reopen" {
		t.Errorf("calls %s", got)
	}
	for _, bad := range [][]string{{"frob"}, {"worker", "add", "x"}, {"worker", "remove", "0"}} {
		code, _, errs := run(t, append([]string{"--socket", path}, bad...)...)
		if code != 1 || !strings.Contains(errs, "multiserve ctl: control:") {
			t.Errorf("%v: code %d err %q", bad, code, errs)
		}
	}
	if code, _, _ := run(t, "show", "workers"); code != 2 {
		t.Errorf("no socket: code %d", code)
	}
	code, out, _ := run(t, "--socket", path, "shutdown")
	if code != 0 || !strings.Contains(out, "shutting down") {
		t.Fatalf("shutdown: %d %q", code, out)
	}
	select {
	case <-arb.shutdown:
	case <-time.After(10 * time.Second):
		t.Fatal("Shutdown not called")
	}
}

func TestStaleSocketReplacedLiveRefused(t *testing.T) {
	dir := t.TempDir()
	s, _, path := start(t, dir)
	if _, err := Listen(path, &fakeArb{}, nil, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second Listen on a live socket: %v", err)
	}
	s.Close()
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Fatalf("socket not removed at Close: %v", err)
	}
}

// TestRefusesOtherUsers runs the client as nobody in a real process:
// against the 0600 socket connect() itself fails, and with the mode opened
// up the SO_PEERCRED check refuses the command.
func TestRefusesOtherUsers(t *testing.T) {
	if os.Getenv("CONTROL_CLIENT") == "1" {
		os.Exit(Main(os.Args[len(os.Args)-3:], os.Stdout, os.Stderr))
	}
	uid, gid := testserver.Nobody(t)
	// t.TempDir's parent is 0700: nobody needs a directory it can reach.
	dir, err := os.MkdirTemp("", "control-test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// The test binary must be reachable by nobody.
	bin := filepath.Join(dir, "control.test")
	copyFile(t, os.Args[0], bin)
	s, arb, path := start(t, dir)
	asNobody := func() (string, error) {
		cmd := exec.Command(bin, "-test.run=^TestRefusesOtherUsers$", "--", "--socket", path, "reload")
		cmd.Env = append(os.Environ(), "CONTROL_CLIENT=1")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := asNobody()
	if err == nil || !strings.Contains(out, "permission denied") {
		t.Fatalf("nobody against 0600: err %v, out %q", err, out)
	}
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	out, err = asNobody()
	if err == nil || !strings.Contains(out, "uid "+strconv.Itoa(uid)+" may not control") {
		t.Fatalf("nobody past the mode: err %v, out %q", err, out)
	}
	arb.mu.Lock()
	defer arb.mu.Unlock()
	if len(arb.calls) != 0 {
		t.Fatalf("a refused client ran %v", arb.calls)
	}
	_ = s
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
}

func TestResponseJSON(t *testing.T) {
	b, _ := json.Marshal(Response{OK: true, Result: json.RawMessage(`{"a":1}`)})
	if string(b) != `{"ok":true,"result":{"a":1}}` {
		t.Fatal(string(b))
	}
}
