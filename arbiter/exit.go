package arbiter

import (
	"errors"

	"github.com/multiserve/multiserve/internal/proc"
)

// exitError carries the process exit code the README's "Exit codes" assigns to a
// failure.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func withCode(code int, err error) error {
	if err == nil {
		return nil
	}
	return &exitError{code: code, err: err}
}

// ExitCode maps an error returned by Run to the process exit status of SPEC
// §4: 0 for nil, 2 for bad configuration, 3 when no worker could boot, 4
// when the application could not load, 1 for anything else (cannot bind).
func ExitCode(err error) int {
	if err == nil {
		return proc.ExitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		return ee.code
	}
	return proc.ExitRuntime
}
