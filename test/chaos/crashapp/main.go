//go:build chaos

// Command crashapp is the chaos suite's user program: a multiserve server
// whose workers crash at boot while a marker file exists. The suite starts
// it with the marker absent (start-up succeeds), creates the marker and
// kills a worker: every respawn then dies before it gets ready, which is
// the "worker that crashes at boot after a successful start" case: the
// arbiter respawns it with back-off per slot, never a fork bomb.
//
// The check sits in main, before multiserve.Main, because the library's
// handler registration cannot fail at load time.
package main

import (
	"fmt"
	"net/http"
	"os"
	"strconv"

	"github.com/multiserve/multiserve"
	"github.com/multiserve/multiserve/internal/proc"
)

// EnvMarker names the marker file whose presence makes workers crash.
const EnvMarker = "CHAOS_CRASH_MARKER"

func main() {
	if os.Getenv(proc.EnvRole) == proc.RoleWorker {
		if p := os.Getenv(EnvMarker); p != "" {
			if _, err := os.Stat(p); err == nil {
				fmt.Fprintf(os.Stderr, "crashapp: marker %s present, crashing at boot\n", p)
				os.Exit(1)
			}
		}
	}
	multiserve.Register("crashecho", http.HandlerFunc(pidHandler))
	multiserve.Main()
}

// pidHandler answers with the worker's pid, in the body and in the
// X-Worker-Pid header the suite's client reads.
func pidHandler(w http.ResponseWriter, _ *http.Request) {
	pid := strconv.Itoa(os.Getpid())
	w.Header().Set("X-Worker-Pid", pid)
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write([]byte(pid + "\n"))
}
