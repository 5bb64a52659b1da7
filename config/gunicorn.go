package config

import (
	"fmt"
	"strings"
)

// leftOut are gunicorn settings multiserve does not have on purpose, with
// what to use instead. Passing one as a flag or a config key gets that
// answer rather than "unknown flag"; docs/settings.md lists them.
var leftOut = []struct {
	flags   []string // as gunicorn spells them, dashes included
	key     string   // gunicorn's config-file key
	instead string
}{
	{[]string{"--preload"}, "preload_app",
		"workers are fresh processes re-executed from the binary, not forks of an arbiter that loaded the app, so there is nothing to preload: " +
			"each worker loads the app itself, and a start (or --check-config) checks the app name before any worker boots"},
	{[]string{"--daemon", "-D"}, "daemon",
		"multiserve stays in the foreground: run it under systemd (docs/deploy.md, Type=notify) or another supervisor; --pid writes a pid file"},
	{[]string{"--reload"}, "reload",
		"there is no code reloader: rebuild the binary in place and send HUP (the new workers are executed from the binary's path, so they run the new code; the arbiter stays), " +
			"or USR2 to replace the arbiter too (docs/deploy.md)"},
}

// leftOutError is the answer for a gunicorn flag or key in leftOut; nil
// when name is none of them.
func leftOutError(name, source string) *UsageError {
	for _, l := range leftOut {
		for _, f := range l.flags {
			if name == f || name == l.key || strings.HasPrefix(name, f+"=") {
				name, _, _ = strings.Cut(name, "=")
				if source != "" {
					name += " in " + source
				}
				return usagef("%s is gunicorn's; multiserve does not have it: %s", name, l.instead)
			}
		}
	}
	return nil
}

// gunicornMarkdown is the docs' "Coming from gunicorn" section.
func gunicornMarkdown() string {
	var b strings.Builder
	b.WriteString("\n## Coming from gunicorn\n\n" +
		"Setting names, flags and their meaning follow gunicorn's where the model is the same: " +
		"`-w`/`WEB_CONCURRENCY`, `-k`, `--threads`, `-b`, `-e`/`raw_env`, `--chdir`, `--capture-output`, " +
		"`-u`/`-g`/`-m`, `--pid`, `--worker-tmp-dir`, the log settings and the signals (HUP, USR1, USR2, WINCH, TTIN, TTOU, TERM, INT, QUIT). " +
		"The arbiter is not a forking Python master but re-executes its own binary for every worker, which leaves these out; " +
		"passing one fails at once with the alternative:\n\n" +
		"| gunicorn | instead |\n|---|---|\n")
	for _, l := range leftOut {
		fmt.Fprintf(&b, "| `%s` (`%s`) | %s |\n", strings.Join(l.flags, "`, `"), l.key, l.instead)
	}
	return b.String()
}
