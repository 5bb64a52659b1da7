package arbiter

import (
	"fmt"
	"os"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/multiserve/multiserve/config"
	"github.com/multiserve/multiserve/internal/logfile"
	"github.com/multiserve/multiserve/internal/proc"
)

// Log files for the workers. The arbiter opens the error and access log
// files and hands workers the descriptors, as gunicorn's master does:
// workers may run as a user (--user) that cannot open a root-owned log
// path, and the arbiter keeps its own identity. After USR1 it reopens
// them and sends each worker the new descriptors on the worker's log
// socket (proc.SendLogFiles).

// logFiles are the open log files, by path.
type logFiles map[string]*os.File

// isFile: the path names a file, not a standard stream or "off".
func isFile(path string) bool { return path != "" && path != "-" }

// get returns the open file for path, opening it the first time; nil for
// a standard stream or an empty path.
func (l logFiles) get(path string) (*os.File, error) {
	if !isFile(path) {
		return nil, nil
	}
	if f := l[path]; f != nil {
		return f, nil
	}
	f, err := logfile.OpenAppend(path)
	if err != nil {
		return nil, err
	}
	l[path] = f
	return f, nil
}

// checkLogPaths: the arbiter (which opens every log file) can open them;
// nothing is created.
func checkLogPaths(cfg *config.Config) error {
	// The pidfile is written next to its path and renamed onto it: the
	// same test tells whether that can work.
	for _, p := range []struct{ key, path string }{
		{"errorlog", cfg.Errorlog}, {"accesslog", cfg.Accesslog}, {"pidfile", cfg.Pidfile},
	} {
		if err := logfile.Check(p.path); err != nil {
			return withCode(proc.ExitUsage, fmt.Errorf("%s: %w", p.key, err))
		}
	}
	return nil
}

// openFor opens cfg's log files before anything is bound, so a path the
// arbiter cannot write fails the start with exit 2.
func (l logFiles) openFor(cfg *config.Config) error {
	for _, p := range []string{cfg.Errorlog, cfg.Accesslog} {
		if _, err := l.get(p); err != nil {
			return withCode(proc.ExitUsage, err)
		}
	}
	return nil
}

// reopen opens every path again (logrotate moved the files) and closes
// the old files; a path that fails keeps its old file. Paths no live
// generation uses any more are closed.
func (l logFiles) reopen(inUse map[string]bool) []error {
	var errs []error
	for path, old := range l {
		if !inUse[path] {
			old.Close()
			delete(l, path)
			continue
		}
		nf, err := logfile.OpenAppend(path)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		old.Close()
		l[path] = nf
	}
	return errs
}

func (l logFiles) closeAll() {
	for path, f := range l {
		f.Close()
		delete(l, path)
	}
}

// workerLogs are the files a worker inherits for its logs: the error and
// access log files of its generation and its end of the log socket, to
// append to ExtraFiles from index base on; mine is the arbiter's end.
type workerLogs struct {
	fds   proc.LogFDs
	files []*os.File // to hand over; the caller closes sock's worker end after Start
	mine  *os.File
	peer  *os.File
}

func (a *arbiter) workerLogs(g *generation, base int) (*workerLogs, error) {
	wl := &workerLogs{fds: proc.NoLogFDs}
	errf, err := a.logs.get(g.cfg.Errorlog)
	if err != nil {
		return nil, fmt.Errorf("arbiter: error log: %w", err)
	}
	accf, err := a.logs.get(g.cfg.Accesslog)
	if err != nil {
		return nil, fmt.Errorf("arbiter: access log: %w", err)
	}
	if errf == nil && accf == nil {
		return wl, nil
	}
	add := func(f *os.File) int {
		wl.files = append(wl.files, f)
		return 3 + base + len(wl.files) - 1
	}
	if errf != nil {
		wl.fds.Error = add(errf)
	}
	if accf != nil {
		wl.fds.Access = add(accf)
	}
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("arbiter: log socket: %w", err)
	}
	wl.mine, wl.peer = os.NewFile(uintptr(fds[0]), "log socket"), os.NewFile(uintptr(fds[1]), "log socket")
	wl.fds.Socket = add(wl.peer)
	return wl, nil
}

// sendLogs hands a worker the reopened files of its generation.
func (a *arbiter) sendLogs(w *worker) {
	if w.logSock == nil {
		return
	}
	errf, _ := a.logs.get(w.gen.cfg.Errorlog)
	accf, _ := a.logs.get(w.gen.cfg.Accesslog)
	if err := proc.SendLogFiles(int(w.logSock.Fd()), errf, accf); err != nil {
		a.log.Warn("worker keeps its old log files", "pid", w.pid, "err", err)
	}
}

// reopenLogs handles USR1: the arbiter's own files, the workers' files
// (sent to each worker), then USR1 to every worker for anything else the
// application reopens.
func (a *arbiter) reopenLogs() {
	if a.opt.ReopenLogs != nil {
		if err := a.opt.ReopenLogs(); err != nil {
			a.log.Error("reopen logs", "err", err)
		}
	}
	inUse := map[string]bool{}
	for _, g := range a.liveGenerations() {
		inUse[g.cfg.Errorlog], inUse[g.cfg.Accesslog] = true, true
	}
	for _, err := range a.logs.reopen(inUse) {
		a.log.Error("reopen log file, keeping the old one", "err", err)
	}
	if a.capture != nil {
		for _, err := range a.capture.reopen(inUse) {
			a.log.Error("reopen log file for worker output, keeping the old one", "err", err)
		}
	}
	for _, w := range a.workers {
		a.sendLogs(w)
		a.signal(w, syscall.SIGUSR1)
	}
}

// liveGenerations are the generations with workers, plus the current and
// a pending one.
func (a *arbiter) liveGenerations() []*generation {
	gens := []*generation{a.gen}
	if a.pending != nil {
		gens = append(gens, a.pending)
	}
	for _, w := range a.workers {
		gens = append(gens, w.gen)
	}
	return gens
}
