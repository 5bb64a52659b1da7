package testwait

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestFor(t *testing.T) {
	var n atomic.Int64
	if !For(10*time.Second, func() bool { return n.Add(1) >= 3 }) {
		t.Fatal("a condition that comes to hold was not seen")
	}
	if For(10*time.Millisecond, func() bool { return false }) {
		t.Fatal("a condition that never holds was reported held")
	}
}
