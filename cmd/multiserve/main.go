// Command multiserve is a pre-fork HTTP server for Go http.Handlers, with a
// choice of worker classes (sync, threaded, evloop, goroutine). See the
// README and docs/settings.md.
package main

import "github.com/multiserve/multiserve"

func main() { multiserve.Main() }
