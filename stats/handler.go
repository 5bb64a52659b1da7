package stats

import (
	"encoding/json"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/multiserve/multiserve/scoreboard"
)

// Handler serves the endpoint's paths (see the package doc).
func Handler(src Source, board *scoreboard.Board) http.Handler {
	reg := prometheus.NewRegistry()
	reg.MustRegister(&collector{src: src, board: board},
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{Namespace: "multiserve_arbiter"}))
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		st, err := Collect(src, board)
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(st)
	})
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		snap, err := src.Snapshot()
		switch {
		case err != nil:
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		case readyWorkers(snap) == 0:
			http.Error(w, "no worker ready", http.StatusServiceUnavailable)
		default:
			_, _ = w.Write([]byte("ok\n"))
		}
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		snap, err := src.Snapshot()
		switch {
		case err != nil:
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
		case snap.Draining:
			http.Error(w, "draining", http.StatusServiceUnavailable)
		case !snap.Booted:
			// Until the first generation is ready a load balancer would
			// only fill the accept queue; say so instead of 200.
			http.Error(w, "starting", http.StatusServiceUnavailable)
		case readyWorkers(snap) == 0:
			// After WINCH (workers stopped, arbiter kept) nobody serves.
			http.Error(w, "no worker ready", http.StatusServiceUnavailable)
		default:
			_, _ = w.Write([]byte("ok\n"))
		}
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		st, err := Collect(src, board)
		if err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = pageTmpl.Execute(w, st)
	})
	return mux
}

func readyWorkers(s Snapshot) int {
	n := 0
	for _, w := range s.Workers {
		if w.Ready && !w.Retiring {
			n++
		}
	}
	return n
}
