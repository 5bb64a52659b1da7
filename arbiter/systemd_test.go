package arbiter_test

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/multiserve/multiserve/internal/testserver"
	"github.com/multiserve/multiserve/internal/testwait"
)

// notifyMsg is one sd_notify datagram and the pid that sent it.
type notifyMsg struct {
	pid   int
	state string
}

// fakeSystemd is a NOTIFY_SOCKET the test reads, like systemd's.
type fakeSystemd struct {
	conn *net.UnixConn
	ch   chan notifyMsg
}

func newFakeSystemd(t *testing.T) *fakeSystemd {
	path := filepath.Join(t.TempDir(), "notify")
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := c.SyscallConn()
	raw.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_PASSCRED, 1) })
	f := &fakeSystemd{conn: c, ch: make(chan notifyMsg, 256)}
	go f.read()
	t.Cleanup(func() { c.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	return f
}

func (f *fakeSystemd) read() {
	buf, oob := make([]byte, 4096), make([]byte, 1024)
	for {
		n, oobn, _, _, err := f.conn.ReadMsgUnix(buf, oob)
		if err != nil {
			close(f.ch)
			return
		}
		m := notifyMsg{state: string(buf[:n])}
		if cms, err := unix.ParseSocketControlMessage(oob[:oobn]); err == nil && len(cms) > 0 {
			if cred, err := unix.ParseUnixCredentials(&cms[0]); err == nil {
				m.pid = int(cred.Pid)
			}
		}
		f.ch <- m
	}
}

// next returns the next message other than WATCHDOG=1, counting those.
func (f *fakeSystemd) next(t *testing.T, watchdogs *int) notifyMsg {
	t.Helper()
	for {
		select {
		case m := <-f.ch:
			if m.state == "WATCHDOG=1" {
				*watchdogs++
				continue
			}
			return m
		case <-time.After(30 * time.Second):
			t.Fatal("no sd_notify message within 30s")
		}
	}
}

func (f *fakeSystemd) expect(t *testing.T, watchdogs *int, pid int, prefix string) notifyMsg {
	t.Helper()
	m := f.next(t, watchdogs)
	if m.pid != pid || !strings.HasPrefix(m.state, prefix) {
		t.Fatalf("sd_notify: got %q from pid %d, want %q... from pid %d", m.state, m.pid, prefix, pid)
	}
	return m
}

// Under a fake NOTIFY_SOCKET: READY=1; RELOADING=1 with MONOTONIC_USEC
// then READY=1 around HUP; MAINPID= of the new arbiter on USR2, which
// itself sends MAINPID= and READY=1; STOPPING=1 from the old one on TERM;
// WATCHDOG=1 while workers are healthy, none once WINCH removed them all.
func TestSdNotify(t *testing.T) {
	skipShort(t)
	sd := newFakeSystemd(t)
	t.Setenv("WATCHDOG_USEC", "400000")
	cfg := testConfig("goroutine", 1)
	cfg.Timeout = 2 * time.Second // a 500ms tick
	m := startMaster(t, cfg, true)
	var wd int
	sd.expect(t, &wd, m.pid(), "READY=1")

	m.signal(syscall.SIGHUP)
	r := sd.expect(t, &wd, m.pid(), "RELOADING=1\nMONOTONIC_USEC=")
	var usec int64
	fmt.Sscanf(strings.SplitN(r.state, "MONOTONIC_USEC=", 2)[1], "%d", &usec)
	var now unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &now)
	if usec <= 0 || usec > now.Nano()/1000 {
		t.Errorf("MONOTONIC_USEC=%d, now %d", usec, now.Nano()/1000)
	}
	sd.expect(t, &wd, m.pid(), "READY=1")

	for wd == 0 {
		sd.expectWatchdog(t, &wd, m.pid())
	}

	m.signal(syscall.SIGUSR2)
	newPid := m.upgradedPid()
	sd.expect(t, &wd, m.pid(), fmt.Sprintf("MAINPID=%d", newPid))
	sd.expect(t, &wd, newPid, fmt.Sprintf("MAINPID=%d\nREADY=1", newPid))

	m.winchOld(newPid)
	m.signal(syscall.SIGTERM)
	sd.expect(t, &wd, m.pid(), "STOPPING=1")
	if code := m.wait(); code != 0 {
		t.Errorf("old arbiter exit %d", code)
	}
	syscall.Kill(newPid, syscall.SIGTERM)
	sd.expect(t, &wd, newPid, "STOPPING=1")
}

