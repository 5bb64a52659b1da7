package h1

import (
	"errors"
	"io"
	"net/http"
	"testing"
)

func TestBodyPipe(t *testing.T) {
	req := &http.Request{Header: http.Header{}}
	drained := make(chan struct{}, 4)
	p := NewBodyPipe(req, nil, 4, func() { drained <- struct{}{} })
	if req.Body != p {
		t.Fatal("NewBodyPipe did not set req.Body")
	}
	if n := p.Write([]byte("abcdef")); n != 4 {
		t.Fatalf("Write took %d, want 4 (bounded)", n)
	}
	buf := make([]byte, 3)
	if n, err := p.Read(buf); n != 3 || err != nil || string(buf) != "abc" {
		t.Fatalf("Read %d %v %q", n, err, buf[:n])
	}
	select {
	case <-drained:
	default:
		t.Fatal("onDrain not called after a short Write was read")
	}
	p.Write([]byte("ef"))
	p.End(http.Header{"X-T": {"1"}})
	got, err := io.ReadAll(p)
	if err != nil || string(got) != "def" {
		t.Fatalf("ReadAll %q %v", got, err)
	}
	if req.Trailer.Get("X-T") != "1" || !p.Complete() {
		t.Fatalf("trailer %v complete %v", req.Trailer, p.Complete())
	}

	// A failure reaches the reader after the buffered bytes.
	p = NewBodyPipe(&http.Request{}, nil, 0, nil)
	p.Write([]byte("x"))
	p.Fail(io.ErrUnexpectedEOF)
	if got, err := io.ReadAll(p); string(got) != "x" || !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("after Fail: %q %v", got, err)
	}

	// Close: later writes are dropped, reads fail.
	p = NewBodyPipe(&http.Request{}, nil, 0, nil)
	p.Close()
	if n := p.Write([]byte("zz")); n != 2 {
		t.Fatalf("Write after Close took %d", n)
	}
	if _, err := p.Read(buf); !errors.Is(err, http.ErrBodyReadAfterClose) {
		t.Fatalf("Read after Close: %v", err)
	}
}

// TestBodyPipeBlocksUntilData: a reader waits for the loop's Write.
func TestBodyPipeBlocksUntilData(t *testing.T) {
	p := NewBodyPipe(&http.Request{}, nil, 0, nil)
	done := make(chan string)
	go func() {
		b, _ := io.ReadAll(p)
		done <- string(b)
	}()
	p.Write([]byte("hello "))
	p.Write([]byte("world"))
	p.End(nil)
	if got := <-done; got != "hello world" {
		t.Fatalf("got %q", got)
	}
}
