package workers

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/multiserve/multiserve/config"
)

func testRuntime(cfg *config.Config) (*runtime, context.Context) {
	ctx, cancel := context.WithCancel(context.Background())
	cfg.GracefulTimeout = 1 << 62 // the hard-deadline timer must never fire in a test
	return &runtime{cfg: cfg, cancel: cancel, log: slog.New(slog.NewTextHandler(io.Discard, nil))}, ctx
}

func TestMaxRequestsStopsAfterLimitPlusJitter(t *testing.T) {
	for _, tc := range []struct{ max, jitter int }{{3, 0}, {3, 4}} {
		cfg := config.Default()
		cfg.MaxRequests, cfg.MaxRequestsJitter = tc.max, tc.jitter
		rt, ctx := testRuntime(cfg)
		h := rt.maxRequests(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		n := 0
		for ctx.Err() == nil && n < 100 {
			h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil))
			n++
		}
		if n < tc.max || n > tc.max+tc.jitter {
			t.Errorf("max_requests=%d jitter=%d: stopped after %d requests", tc.max, tc.jitter, n)
		}
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
