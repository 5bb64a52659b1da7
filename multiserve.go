// Package multiserve is the library entry point: a Go program registers its
// http.Handler under a name and calls Main, and the binary becomes a
// multiserve server for it — arbiter and workers alike, since workers are
// re-executions of the same binary.
//
//	func main() {
//		multiserve.Register("greeter", myHandler)
//		multiserve.Main()
//	}
//
// This package plays the role of cmd/multiserve (which is only a call to
// Main): it is the one place that links the four worker classes in.
package multiserve

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"

	"github.com/multiserve/multiserve/accesslog"
	"github.com/multiserve/multiserve/apps"
	"github.com/multiserve/multiserve/arbiter"
	"github.com/multiserve/multiserve/config"
	"github.com/multiserve/multiserve/control"
	"github.com/multiserve/multiserve/internal/logfile"
	"github.com/multiserve/multiserve/internal/proc"
	"github.com/multiserve/multiserve/internal/proctitle"
	"github.com/multiserve/multiserve/internal/version"
	"github.com/multiserve/multiserve/proxyheaders"
	"github.com/multiserve/multiserve/workers"
	"github.com/multiserve/multiserve/workers/evloop/route"

	// The worker classes register themselves by name.
	_ "github.com/multiserve/multiserve/workers/evloop"
	_ "github.com/multiserve/multiserve/workers/goroutine"
	_ "github.com/multiserve/multiserve/workers/sync"
	_ "github.com/multiserve/multiserve/workers/threaded"
)

// Inline marks h as a handler that never waits (no IO, no lock held
// long): the auto worker class runs it on its event loops from the first
// request, without measuring it. Mark a ServeMux's handler as you register
// it (mux.Handle("/x", multiserve.Inline(h))), or a whole application.
// Other classes ignore the mark.
func Inline(h http.Handler) http.Handler { return route.Inline(h) }

// Blocking marks h as a handler that may wait: the auto worker class always
// runs it on its goroutine pool, off the event loops. Other classes ignore
// the mark.
func Blocking(h http.Handler) http.Handler { return route.Blocking(h) }

// Register makes h servable as the APP named name. Call it before Main.
func Register(name string, h http.Handler) { apps.Register(name, h) }

// Main runs multiserve with the process's arguments and exits with the
// status the README's "Exit codes" gives.
func Main() {
	proctitle.Prepare() // before anything reads os.Args: the arbiter rewrites its command line
	os.Exit(Run(os.Args[1:], os.Stdout, os.Stderr))
}

// Run is Main without the exit: it returns the exit status.
func Run(args []string, stdout, stderr io.Writer) int {
	if proc.IsWorker() {
		useAccessLog()
		// Outside the access log, so spoofed X-Forwarded-* never reach the log.
		workers.Use(proxyheaders.Wrap, nil)
		return workers.Main(LoadApp)
	}
	if len(args) > 0 {
		switch args[0] {
		case "ctl":
			return control.Main(args[1:], stdout, stderr)
		case "settings":
			return settings(args[1:], stdout, stderr)
		case "help":
			args = []string{"--help"}
		}
	}
	loaded, err := config.Load(args)
	if err == nil {
		// A bad format would otherwise fail in every worker at boot.
		_, err = accesslog.New(io.Discard, loaded.Config.AccessLogFormat)
	}
	if err != nil {
		fmt.Fprintf(stderr, "multiserve: %v\n", err)
		return proc.ExitUsage
	}
	switch {
	case loaded.ShowHelp:
		fmt.Fprint(stdout, loaded.Usage)
		return proc.ExitOK
	case loaded.ShowVersion:
		fmt.Fprintf(stdout, "multiserve %s\n", version.Version)
		return proc.ExitOK
	case loaded.PrintConfig:
		loaded.Print(stdout)
		return proc.ExitOK
	case loaded.CheckConfig:
		return checkConfig(loaded, stdout, stderr)
	}
	return serve(args, loaded, stderr)
}

// settings is `multiserve settings [--markdown]`: every setting as
// Markdown, the text of docs/settings.md.
func settings(args []string, stdout, stderr io.Writer) int {
	const usage = "usage: multiserve settings [--markdown]\nPrints every setting (flag, environment variable, default, help) as Markdown: docs/settings.md.\n"
	for _, a := range args {
		switch a {
		case "--markdown":
		case "-h", "--help", "help":
			fmt.Fprint(stdout, usage)
			return proc.ExitOK
		default:
			fmt.Fprintf(stderr, "multiserve settings: unknown argument %q\n%s", a, usage)
			return proc.ExitUsage
		}
	}
	fmt.Fprint(stdout, config.Markdown())
	return proc.ExitOK
}

