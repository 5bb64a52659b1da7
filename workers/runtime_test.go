package workers

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/multiserve/multiserve/config"
)

func testRuntime(cfg *config.Config) (*runtime, context.Context) {
	ctx, cancel := context.WithCancel(context.Background())
	cfg.GracefulTimeout = 1 << 62 // the hard-deadline timer must never fire in a test
	return &runtime{cfg: cfg, cancel: cancel, log: slog.New(slog.NewTextHandler(io.Discard, nil))}, ctx
}

// max_requests (+ jitter) asks the arbiter to retire the worker, on the
// status pipe, once, and does not stop it: it serves on until the
// arbiter's TERM (after its replacement is ready).
func TestMaxRequestsAsksToRetireAfterLimitPlusJitter(t *testing.T) {
	for _, tc := range []struct{ max, jitter int }{{3, 0}, {3, 4}} {
		cfg := config.Default()
		cfg.MaxRequests, cfg.MaxRequestsJitter = tc.max, tc.jitter
		rt, ctx := testRuntime(cfg)
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		rt.status = w
		h := rt.maxRequests(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		asked := 0
		var line []byte
		for n := 1; n <= 20; n++ {
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
			// The line is written before ServeHTTP returns.
			r.SetReadDeadline(time.Now().Add(time.Millisecond))
			buf := make([]byte, 256)
			if k, _ := r.Read(buf); k > 0 {
				line = buf[:k]
				if asked != 0 {
					t.Fatalf("asked to retire twice: at %d and %d", asked, n)
				}
				asked = n
			}
		}
		if asked < tc.max || asked > tc.max+tc.jitter || !strings.HasPrefix(string(line), "retire max_requests reached") {
			t.Errorf("max_requests=%d jitter=%d: asked to retire after %d requests with %q", tc.max, tc.jitter, asked, line)
		}
		if ctx.Err() != nil {
			t.Errorf("max_requests stopped the worker itself")
		}
		r.Close()
		w.Close()
	}
}

// Without a status pipe to tell the arbiter, max_requests stops the worker.
func TestMaxRequestsStopsWithoutArbiter(t *testing.T) {
	cfg := config.Default()
	cfg.MaxRequests = 2
	rt, ctx := testRuntime(cfg)
	h := rt.maxRequests(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	for range 2 {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
	}
	if ctx.Err() == nil {
		t.Fatal("not stopped")
	}
}

func TestUseWrapsInOrder(t *testing.T) {
	mwMu.Lock()
	saved := middlewares
	middlewares = nil
	mwMu.Unlock()
	t.Cleanup(func() { mwMu.Lock(); middlewares = saved; mwMu.Unlock() })

	tag := func(s string) func(http.Handler, *config.Config) (http.Handler, error) {
		return func(next http.Handler, _ *config.Config) (http.Handler, error) {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Write([]byte(s))
				next.ServeHTTP(w, r)
			}), nil
		}
	}
	reopened := 0
	Use(tag("inner,"), func() error { reopened++; return nil })
	Use(tag("outer,"), nil)
	h, reopeners, err := wrapMiddleware(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte("app"))
	}), config.Default())
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if got := rec.Body.String(); got != "outer,inner,app" {
		t.Fatalf("body %q, want outer,inner,app", got)
	}
	for _, r := range reopeners {
		r()
	}
	if reopened != 1 || len(reopeners) != 1 {
		t.Fatalf("reopeners %d, called %d", len(reopeners), reopened)
	}

	Use(func(http.Handler, *config.Config) (http.Handler, error) { return nil, errors.New("bad") }, nil)
	if _, _, err := wrapMiddleware(http.NotFoundHandler(), config.Default()); err == nil {
		t.Fatal("middleware error not returned")
	}
}
