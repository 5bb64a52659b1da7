package arbiter

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/multiserve/multiserve/config"
	"github.com/multiserve/multiserve/internal/version"
	"github.com/multiserve/multiserve/workers"
)

// banner logs what a user needs to know at start: version, where it
// listens, which class and what concurrency that gives (the class's
// Describe sentence).
func (a *arbiter) banner(cfg *config.Config) {
	a.log.Info(fmt.Sprintf("multiserve %s starting app %s (arbiter pid=%d)", version.Version, cfg.App, os.Getpid()),
		"version", version.Version, "app", cfg.App, "pid", os.Getpid())
	for _, ln := range a.lns {
		a.log.Info("listening at: "+listenURL(ln, cfg.Certfile != ""), "bind", ln.name)
	}
	summary := ""
	if cls, err := workers.Lookup(cfg.WorkerClass); err == nil && cls.Summary != "" {
		summary = " — " + cls.Summary
	}
	a.log.Info("using worker class: "+cfg.WorkerClass+summary, "class", cfg.WorkerClass)
	a.log.Info(workers.Describe(cfg))
}

func listenURL(ln *listener, tls bool) string {
	switch {
	case ln.network == "unix":
		return "unix:" + ln.addr.String()
	case tls:
		return "https://" + ln.addr.String()
	}
	return "http://" + ln.addr.String()
}

// writePidfile writes the arbiter's pid atomically (temp file + rename), so
// a reader never sees a half-written file.
func writePidfile(path string) error {
	if path == "" {
		return nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".multiserve-pid-")
	if err != nil {
		return fmt.Errorf("arbiter: pidfile: %w", err)
	}
	_, err = tmp.WriteString(strconv.Itoa(os.Getpid()) + "\n")
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp.Name(), 0o644)
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("arbiter: pidfile %s: %w", path, err)
	}
	return nil
}

// removePidfile removes the pidfile if it still holds this process's pid
// (a newer arbiter may have taken it over).
func removePidfile(path string) {
	if path == "" {
		return
	}
	// After a USR2 upgrade this arbiter's pid is in PIDFILE.oldbin and the
	// new arbiter's in PIDFILE: each removes only its own.
	for _, p := range []string{path, path + OldPidSuffix} {
		b, err := os.ReadFile(p)
		if err == nil && strings.TrimSpace(string(b)) == strconv.Itoa(os.Getpid()) {
			os.Remove(p)
		}
	}
}
