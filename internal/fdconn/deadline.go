package fdconn

import (
	"os"
	"runtime"
	stdsync "sync"
	"time"

	"golang.org/x/sys/unix"
)

// forever is the kernel timeout that stands for "no deadline". It is not 0
// (the kernel's "never") because only a socket call with a timeout fails
// with EINTR when a signal arrives; without one the kernel restarts it
// (SA_RESTART), and kick could not reach it.
const forever = 24 * time.Hour

// direction is the deadline state of one half of the connection. Each half
// has its own lock so a reader and a writer never wait for each other.
type direction struct {
	mu       stdsync.Mutex
	deadline time.Time     // zero: none
	opt      int           // unix.SO_RCVTIMEO or unix.SO_SNDTIMEO
	kernel   time.Duration // the socket's timeout now; 0: never set
	callEnd  time.Time     // when the call in progress times out
	tid      int           // thread in the system call now, 0 if none
}

// lockThread pins the calling goroutine to its thread for one call, so
// that the thread id a deadline change signals is the one in the kernel.
func (c *Conn) lockThread() int {
	runtime.LockOSThread()
	if c.thread != 0 {
		return c.thread
	}
	return unix.Gettid()
}

// enter makes sure the socket's kernel timeout (which applies afresh to
// each blocking call) ends the call near the deadline, then records that
// thread tid is about to block. It returns os.ErrDeadlineExceeded when the
// deadline has passed.
func (d *direction) enter(fd, tid int) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := time.Now()
	remaining := forever
	if !d.deadline.IsZero() {
		remaining = d.deadline.Sub(now)
		if remaining <= 0 {
			return os.ErrDeadlineExceeded
		}
	}
	if !d.fits(remaining) {
		if err := setTimeout(fd, d.opt, remaining); err != nil {
			return err
		}
		d.kernel = remaining
	}
	d.callEnd, d.tid = now.Add(d.kernel), tid
	return nil
}

// setTimeout sets the socket option opt (SO_RCVTIMEO or SO_SNDTIMEO) of
// fd to d.
func setTimeout(fd, opt int, d time.Duration) error {
	tv := unix.NsecToTimeval(d.Nanoseconds())
	if tv.Sec == 0 && tv.Usec == 0 {
		tv.Usec = 1 // zero would mean "no timeout"
	}
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, opt, &tv); err != nil {
		return os.NewSyscallError("setsockopt", err)
	}
	return nil
}

// fits reports whether the timeout already in the kernel will do for a
// call that may wait remaining: it overshoots by at most 1/64, and fires
// no earlier than half way (an early timeout only costs a re-arm: the
// callers retry EAGAIN before the deadline). Engines move the deadline on
// every request, by the same amount: this spares a setsockopt(2) for each.
func (d *direction) fits(remaining time.Duration) bool {
	k := d.kernel
	return k > 0 && k <= remaining+remaining/64 && k >= remaining/2
}

// leave records that the system call returned.
func (d *direction) leave() {
	d.mu.Lock()
	d.tid = 0
	d.mu.Unlock()
}

func (d *direction) expired() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return !d.deadline.IsZero() && !time.Now().Before(d.deadline)
}

// set changes the deadline. If a call is blocked in the kernel with a
// timeout that ends later than t, set interrupts it with SIGURG (the Go
// runtime's own preemption signal, which every Go program tolerates): the
// call fails with EINTR, and the caller's loop re-arms with t. A signal
// that lands just before the thread enters the kernel is lost, so set
// repeats it, backing off, until the call has re-armed or left.
func (d *direction) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.deadline = t
	wait := 10 * time.Microsecond
	for try := 0; try < 200 && d.stale(); try++ {
		tid := d.tid
		d.mu.Unlock()
		_ = unix.Tgkill(os.Getpid(), tid, unix.SIGURG)
		time.Sleep(wait)
		wait = min(2*wait, 5*time.Millisecond)
		d.mu.Lock()
	}
}

// stale reports whether a call is in the kernel with a timeout that ends
// after the current deadline.
func (d *direction) stale() bool {
	return d.tid != 0 && !d.deadline.IsZero() && d.callEnd.After(d.deadline)
}
