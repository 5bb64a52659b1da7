package main

import (
	"fmt"
	"net/http"
	"os"
)

// greeter answers "Hello, NAME from worker PID", with NAME from ?name=.
// It is an ordinary http.Handler: nothing in it knows about multiserve.
type greeter struct{}

func (greeter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("name")
	if name == "" {
		name = "stranger"
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprintf(w, "Hello, %s, from worker %d\n", name, os.Getpid())
}
