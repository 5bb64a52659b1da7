package config

import (
	"errors"
	"fmt"
	"strings"

	"github.com/multiserve/multiserve/internal/suggest"
)

// UsageError is a bad flag, setting, value or config file: the process
// reports it on one line and exits with status 2 before binding anything.
type UsageError struct {
	Setting string // the setting, flag or key as the user wrote it ("workers", "--worker", "worker")
	Value   string // the offending value; "" for an unknown name
	Source  string // where it came from: "--workers", "MULTISERVE_WORKERS", a file path, "default"; may be ""
	Reason  string // what is wrong and what is allowed: "must be at least 1"
	Suggest string // the nearest valid name, when the name or value is a misspelling
	unknown string // "setting" or "flag" when the name itself is unknown
}

// Error renders the error on one line, for example
//
//	invalid value "0" for workers (from --workers): must be at least 1
//	unknown setting "worker" in app.toml; did you mean "workers"?
func (e *UsageError) Error() string {
	var b strings.Builder
	switch {
	case e.unknown != "":
		fmt.Fprintf(&b, "unknown %s %q", e.unknown, e.Setting)
		if e.Source != "" {
			fmt.Fprintf(&b, " in %s", e.Source)
		}
	case e.Setting != "":
		fmt.Fprintf(&b, "invalid value %q for %s", e.Value, e.Setting)
		if e.Source != "" && e.Source != "default" {
			fmt.Fprintf(&b, " (from %s)", e.Source)
		}
	}
	if e.Reason != "" {
		if b.Len() > 0 {
			b.WriteString(": ")
		}
		b.WriteString(e.Reason)
	}
	if e.Suggest != "" {
		fmt.Fprintf(&b, "; did you mean %q?", e.Suggest)
	}
	return oneLine(b.String())
}

// IsUsage reports whether err (or any error it wraps or joins) is a
// *UsageError, that is whether the process should exit with status 2.
func IsUsage(err error) bool {
	var u *UsageError
	return errors.As(err, &u)
}

// usagef is a UsageError that is only a message (bad syntax, too many
// arguments, an unreadable config file).
func usagef(format string, args ...any) *UsageError {
	return &UsageError{Reason: fmt.Sprintf(format, args...)}
}

func unknownName(kind, name, source string, candidates []string) *UsageError {
	return &UsageError{Setting: name, Source: source, unknown: kind, Suggest: suggest.Nearest(name, candidates)}
}

// oneLine folds parser messages that span lines (TOML and YAML errors do)
// into one line: every usage error is one line (docs/settings.md).
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// usageErrors walks a tree of joined and wrapped errors and calls fn for
// every *UsageError in it.
func usageErrors(err error, fn func(*UsageError)) {
	switch e := err.(type) {
	case nil:
	case *UsageError:
		fn(e)
	case interface{ Unwrap() []error }:
		for _, inner := range e.Unwrap() {
			usageErrors(inner, fn)
		}
	case interface{ Unwrap() error }:
		usageErrors(e.Unwrap(), fn)
	}
}
