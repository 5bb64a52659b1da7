package heartbeat

import (
	"os"
	"sync"
	"testing"
	"time"
)

func TestCreateIsUnlinkedAndStamped(t *testing.T) {
	dir := t.TempDir()
	h, err := Create(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 0 {
		t.Fatalf("heartbeat file left a name in %s: %v", dir, ents)
	}
	s, err := h.Silence()
	if err != nil {
		t.Fatal(err)
	}
	if s < 0 || s > time.Minute {
		t.Fatalf("fresh file silence = %v, want small and non-negative", s)
	}
}

func TestBeatMovesLastForward(t *testing.T) {
	h, err := Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	before, err := h.Last()
	if err != nil {
		t.Fatal(err)
	}
	b := NewBeater(int(h.File().Fd()))
	// Wait (with a deadline) until the monotonic clock has moved past the
	// rate limit, then a beat must reach the file.
	deadline := time.Now().Add(10 * time.Second)
	for {
		b.Beat()
		last, err := h.Last()
		if err != nil {
			t.Fatal(err)
		}
		if last > before {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Last did not advance: before=%v last=%v err=%v", before, last, b.Err())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := b.Err(); err != nil {
		t.Fatal(err)
	}
}

func TestBeatIsRateLimited(t *testing.T) {
	h, err := Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	b := NewBeater(int(h.File().Fd()))
	b.Beat()
	first, _ := h.Last()
	// Immediately repeated beats inside the interval are absorbed: the
	// stamp stays at the first beat's value unless the interval elapsed.
	start := Now()
	for range 1000 {
		b.Beat()
	}
	after, _ := h.Last()
	if after != first && Now()-start < minInterval {
		t.Fatalf("beat inside %v reached the file: %v -> %v", minInterval, first, after)
	}
}

func TestBeatConcurrent(t *testing.T) {
	h, err := Create(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	b := NewBeater(int(h.File().Fd()))
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 1000 {
				b.Beat()
			}
		}()
	}
	wg.Wait()
	if err := b.Err(); err != nil {
		t.Fatal(err)
	}
}

func TestBeatBadFDRecordsError(t *testing.T) {
	b := NewBeater(-1)
	b.Beat()
	if b.Err() == nil {
		t.Fatal("Beat on fd -1: no error recorded")
	}
}

func BenchmarkBeat(b *testing.B) {
	h, err := Create(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer h.Close()
	bt := NewBeater(int(h.File().Fd()))
	for b.Loop() {
		bt.Beat()
	}
}
