// Package control is the arbiter's control socket and the `multiserve ctl`
// client that talks to it.
//
// # Protocol
//
// A unix stream socket at control_socket, mode 0600; the arbiter also
// checks each connection's peer credentials (SO_PEERCRED) and refuses any
// uid other than its own (root is always let in: it could signal the
// arbiter anyway). One request per connection: the client writes one line,
// the verb's words separated by spaces, and reads one line back, a JSON
// object:
//
//	→ worker add 2
//	← {"ok":true,"result":{"target":4}}
//	← {"ok":false,"error":"unknown verb \"frob\" (verbs: show workers, ...)"}
//
// Verbs (gunicorn's control-client names where they exist):
//
//	show workers      one record per worker (stats.WorkerStatus)
//	show stats        pool summary, per-class totals, restarts, accept queues
//	show config       the current generation's resolved configuration
//	worker add N      N more workers (TTIN N times)
//	worker remove N   N fewer, oldest first (TTOU N times; never below 1)
//	reload            HUP: new generation with the re-read configuration
//	reopen            USR1: reopen log files, in the arbiter and workers
//	shutdown          TERM: graceful stop (answered before the stop begins)
package control

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/multiserve/multiserve/config"
	"github.com/multiserve/multiserve/scoreboard"
	"github.com/multiserve/multiserve/stats"
)

// Arbiter is what the control socket drives. Every method must be safe to
// call from the socket's goroutines (the arbiter forwards them to its loop).
type Arbiter interface {
	stats.Source
	// Config is the current generation's configuration.
	Config() (*config.Config, error)
	// Scale changes the target worker count by delta and returns the new
	// target.
	Scale(delta int) (int, error)
	Reload() error
	Reopen() error
	Shutdown() error
}

// Response is the one JSON line the server answers with.
type Response struct {
	OK     bool            `json:"ok"`
	Error  string          `json:"error,omitempty"`
	Result json.RawMessage `json:"result,omitempty"`
}

// Verbs lists the accepted commands, for help and error messages.
var Verbs = []string{"show workers", "show stats", "show config", "worker add N", "worker remove N", "reload", "reopen", "shutdown"}

// Server is a listening control socket.
type Server struct {
	ln    *net.UnixListener
	path  string
	arb   Arbiter
	board *scoreboard.Board
	log   *slog.Logger
	wg    sync.WaitGroup
	// allowUID reports whether a peer uid may use the socket (tests pass
	// their own to exercise the refusal without a second user).
	allowUID func(uid uint32) bool
}

// Listen creates the socket at path (removing a stale one) with mode 0600
// and serves it in the background until Close.
func Listen(path string, arb Arbiter, board *scoreboard.Board, log *slog.Logger) (*Server, error) {
	me := uint32(os.Geteuid())
	return listen(path, arb, board, log, func(uid uint32) bool { return uid == me || uid == 0 })
}

func listen(path string, arb Arbiter, board *scoreboard.Board, log *slog.Logger, allowUID func(uint32) bool) (*Server, error) {
	if err := removeStale(path); err != nil {
		return nil, err
	}
	// The umask makes the socket 0600 from its creation: no window in
	// which another user could connect.
	old := syscall.Umask(0o177)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("control: listen %s: %w", path, err)
	}
	ln.SetUnlinkOnClose(true)
	s := &Server{ln: ln, path: path, arb: arb, board: board, log: log, allowUID: allowUID}
	s.wg.Add(1)
	go s.serve()
	log.Info("control socket listening", "path", path)
	return s, nil
}

// removeStale unlinks a socket left by a dead arbiter; a live one is an
// error (two arbiters must not share a control socket).
func removeStale(path string) error {
	st, err := os.Lstat(path)
	if err != nil {
		return nil
	}
	if st.Mode()&os.ModeSocket == 0 {
		return fmt.Errorf("control: %s exists and is not a socket", path)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return fmt.Errorf("control: %s is in use by another process", path)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("control: remove stale %s: %w", path, err)
	}
	return nil
}

