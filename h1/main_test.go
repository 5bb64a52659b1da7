package h1

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any test leaves a goroutine behind
// (connection goroutines, client watchers, request_timeout timers).
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
