package arbiter_test

import (
	"strings"
	"testing"
	"time"
)

// request_timeout in every class and engine: a handler that has sent
// nothing when it expires gets its context cancelled and the client a 503;
// the worker keeps serving.
func TestRequestTimeoutEveryClass(t *testing.T) {
	skipShort(t)
	forClasses(t, func(t *testing.T, class string) {
		cfg := testConfig(class, 1)
		cfg.RequestTimeout = 300 * time.Millisecond
		m := startMaster(t, cfg, true)
		_, err := m.get("/block?d=60s")
		if err == nil || !strings.Contains(err.Error(), "503") {
			t.Errorf("GET /block past request_timeout: %v, want a 503", err)
		}
		if _, err := m.getPid(); err != nil {
			t.Errorf("worker not serving after the timeout: %v", err)
		}
	})
}
