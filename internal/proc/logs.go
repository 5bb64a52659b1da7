package proc

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Log files. The arbiter opens the error and access log files itself (it
// keeps the identity it started with; workers may run as a user that
// cannot open them) and hands each worker the descriptors, numbered in
// EnvLogFDs, plus one end of a SOCK_SEQPACKET socket pair. After USR1 the
// arbiter reopens the files and sends the new descriptors on that socket
// (SCM_RIGHTS), one message per reopen.
const EnvLogFDs = "MULTISERVE_LOG_FDS" // "ERROR,ACCESS,SOCKET"; -1 for a log that is not a file

// LogFDs are a worker's inherited log descriptors; -1 means none (the
// log is a standard stream or off).
type LogFDs struct {
	Error, Access, Socket int
}

// NoLogFDs is a worker that inherited no log file.
var NoLogFDs = LogFDs{Error: -1, Access: -1, Socket: -1}

// Env is the KEY=VALUE entry for os/exec.
func (l LogFDs) Env() string {
	return fmt.Sprintf("%s=%d,%d,%d", EnvLogFDs, l.Error, l.Access, l.Socket)
}

// ParseLogFDs reads EnvLogFDs; absent means NoLogFDs.
func ParseLogFDs(getenv func(string) string) (LogFDs, error) {
	v := getenv(EnvLogFDs)
	if v == "" {
		return NoLogFDs, nil
	}
	parts := strings.Split(v, ",")
	if len(parts) != 3 {
		return NoLogFDs, fmt.Errorf("proc: %s=%q: want ERROR,ACCESS,SOCKET", EnvLogFDs, v)
	}
	var fds [3]int
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < -1 {
			return NoLogFDs, fmt.Errorf("proc: %s=%q: bad descriptor %q", EnvLogFDs, v, p)
		}
		fds[i] = n
	}
	return LogFDs{Error: fds[0], Access: fds[1], Socket: fds[2]}, nil
}

// Tags of the descriptors in a reopen message, one byte each, in the
// order of the SCM_RIGHTS array.
const (
	logTagError  = 'e'
	logTagAccess = 'a'
)

// SendLogFiles sends reopened log files on the arbiter's end (fd) of a
// worker's log socket; a nil file is not sent. It never blocks: a worker
// that stopped reading loses the message, not the arbiter its loop.
func SendLogFiles(fd int, errlog, access *os.File) error {
	var tags []byte
	var fds []int
	for _, f := range []struct {
		tag byte
		f   *os.File
	}{{logTagError, errlog}, {logTagAccess, access}} {
		if f.f != nil {
			tags = append(tags, f.tag)
			fds = append(fds, int(f.f.Fd()))
		}
	}
	if len(fds) == 0 {
		return nil
	}
	if err := unix.Sendmsg(fd, tags, unix.UnixRights(fds...), nil, unix.MSG_DONTWAIT); err != nil {
		return fmt.Errorf("proc: send log files: %w", err)
	}
	return nil
}

// RecvLogFiles waits for the next reopen message on a worker's log socket
// and returns the files it carried (nil for one not sent). io.EOF-like
// errors mean the arbiter closed its end.
func RecvLogFiles(c *net.UnixConn) (errlog, access *os.File, err error) {
	tags := make([]byte, 8)
	oob := make([]byte, unix.CmsgSpace(8*4))
	n, oobn, _, _, err := c.ReadMsgUnix(tags, oob)
	if err != nil {
		return nil, nil, err
	}
	if n == 0 && oobn == 0 {
		return nil, nil, errors.New("proc: log socket closed")
	}
	var fds []int
	msgs, err := unix.ParseSocketControlMessage(oob[:oobn])
	if err != nil {
		return nil, nil, fmt.Errorf("proc: log files message: %w", err)
	}
	for _, m := range msgs {
		got, err := unix.ParseUnixRights(&m)
		if err != nil {
			return nil, nil, fmt.Errorf("proc: log files message: %w", err)
		}
		fds = append(fds, got...)
	}
	for i, fd := range fds {
		unix.CloseOnExec(fd)
		f := os.NewFile(uintptr(fd), "log")
		switch {
		case i < n && tags[i] == logTagError:
			errlog = f
		case i < n && tags[i] == logTagAccess:
			access = f
		default:
			f.Close()
		}
	}
	return errlog, access, nil
}
