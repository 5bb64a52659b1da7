package arbiter_test

import (
	"errors"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/multiserve/multiserve/internal/testwait"
)

// HUP applies bind changes: an added address is bound by the arbiter and
// served by the new generation; a removed one is closed once the old
// generation retired (its unix path removed); a HUP naming an address that
// cannot be bound changes nothing and says why. In reuse_port mode too,
// where the arbiter holds port reservations and each worker its own socket.
func TestReloadRebinds(t *testing.T) {
	skipShort(t)
	for _, reusePort := range []bool{false, true} {
		t.Run(map[bool]string{false: "shared", true: "reuse_port"}[reusePort], func(t *testing.T) {
			testRebind(t, reusePort)
		})
	}
}

func testRebind(t *testing.T, reusePort bool) {
	cfg := testConfig("goroutine+net/http", 1)
	cfg.ReusePort = reusePort
	m := startMaster(t, cfg, true)
	first := m.addrs[0]
	sock := t.TempDir() + "/new.sock"
	second := freeTCP(t)

	// Add second and a unix socket, remove first.
	gen1 := m.children()
	cfg.Bind = []string{second, "unix:" + sock}
	m.writeConfig(cfg)
	m.signal(syscall.SIGHUP)
	m.waitLog("reload complete")
	retired(t, gen1)
	m.waitLog("closed listener no generation serves any more: " + first)
	for _, c := range []struct{ name, url string }{{second, "http://" + second + "/"}, {sock, "http://unix/"}} {
		cl := client
		if c.name == sock {
			cl = unixClient(sock)
		}
		resp, err := cl.Get(c.url)
		if err != nil {
			t.Fatalf("the added %s does not serve: %v", c.name, err)
		}
		resp.Body.Close()
	}
	if c, err := net.DialTimeout("tcp", first, 5*time.Second); err == nil {
		c.Close()
		t.Fatalf("the removed %s still accepts after the old generation retired", first)
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("the removed %s: %v, want connection refused", first, err)
	}

	// An address in use: nothing changes, the log says why.
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	gen2 := m.children()
	cfg.Bind = []string{second, taken.Addr().String()}
	m.writeConfig(cfg)
	m.signal(syscall.SIGHUP)
	m.waitLog("address already in use")
	if log := m.logText(); !strings.Contains(log, "reload: nothing changed") || !strings.Contains(log, taken.Addr().String()) {
		t.Fatalf("the failed bind is not logged with the address:\n%s", log)
	}
	if _, err := unixClient(sock).Get("http://unix/"); err != nil {
		t.Fatalf("after a failed rebind the unix socket stopped serving: %v", err)
	}
	if kids := m.children(); !sameSet(kids, gen2) {
		t.Fatalf("a failed rebind changed the workers: %v, before %v", kids, gen2)
	}

	// Remove the unix socket: its path goes with it.
	cfg.Bind = []string{second}
	m.writeConfig(cfg)
	m.signal(syscall.SIGHUP)
	retired(t, gen2)
	testwait.Until(t, waitLimit, "the removed unix socket's path gone", func() bool {
		_, err := os.Stat(sock)
		return errors.Is(err, os.ErrNotExist)
	})
	if resp, err := client.Get("http://" + second + "/"); err != nil {
		t.Fatalf("the kept %s stopped serving: %v", second, err)
	} else {
		resp.Body.Close()
	}
}

// freeTCP is a loopback address with a port nothing listens on.
func freeTCP(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// retired waits until every pid of gen exited.
func retired(t *testing.T, gen map[int]bool) {
	t.Helper()
	testwait.Until(t, waitLimit, "the old generation gone", func() bool {
		for pid := range gen {
			if alive(pid) {
				return false
			}
		}
		return true
	})
}

func sameSet(a, b map[int]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if !b[k] {
			return false
		}
	}
	return true
}
