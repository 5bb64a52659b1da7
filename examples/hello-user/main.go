// Command hello-user is what a user's own program looks like: it registers
// its http.Handler under a name and hands control to multiserve, and the
// binary becomes a pre-fork server for that handler, with every multiserve
// flag (workers, worker class, binds, signals...).
//
//	go build -o hello-user ./examples/hello-user
//	./hello-user -w 2 -k goroutine greeter
//	curl 'http://127.0.0.1:8000/?name=Ada'
package main

import "github.com/multiserve/multiserve"

func main() {
	// Register before Main: the arbiter checks the app name at start-up and
	// each worker (a re-execution of this binary) loads it by name.
	multiserve.Register("greeter", greeter{})
	multiserve.Main()
}
