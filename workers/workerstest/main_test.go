package workerstest_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain: the suite and the class under test leave no goroutine behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
