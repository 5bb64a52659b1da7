package config

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
)

// Catalog is what config asks about worker classes: which names exist,
// which is the default, what each says of itself, which class-specific
// settings it honours, its defaults and its checks.
//
// Why a hook and not an import: the workers packages import config (a
// class reads its Config), so config cannot import the workers registry.
// Instead the registry installs itself here from its init (SetCatalog),
// and any program that links a worker class links the registry with it.
// config then knows no class by name: the worker_class row of the
// settings table (its default, its help, the names it accepts) and the
// class-dependent rules are filled in from the catalog.
type Catalog interface {
	Names() []string                                    // registered classes, sorted
	Default() string                                    // the class used when none is given
	Summary(class string) string                        // one line about the class
	Settings(class string) []string                     // class-specific settings the class honours
	Prepare(c *Config, isDefault func(key string) bool) // the class's defaults for settings left unset
	Check(c *Config) error                              // the class's own rules
}

var catalog atomic.Pointer[Catalog]

// SetCatalog installs the worker class catalog; the workers registry calls
// it from its init.
func SetCatalog(c Catalog) { catalog.Store(&c) }

// classes returns the installed catalog, or an empty one when no class is
// linked in.
func classes() Catalog {
	if c := catalog.Load(); c != nil {
		return *c
	}
	return noClasses{}
}

type noClasses struct{}

func (noClasses) Names() []string                    { return nil }
func (noClasses) Default() string                    { return "" }
func (noClasses) Summary(string) string              { return "" }
func (noClasses) Settings(string) []string           { return nil }
func (noClasses) Prepare(*Config, func(string) bool) {}
func (noClasses) Check(*Config) error                { return nil }

// classesUsing lists the classes that name key among their settings; empty
// when key is one every class honours.
func classesUsing(key string) []string {
	cat := classes()
	var out []string
	for _, name := range cat.Names() {
		if slices.Contains(cat.Settings(name), key) {
			out = append(out, name)
		}
	}
	return out
}

// withClasses completes the worker_class row from the catalog.
func withClasses(s Setting) Setting {
	if s.Key != "worker_class" {
		return s
	}
	cat := classes()
	names := cat.Names()
	s.Default = cat.Default()
	s.Check = checkClass
	s.Help = "Worker class: " + orList(names) + "."
	var long []string
	for _, n := range names {
		long = append(long, fmt.Sprintf("`%s`: %s.", n, cat.Summary(n)))
	}
	if len(long) > 0 {
		s.Help += "\n" + strings.Join(long, " ")
	}
	return s
}

// checkClass accepts a registered class name, with "did you mean".
func checkClass(v any) error {
	names := classes().Names()
	if len(names) == 0 {
		return errors.New("no worker class is linked into this program")
	}
	return oneOf(names...)(v)
}

// classChecks applies the class's own rules. An error naming a setting
// is reported against that setting; any other against worker_class.
func (c *Config) classChecks() []error {
	var errs []error
	if c.HTTPEngine != "native" {
		if users := classesUsing("http_engine"); !slices.Contains(users, c.WorkerClass) {
			errs = append(errs, &UsageError{Setting: "http_engine", Value: formatValue(c.HTTPEngine),
				Reason: fmt.Sprintf("%s is only available with worker_class %s, not %s", c.HTTPEngine, orList(users), c.WorkerClass)})
		}
	}
	err := classes().Check(c)
	for _, e := range unjoin(err) {
		var u *UsageError
		if errors.As(e, &u) && u.Setting != "" {
			errs = append(errs, asUsage(u.Setting, c.get(u.Setting), e))
			continue
		}
		errs = append(errs, asUsage("worker_class", c.WorkerClass, e))
	}
	return errs
}

// unjoin splits an errors.Join result into its parts.
func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// orList renders "a", "a or b", "a, b or c".
func orList(names []string) string {
	switch len(names) {
	case 0:
		return "(none linked in)"
	case 1:
		return names[0]
	}
	return strings.Join(names[:len(names)-1], ", ") + " or " + names[len(names)-1]
}
