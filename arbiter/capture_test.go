package arbiter_test

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/multiserve/multiserve/internal/testwait"
)

// capture_output: what a worker writes to stdout and stderr lands in the
// error log file, each line prefixed with the worker's pid, and in the new
// file after logrotate's rename and USR1.
func TestCaptureOutput(t *testing.T) {
	skipShort(t)
	cfg := testConfig("sync", 1)
	cfg.CaptureOutput = true
	cfg.Errorlog = t.TempDir() + "/error.log"
	m := startMaster(t, cfg, true)
	pid, err := m.get("/print?n=3&tag=before")
	if err != nil {
		t.Fatal(err)
	}
	inLog := func(path string, lines ...string) func() bool {
		return func() bool {
			b, _ := os.ReadFile(path)
			for _, l := range lines {
				if !strings.Contains(string(b), "[pid "+pid+"] "+l+"\n") {
					return false
				}
			}
			return true
		}
	}
	testwait.Until(t, waitLimit, "the worker's output in the error log", inLog(cfg.Errorlog, "stdout before 0", "stderr before 2"))
	if err := os.Rename(cfg.Errorlog, cfg.Errorlog+".1"); err != nil {
		t.Fatal(err)
	}
	m.signal(syscall.SIGUSR1)
	testwait.Until(t, waitLimit, "a reopened error log", func() bool { _, err := os.Stat(cfg.Errorlog); return err == nil })
	if _, err := m.get("/print?n=1&tag=after"); err != nil {
		t.Fatal(err)
	}
	testwait.Until(t, waitLimit, "output after USR1 in the new file", inLog(cfg.Errorlog, "stdout after 0", "stderr after 0"))
	if b, _ := os.ReadFile(cfg.Errorlog + ".1"); strings.Contains(string(b), "after") {
		t.Errorf("output after USR1 went to the rotated file:\n%s", b)
	}
}

// A worker never waits for a slow error log: with the log a FIFO nobody
// reads, a worker printing far more than the pipe and the queue hold still
// answers, the excess is dropped, and once the log drains the count of
// dropped lines is reported in it.
func TestCaptureOutputNeverBlocksWorkers(t *testing.T) {
	skipShort(t)
	cfg := testConfig("sync", 1)
	cfg.CaptureOutput = true
	cfg.Loglevel = "error" // the worker's own log lines would wait on the FIFO
	cfg.Errorlog = t.TempDir() + "/error.fifo"
	if err := syscall.Mkfifo(cfg.Errorlog, 0o600); err != nil {
		t.Fatal(err)
	}
	// Held open for reading, unread until the worker answered.
	fifo, err := os.OpenFile(cfg.Errorlog, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer fifo.Close()
	m := startMaster(t, cfg, true)
	const n = 20000 // 40000 lines, about 1 MB: many times the pipe's 64 KiB and the queue
	if _, err := m.get(fmt.Sprintf("/print?n=%d&tag=flood", n)); err != nil {
		t.Fatalf("a worker printing to a stuck error log did not answer: %v", err)
	}
	if err := syscall.SetNonblock(int(fifo.Fd()), false); err != nil {
		t.Fatal(err)
	}
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(fifo)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "lines of worker output dropped") {
				found <- sc.Text()
				return
			}
		}
	}()
	// The drop count is written with the next line after the log drains.
	deadline := time.After(60 * time.Second)
	for {
		select {
		case line := <-found:
			t.Log(line)
			return
		case <-deadline:
			t.Fatal("no line reporting dropped output")
		case <-time.After(200 * time.Millisecond):
			if _, err := m.get("/print?n=1&tag=poke"); err != nil {
				t.Fatal(err)
			}
		}
	}
}
