package config

import (
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/multiserve/multiserve/internal/proc"
	"github.com/multiserve/multiserve/internal/suggest"
)

// Warnings are what the configuration asks for that will not happen,
// without being an error: a setting given that the chosen worker class
// does not use (with what to use instead), and a MULTISERVE_* variable
// that names no setting but nearly does one. The arbiter logs them at
// start; --check-config prints them.
func (l *Loaded) Warnings() []string {
	return append(l.unusedSettings(), unknownEnv(os.Environ())...)
}

// unusedSettings: class-specific settings given (not defaulted) that the
// chosen class does not name among its own.
func (l *Loaded) unusedSettings() []string {
	var out []string
	for _, s := range table {
		users := classesUsing(s.Key)
		if len(users) == 0 || slices.Contains(users, l.Config.WorkerClass) || l.Sources[s.Key] == "default" {
			continue
		}
		val := formatValue(l.Config.get(s.Key))
		var alts []string
		for _, u := range users {
			alts = append(alts, "-k "+u+" "+flagWithValue(s, val))
		}
		out = append(out, fmt.Sprintf("%s = %s (from %s) has no effect with worker_class %s; use %s",
			s.Key, val, l.Sources[s.Key], l.Config.WorkerClass, orList(alts)))
	}
	return out
}

// flagWithValue is how the setting is written on the command line.
func flagWithValue(s Setting, val string) string {
	switch {
	case s.Flag == "":
		return s.Key + " = " + val
	case val == "true":
		return "--" + s.Flag
	}
	return "--" + s.Flag + " " + val
}

// unknownEnv: MULTISERVE_* variables in env that are no setting's but
// are a plausible misspelling of one. Others may belong to other tools
// or to the worker protocol, so they pass in silence.
func unknownEnv(env []string) []string {
	names := make([]string, len(table))
	for i, s := range table {
		names[i] = strings.TrimPrefix(envName(s.Key), envPrefix)
	}
	var out []string
	for _, kv := range env {
		name, _, _ := strings.Cut(kv, "=")
		rest, ok := strings.CutPrefix(name, envPrefix)
		if !ok || slices.Contains(names, rest) || proc.IsProtocolVar(name) {
			continue
		}
		if near := suggest.Nearest(rest, names); near != "" {
			e := unknownName("environment variable", name, "", nil)
			e.Reason, e.Suggest = "ignored", envPrefix+near
			out = append(out, e.Error())
		}
	}
	return out
}
