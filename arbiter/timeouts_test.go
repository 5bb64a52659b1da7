package arbiter_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/multiserve/multiserve/internal/testwait"
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

// sync: a handler that ignores its cancelled context past request_timeout
// holds the worker's only thread; the worker is killed and replaced well
// before timeout (30s here).
func TestSyncStuckPastRequestTimeoutIsKilled(t *testing.T) {
	skipShort(t)
	cfg := testConfig("sync", 1)
	cfg.RequestTimeout = 300 * time.Millisecond
	m := startMaster(t, cfg, true)
	old, err := m.getPid()
	if err != nil {
		t.Fatal(err)
	}
	go m.get("/sleep?d=60s") // sends headers, then sleeps ignoring ctx
	m.waitLog(fmt.Sprintf("worker %d timed out", old))
	testwait.Until(t, waitLimit, "a new worker serving", func() bool {
		pid, err := m.getPid()
		return err == nil && pid != old
	})
}