// expectWatchdog waits for a WATCHDOG=1 from pid.
func (f *fakeSystemd) expectWatchdog(t *testing.T, wd *int, pid int) {
	t.Helper()
	select {
	case m := <-f.ch:
		if m.state != "WATCHDOG=1" || m.pid != pid {
			t.Fatalf("want WATCHDOG=1 from %d, got %q from %d", pid, m.state, m.pid)
		}
		*wd++
	case <-time.After(30 * time.Second):
		t.Fatal("no WATCHDOG=1 within 30s")
	}
}

// WATCHDOG=1 stops when no worker is healthy.
func TestSdWatchdogNeedsAHealthyWorker(t *testing.T) {
	skipShort(t)
	sd := newFakeSystemd(t)
	t.Setenv("WATCHDOG_USEC", "200000")
	cfg := testConfig("goroutine", 1)
	cfg.Timeout = time.Second // a 250ms tick
	m := startMaster(t, cfg, true)
	var wd int
	sd.expect(t, &wd, m.pid(), "READY=1")
	sd.expectWatchdog(t, &wd, m.pid())
	m.signal(syscall.SIGWINCH)
	testwait.Until(t, waitLimit, "no workers", func() bool { return len(m.children()) == 0 })
	// Absence over four ticks (one may already be queued).
	late := 0
	deadline := time.After(time.Second)
	for done := false; !done; {
		select {
		case msg := <-sd.ch:
			if msg.state == "WATCHDOG=1" {
				late++
			}
		case <-deadline:
			done = true
		}
	}
	if late > 1 {
		t.Errorf("%d WATCHDOG=1 after every worker was gone", late)
	}
}

// Socket activation: LISTEN_FDS sockets are served instead of --bind (here
// --bind names the same port, so binding it would fail), and the socket
// survives the arbiter for systemd's next start.
func TestSocketActivation(t *testing.T) {
	skipShort(t)
	bin, err := testserver.Build(t.TempDir(), "./cmd/multiserve")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	lf, _ := ln.(*net.TCPListener).File()
	defer lf.Close()
	addr := ln.Addr().String()
	// LISTEN_PID must be the server's pid: set by the shell it execs from.
	cmd := exec.Command("sh", "-c", `LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=web exec "$0" "$@"`,
		bin, "-w", "2", "-b", addr, "echo")
	var out syncBuf
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.ExtraFiles = []*os.File{lf}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var waitErr error
	go func() { waitErr = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		if t.Failed() {
			t.Logf("log:\n%s", out.String())
		}
	})
	testwait.Until(t, waitLimit, "ready", func() bool { return strings.Contains(out.String(), "msg=ready ") })
	pid, err := echoPid(addr)
	if err != nil {
		t.Fatal(err)
	}
	if got := testserver.PPid(pid); got != cmd.Process.Pid {
		t.Errorf("answered by pid %d whose parent is %d, want a worker of %d", pid, got, cmd.Process.Pid)
	}
	if !strings.Contains(out.String(), "systemd:web") {
		t.Errorf("log does not name the activated socket systemd:web")
	}
	syscall.Kill(cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-done:
		if waitErr != nil {
			t.Errorf("exit: %v", waitErr)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no exit within 30s")
	}
	// systemd's socket (the test's) still accepts connections.
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("activated socket unusable after the server exited: %v", err)
	}
	c.Close()
}

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
