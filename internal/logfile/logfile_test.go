package logfile

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestWriteRenameReopen(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "access.log")
	f, err := Open(p, os.Stdout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if _, err := f.Write([]byte("one\n")); err != nil {
		t.Fatal(err)
	}
	rotated := p + ".1"
	if err := os.Rename(p, rotated); err != nil {
		t.Fatal(err)
	}
	// Before Reopen, writes still follow the open file description.
	f.Write([]byte("two\n"))
	if err := f.Reopen(); err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("three\n"))
	if got := readFile(t, rotated); got != "one\ntwo\n" {
		t.Errorf("rotated file = %q", got)
	}
	if got := readFile(t, p); got != "three\n" {
		t.Errorf("new file = %q", got)
	}
}

func TestAppendsAndMode(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.log")
	if err := os.WriteFile(p, []byte("old\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := Open(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("new\n"))
	f.Close()
	if got := readFile(t, p); got != "old\nnew\n" {
		t.Errorf("got %q, want append", got)
	}
	p2 := filepath.Join(t.TempDir(), "created.log")
	f2, err := Open(p2, nil)
	if err != nil {
		t.Fatal(err)
	}
	f2.Close()
	st, err := os.Stat(p2)
	if err != nil {
		t.Fatal(err)
	}
	// The umask may remove bits but never add them.
	if st.Mode().Perm()&^0o644 != 0 {
		t.Errorf("mode %v wider than 0644", st.Mode().Perm())
	}
}

func TestStd(t *testing.T) {
	for _, path := range []string{"", "-"} {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { r.Close(); w.Close() })
		f, err := Open(path, w)
		if err != nil {
			t.Fatal(err)
		}
		if f.Path() != "-" {
			t.Errorf("Path() = %q", f.Path())
		}
		if err := f.Reopen(); err != nil {
			t.Errorf("Reopen on std: %v", err)
		}
		f.Write([]byte("hi\n"))
		f.Close()
		// The std stream itself must still be open.
		if _, err := w.Write([]byte("after\n")); err != nil {
			t.Errorf("std closed by Close: %v", err)
		}
		buf := make([]byte, 64)
		n, _ := r.Read(buf)
		if !strings.HasPrefix(string(buf[:n]), "hi\n") {
			t.Errorf("read %q", buf[:n])
		}
	}
	if _, err := Open("-", nil); err == nil {
		t.Error("Open(\"-\", nil) succeeded")
	}
}

func TestErrors(t *testing.T) {
	_, err := Open(filepath.Join(t.TempDir(), "no", "such", "dir.log"), nil)
	if err == nil || !strings.HasPrefix(err.Error(), "logfile: open ") {
		t.Errorf("err = %v", err)
	}
	p := filepath.Join(t.TempDir(), "a.log")
	f, err := Open(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := f.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if _, err := f.Write([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("Write after Close: %v", err)
	}
	if err := f.Reopen(); !errors.Is(err, ErrClosed) {
		t.Errorf("Reopen after Close: %v", err)
	}
}

// TestReopenFailureKeepsOld: if the directory vanished, Reopen reports it
// and writes keep going to the old file.
func TestReopenFailureKeepsOld(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	os.Mkdir(dir, 0o755)
	p := filepath.Join(dir, "a.log")
	f, err := Open(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	moved := dir + ".moved"
	if err := os.Rename(dir, moved); err != nil {
		t.Fatal(err)
	}
	if err := f.Reopen(); err == nil {
		t.Fatal("Reopen succeeded without a directory")
	}
	if _, err := f.Write([]byte("kept\n")); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, filepath.Join(moved, "a.log")); got != "kept\n" {
		t.Errorf("got %q", got)
	}
}

// TestConcurrentWriteReopen checks under -race that writers and Reopen
// can interleave and that no line is torn or lost.
func TestConcurrentWriteReopen(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.log")
	f, err := Open(p, nil)
	if err != nil {
		t.Fatal(err)
	}
	const writers, lines = 4, 200
	var wg sync.WaitGroup
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range lines {
				fmt.Fprintf(f, "w%d line %d\n", w, i)
			}
		}()
	}
	for i := range 20 {
		os.Rename(p, fmt.Sprintf("%s.%d", p, i))
		if err := f.Reopen(); err != nil {
			t.Error(err)
		}
	}
	wg.Wait()
	f.Close()
	matches, _ := filepath.Glob(p + "*")
	total := 0
	for _, m := range matches {
		for _, line := range strings.Split(strings.TrimSuffix(readFile(t, m), "\n"), "\n") {
			if line == "" {
				continue
			}
			if !strings.HasPrefix(line, "w") || !strings.Contains(line, " line ") {
				t.Errorf("torn line %q in %s", line, m)
			}
			total++
		}
	}
	if total != writers*lines {
		t.Errorf("lines = %d, want %d", total, writers*lines)
	}
}
