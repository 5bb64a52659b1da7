package arbiter

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/multiserve/multiserve/internal/logfile"
)

// capture_output: a worker's stdout and stderr are the write end of one
// pipe, and the arbiter copies each line, prefixed with the worker's pid,
// to the error log of the worker's generation (stderr for "-").
//
// A worker must never wait for the error log: one reader per worker drains
// its pipe into a queue shared by all workers and bounded in lines, and a
// line that finds the queue full is dropped and counted; one writer empties
// the queue and reports the count with its next line. Memory is bounded by
// captureQueue lines of at most captureLineMax bytes.
const (
	captureLineMax = 4 << 10 // a longer line is split into pieces of this size
	captureQueue   = 1024
)

type capturedLine struct {
	dest *logfile.File
	pid  int
	text []byte
}

// capture is created at the first worker spawned with capture_output.
// Its destinations are shared with the writer, hence the mutex; the loop
// opens and reopens them.
type capture struct {
	queue   chan capturedLine
	dropped atomic.Int64
	mu      sync.Mutex
	dests   map[string]*logfile.File // error log path → destination
}

// captureOutput points cmd's stdout and stderr at a new pipe when g
// captures output, and returns what captureStarted needs; nil when g does
// not capture or the pipe cannot be made (then the worker writes to the
// arbiter's streams, as without capture_output, and the log says why).
func (a *arbiter) captureOutput(cmd *exec.Cmd, g *generation) *capturePipe {
	if !g.cfg.CaptureOutput {
		return nil
	}
	if a.capture == nil {
		a.capture = &capture{queue: make(chan capturedLine, captureQueue), dests: map[string]*logfile.File{}}
		go a.capture.write(a.done)
	}
	dest, err := a.capture.dest(g.cfg.Errorlog)
	if err != nil {
		a.log.Error("worker output not captured", "err", err)
		return nil
	}
	r, w, err := os.Pipe()
	if err != nil {
		a.log.Error("worker output not captured", "err", fmt.Errorf("arbiter: output pipe: %w", err))
		return nil
	}
	cmd.Stdout, cmd.Stderr = w, w
	return &capturePipe{c: a.capture, dest: dest, r: r, w: w}
}

type capturePipe struct {
	c    *capture
	dest *logfile.File
	r, w *os.File
}

// started closes the arbiter's copy of the write end (EOF then means the
// worker and its children are gone) and reads the pipe if the worker runs.
func (p *capturePipe) started(cmd *exec.Cmd, startErr error) {
	if p == nil {
		return
	}
	p.w.Close()
	if startErr != nil {
		p.r.Close()
		return
	}
	go p.c.read(cmd.Process.Pid, p.dest, p.r)
}

// dest returns the destination for an error log path, opening it once.
func (c *capture) dest(path string) (*logfile.File, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d := c.dests[path]; d != nil {
		return d, nil
	}
	d, err := logfile.Open(path, os.Stderr)
	if err != nil {
		return nil, fmt.Errorf("arbiter: capture_output: %w", err)
	}
	c.dests[path] = d
	return d, nil
}

// reopen follows USR1: each destination still in use is reopened at its
// path; the others are closed.
func (c *capture) reopen(inUse map[string]bool) []error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for path, d := range c.dests {
		if !inUse[path] {
			d.Close()
			delete(c.dests, path)
			continue
		}
		if err := d.Reopen(); err != nil {
			errs = append(errs, err)
		}
	}
	return errs
}

// read drains one worker's pipe until EOF.
func (c *capture) read(pid int, dest *logfile.File, r *os.File) {
	defer r.Close()
	br := bufio.NewReaderSize(r, captureLineMax)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			c.put(capturedLine{dest: dest, pid: pid, text: bytes.Clone(line)})
		}
		if err != nil && !errors.Is(err, bufio.ErrBufferFull) {
			return
		}
	}
}

func (c *capture) put(l capturedLine) {
	select {
	case c.queue <- l:
	default:
		c.dropped.Add(1)
	}
}

// write empties the queue until the arbiter ends, then writes what is
// left and closes the destinations.
func (c *capture) write(done <-chan struct{}) {
	for {
		select {
		case l := <-c.queue:
			c.writeLine(l)
		case <-done:
			for {
				select {
				case l := <-c.queue:
					c.writeLine(l)
				default:
					c.closeAll()
					return
				}
			}
		}
	}
}

func (c *capture) writeLine(l capturedLine) {
	if n := c.dropped.Swap(0); n > 0 {
		msg := "[arbiter] " + strconv.FormatInt(n, 10) + " lines of worker output dropped: the error log did not keep up\n"
		if _, err := l.dest.Write([]byte(msg)); err != nil {
			c.dropped.Add(n)
		}
	}
	buf := make([]byte, 0, len(l.text)+16)
	buf = append(buf, "[pid "...)
	buf = strconv.AppendInt(buf, int64(l.pid), 10)
	buf = append(buf, "] "...)
	buf = append(buf, bytes.TrimSuffix(l.text, []byte("\n"))...)
	buf = append(buf, '\n')
	if _, err := l.dest.Write(buf); err != nil {
		c.dropped.Add(1) // reported with the next line that gets through
	}
}

func (c *capture) closeAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for path, d := range c.dests {
		d.Close()
		delete(c.dests, path)
	}
}
