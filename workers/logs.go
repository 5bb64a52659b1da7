package workers

import (
	"fmt"
	"net"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/multiserve/multiserve/internal/logfile"
	"github.com/multiserve/multiserve/internal/proc"
)

// A worker writes its error and access logs to descriptors the arbiter
// opened for it (proc.LogFDs): the worker may run as a user that cannot
// open the paths. After USR1 the arbiter sends the reopened files on the
// log socket and followLogs swaps them in.

// accessLog is this worker's access log destination, once the runtime
// opened it; nil when accesslog is off or outside a worker.
var accessLog atomic.Pointer[logfile.File]

// AccessLog returns the worker's access log destination (the file the
// arbiter opened, or stdout for "-"), or nil when accesslog is off. The
// access log middleware writes to it; the runtime keeps it current after
// a reopen.
func AccessLog() *logfile.File { return accessLog.Load() }

// openLogs opens the error log and the access log from the inherited
// descriptors, or the standard streams, and follows reopens.
func (rt *runtime) openLogs() error {
	fds, err := proc.ParseLogFDs(os.Getenv)
	if err != nil {
		return err
	}
	rt.logFDs = fds
	for _, fd := range []int{fds.Error, fds.Access, fds.Socket} {
		if fd >= 0 {
			unix.CloseOnExec(fd) // not for what the application execs
		}
	}
	if rt.logf, err = logDestination(fds.Error, rt.cfg.Errorlog, os.Stderr); err != nil {
		return fmt.Errorf("error log: %w", err)
	}
	if rt.cfg.Accesslog != "" {
		acc, err := logDestination(fds.Access, rt.cfg.Accesslog, os.Stdout)
		if err != nil {
			return fmt.Errorf("access log: %w", err)
		}
		accessLog.Store(acc)
	}
	if fds.Socket >= 0 {
		go rt.followLogs(fds.Socket)
	}
	return nil
}

// logDestination wraps the inherited descriptor fd, or opens path itself
// when none was handed over (a standard stream, or a worker started
// outside an arbiter).
func logDestination(fd int, path string, std *os.File) (*logfile.File, error) {
	if fd >= 0 {
		return logfile.Inherit(os.NewFile(uintptr(fd), path), path), nil
	}
	return logfile.Open(path, std)
}

// followLogs swaps in the files the arbiter reopened, until it closes its
// end of the log socket.
func (rt *runtime) followLogs(fd int) {
	f := os.NewFile(uintptr(fd), "log socket")
	c, err := net.FileConn(f)
	f.Close()
	if err != nil {
		rt.log.Error("log socket", "err", err)
		return
	}
	defer c.Close()
	uc, ok := c.(*net.UnixConn)
	if !ok {
		rt.log.Error("log socket is not a unix socket")
		return
	}
	for {
		errf, accf, err := proc.RecvLogFiles(uc)
		if err != nil {
			return
		}
		rt.swapLog(rt.logf, errf)
		rt.swapLog(AccessLog(), accf)
		// The first line in the new error log: an operator (or a test)
		// rotating logs can see that every worker has moved over.
		rt.log.Info("log files reopened")
	}
}

func (rt *runtime) swapLog(dst *logfile.File, f *os.File) {
	if f == nil {
		return
	}
	if dst == nil {
		f.Close()
		return
	}
	if err := dst.Replace(f); err != nil {
		rt.log.Error("switch to reopened log file", "err", err)
	}
}