// Close stops accepting, waits for the connections in progress and
// removes the socket file.
func (s *Server) Close() error {
	if s == nil {
		return nil
	}
	err := s.ln.Close()
	s.wg.Wait()
	return err
}

func (s *Server) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.AcceptUnix()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Error("control socket accept", "err", err)
			}
			return
		}
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.handle(c)
		}()
	}
}

// handle answers one request on c.
func (s *Server) handle(c *net.UnixConn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(30 * time.Second))
	uid, err := peerUID(c)
	if err != nil || !s.allowUID(uid) {
		s.log.Warn("control socket: connection refused", "uid", uid, "err", err)
		writeResponse(c, Response{Error: fmt.Sprintf("permission denied: uid %d may not control this arbiter", uid)})
		return
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil && line == "" {
		return
	}
	words := strings.Fields(line)
	s.log.Info("control command", "command", strings.Join(words, " "), "uid", uid)
	result, after, err := s.dispatch(words)
	if err != nil {
		writeResponse(c, Response{Error: err.Error()})
		return
	}
	raw, err := json.Marshal(result)
	if err != nil {
		writeResponse(c, Response{Error: "encode result: " + err.Error()})
		return
	}
	writeResponse(c, Response{OK: true, Result: raw})
	if after != nil {
		after() // shutdown: answered first
	}
}

func writeResponse(c net.Conn, r Response) {
	b, _ := json.Marshal(r)
	_, _ = c.Write(append(b, '\n'))
}

func peerUID(c *net.UnixConn) (uint32, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *unix.Ucred
	var gerr error
	if err := rc.Control(func(fd uintptr) {
		cred, gerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return 0, err
	}
	if gerr != nil {
		return 0, fmt.Errorf("SO_PEERCRED: %w", gerr)
	}
	return cred.Uid, nil
}

// dispatch runs a verb. after, if set, runs once the answer is written.
func (s *Server) dispatch(words []string) (result any, after func(), err error) {
	verb := strings.Join(words, " ")
	switch {
	case verb == "show workers":
		st, err := stats.Collect(s.arb, s.board)
		if err != nil {
			return nil, nil, err
		}
		return st.Workers, nil, nil
	case verb == "show stats":
		st, err := stats.Collect(s.arb, s.board)
		if err != nil {
			return nil, nil, err
		}
		return statsView(st), nil, nil
	case verb == "show config":
		cfg, err := s.arb.Config()
		return cfg, nil, err
	case len(words) == 3 && words[0] == "worker" && (words[1] == "add" || words[1] == "remove"):
		n, err := strconv.Atoi(words[2])
		if err != nil || n < 1 {
			return nil, nil, fmt.Errorf("worker %s: N must be a positive integer, got %q", words[1], words[2])
		}
		if words[1] == "remove" {
			n = -n
		}
		target, err := s.arb.Scale(n)
		return map[string]int{"target": target}, nil, err
	case verb == "reload":
		return map[string]string{"status": "reloading"}, nil, s.arb.Reload()
	case verb == "reopen":
		return map[string]string{"status": "reopened"}, nil, s.arb.Reopen()
	case verb == "shutdown":
		return map[string]string{"status": "shutting down"}, func() {
			if err := s.arb.Shutdown(); err != nil {
				s.log.Error("control: shutdown", "err", err)
			}
		}, nil
	}
	return nil, nil, fmt.Errorf("unknown command %q (commands: %s)", verb, strings.Join(Verbs, ", "))
}

// StatsView is `show stats`: the Status without the per-worker rows.
type StatsView struct {
	Class     string                       `json:"class"`
	Target    int                          `json:"target"`
	Draining  bool                         `json:"draining"`
	Summary   stats.Summary                `json:"summary"`
	Classes   map[string]stats.ClassTotals `json:"classes"`
	Restarts  stats.Restarts               `json:"restarts"`
	Listeners []stats.ListenerStatus       `json:"listeners"`
}

func statsView(st *stats.Status) StatsView {
	return StatsView{Class: st.Class, Target: st.Target, Draining: st.Draining, Summary: st.Summary,
		Classes: st.Classes, Restarts: st.Restarts, Listeners: st.Listeners}
}