// checkConfig runs exactly the checks a start runs before binding
// (preflight) and prints the warnings a start would log.
func checkConfig(loaded *config.Loaded, stdout, stderr io.Writer) int {
	for _, w := range loaded.Warnings() {
		fmt.Fprintf(stderr, "multiserve: warning: %s\n", w)
	}
	if code, err := preflight(loaded.Config); err != nil {
		fmt.Fprintf(stderr, "multiserve: %v\n", err)
		return code
	}
	fmt.Fprintln(stdout, "configuration OK")
	return proc.ExitOK
}

// preflight is every start-up check that needs no socket: the arbiter's
// (worker class and its rules, log files it must open) and the
// application's name. A start runs it before binding anything, so a bad
// configuration fails there with the message and exit status
// --check-config gives, instead of after workers booted.
func preflight(cfg *config.Config) (int, error) {
	if cfg.Chdir != "" {
		// Before anything relative is opened or checked, as at a start.
		if err := os.Chdir(cfg.Chdir); err != nil {
			return proc.ExitUsage, fmt.Errorf("chdir: %w", err)
		}
	}
	if err := arbiter.Check(cfg); err != nil {
		return arbiter.ExitCode(err), err
	}
	if _, err := apps.Load(cfg.App); err != nil {
		return proc.ExitAppError, err
	}
	return proc.ExitOK, nil
}

func serve(args []string, loaded *config.Loaded, stderr io.Writer) int {
	cfg := loaded.Config
	launch, err := os.Getwd()
	if err != nil {
		fmt.Fprintf(stderr, "multiserve: %v\n", err)
		return proc.ExitRuntime
	}
	if code, err := preflight(cfg); err != nil {
		fmt.Fprintf(stderr, "multiserve: %v\n", err)
		return code
	}
	errlog, err := logfile.Open(cfg.Errorlog, os.Stderr)
	if err != nil {
		fmt.Fprintf(stderr, "multiserve: errorlog: %v\n", err)
		return proc.ExitUsage
	}
	defer errlog.Close()
	log := slog.New(slog.NewTextHandler(errlog, &slog.HandlerOptions{Level: config.LogLevel(cfg.Loglevel)}))
	for _, w := range loaded.Warnings() {
		log.Warn(w)
	}
	err = arbiter.Run(context.Background(), arbiter.Options{
		Config:     cfg,
		Reload:     func() (*config.Config, error) { return reload(launch, args) },
		Log:        log,
		StartDir:   launch,
		ReopenLogs: errlog.Reopen,
		Ready: func(addrs []net.Addr) {
			names := make([]string, len(addrs))
			for i, a := range addrs {
				names[i] = a.Network() + "://" + a.String()
			}
			log.Info("ready", "addrs", strings.Join(names, ","))
		},
	})
	if err != nil && !errors.Is(err, context.Canceled) {
		log.Error(err.Error())
	}
	return arbiter.ExitCode(err)
}

// reload re-reads the configuration as the start did: the config file and
// a relative chdir are relative to the directory multiserve was started
// in (launch), not to the chdir the arbiter moved to since.
func reload(launch string, args []string) (*config.Config, error) {
	cur, err := os.Getwd()
	if err != nil {
		return nil, fmt.Errorf("reload: %w", err)
	}
	if err := os.Chdir(launch); err != nil {
		return nil, fmt.Errorf("reload: back to the start directory: %w", err)
	}
	l, err := config.Load(args)
	if cerr := os.Chdir(cur); cerr != nil {
		return nil, fmt.Errorf("reload: %w", cerr)
	}
	if err != nil {
		return nil, err
	}
	// The arbiter checks the rest of what a start checks (arbiter.Check).
	if _, err := apps.Load(l.Config.App); err != nil {
		return nil, err
	}
	return l.Config, nil
}

// LoadApp builds the handler a worker serves: the named app. workers.Main
// calls it in every worker process; an error makes the worker exit with
// ExitAppError.
func LoadApp(cfg *config.Config) (http.Handler, error) {
	h, err := apps.Load(cfg.App)
	if err != nil {
		return nil, err
	}
	return h, nil
}

// useAccessLog installs the access log as worker middleware. The worker
// runtime owns the destination (the file the arbiter opened for it, kept
// current after USR1); the reopen hook covers a file a worker had to open
// itself.
func useAccessLog() {
	workers.Use(func(h http.Handler, cfg *config.Config) (http.Handler, error) {
		f := workers.AccessLog()
		if f == nil {
			return h, nil
		}
		l, err := accesslog.New(f, cfg.AccessLogFormat)
		if err != nil {
			return nil, err
		}
		workers.OnRejected(l.Rejected) // requests the engine refuses never reach h
		return accesslog.Wrap(h, l), nil
	}, func() error {
		if f := workers.AccessLog(); f != nil {
			return f.Reopen()
		}
		return nil
	})
}
