package apps

import (
	"net/http"
	"os"
	"strconv"
)

// pidString is this process's pid, for X-Worker-Pid. Workers are started
// by exec, never fork, so the value computed at init is the worker's own.
var pidString = strconv.Itoa(os.Getpid())

var (
	helloBody = []byte("Hello, World!")
	// Header values are shared read-only slices so the hot path allocates
	// nothing for them; no server in this module mutates handler headers
	// in place.
	helloType   = []string{"text/plain; charset=utf-8"}
	helloLength = []string{strconv.Itoa(len(helloBody))}
)

// Hello returns the "hello" app: "Hello, World!" as text/plain with
// Content-Length, from precomputed bytes (the bench's tiny workload).
func Hello() http.Handler { return http.HandlerFunc(hello) }

func hello(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h["Content-Type"] = helloType
	h["Content-Length"] = helloLength
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(helloBody)
}
