// Package testwait is how tests wait for a condition another process or
// goroutine brings about: poll it until it holds, within a deadline. The
// poll interval only bounds how late a wait notices; nothing but the
// deadline is decided by elapsed time. For tests only.
package testwait

import (
	"testing"
	"time"
)

// maxPoll bounds the interval between polls, which starts at a
// millisecond and doubles: a quick condition is noticed at once, a slow
// one (an HTTP request per poll, a process starting) is not polled in a
// busy loop.
const maxPoll = 20 * time.Millisecond

// For polls cond until it holds or d passes, and reports whether it held.
func For(d time.Duration, cond func() bool) bool {
	end := time.Now().Add(d)
	for pause := time.Millisecond; ; pause = min(2*pause, maxPoll) {
		if cond() {
			return true
		}
		if time.Now().After(end) {
			return false
		}
		time.Sleep(pause)
	}
}

// Until fails the test unless cond holds within d; what names the
// condition in the failure.
func Until(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	if !For(d, cond) {
		t.Fatalf("timed out after %v waiting for %s", d, what)
	}
}
