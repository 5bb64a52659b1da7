package workers

import (
	"fmt"
	"slices"
	"strings"
	stdsync "sync"

	"github.com/multiserve/multiserve/config"
	"github.com/multiserve/multiserve/internal/suggest"
)

// Class is everything that is true of a worker class, as it registers
// itself. Nothing outside the class's own package names it: config, the
// arbiter, the banner and the docs ask the registry for these fields.
type Class struct {
	// Name is the --worker-class value.
	Name string
	// Summary is one line for --help, the docs and the banner.
	Summary string
	// New builds the class's Worker; the runtime calls it once per worker
	// process.
	New func() Worker
	// Default marks the class used when worker_class is not given; at most
	// one registered class may set it.
	Default bool
	// Settings are the class-specific settings the class honours (threads,
	// keepalive, ...); the docs list, per such setting, the classes that
	// name it. Settings that every class honours are not listed.
	Settings []string
	// Defaults adjusts, before validation, settings the user left at their
	// default (isDefault reports that) to what suits the class. Optional.
	Defaults func(cfg *config.Config, isDefault func(key string) bool)
	// Check rejects settings the class cannot honour. It runs while the
	// configuration is validated and again in the arbiter before anything
	// is bound, so a mistake fails once with exit 2 instead of
	// crash-looping the workers. An error that is a *config.UsageError
	// naming a Setting is reported against that setting. Optional.
	Check func(cfg *config.Config) error
	// Describe is the banner's concurrency sentence for cfg: how many
	// processes and threads, blocking or not, and what that allows.
	// Optional (the banner then says only the worker count).
	Describe func(cfg *config.Config) string
	// SingleThread says the class serves one request at a time on one OS
	// thread and beats from the loop that serves it. The arbiter then gives
	// its workers GOMAXPROCS=2 (the second P stays idle, so the runtime
	// does not take the serving thread's P each time it blocks in the
	// kernel), and with request_timeout a silence past
	// request_timeout (plus a grace) counts as a stuck handler.
	SingleThread bool
}

var (
	mu      stdsync.RWMutex
	classes = map[string]Class{}
)

// Register makes a class available by name. Call it from init(); it panics on
// an empty name, a nil New, a duplicate or a second default, as sql.Register
// does.
func Register(c Class) {
	mu.Lock()
	defer mu.Unlock()
	if c.Name == "" || c.New == nil {
		panic("workers: Register with empty name or nil New")
	}
	if _, dup := classes[c.Name]; dup {
		panic("workers: Register called twice for class " + c.Name)
	}
	if c.Default && defaultClass() != "" {
		panic("workers: Register: class " + c.Name + " and " + defaultClass() + " both claim to be the default")
	}
	classes[c.Name] = c
}

// Lookup returns the class registered under name.
func Lookup(name string) (Class, error) {
	mu.RLock()
	c, ok := classes[name]
	mu.RUnlock()
	if !ok {
		hint := "forgotten import?"
		if near := suggest.Nearest(name, Classes()); near != "" {
			hint = fmt.Sprintf("did you mean %q?", near)
		}
		return Class{}, fmt.Errorf("workers: unknown worker class %q (known: %s; %s)",
			name, strings.Join(Classes(), ", "), hint)
	}
	return c, nil
}

// Classes returns the registered class names, sorted.
func Classes() []string {
	mu.RLock()
	defer mu.RUnlock()
	names := make([]string, 0, len(classes))
	for n := range classes {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// defaultClass is the name of the class registered as the default; the
// caller holds mu.
func defaultClass() string {
	for _, c := range classes {
		if c.Default {
			return c.Name
		}
	}
	return ""
}

// catalog answers config's questions about classes from the registry (see
// config.Catalog for why config asks instead of importing this package).
type catalog struct{}

func init() { config.SetCatalog(catalog{}) }

func (catalog) Names() []string { return Classes() }

func (catalog) Default() string {
	mu.RLock()
	defer mu.RUnlock()
	return defaultClass()
}

func (catalog) Summary(name string) string {
	c, _ := Lookup(name)
	return c.Summary
}

func (catalog) Settings(name string) []string {
	c, _ := Lookup(name)
	return c.Settings
}

func (catalog) Prepare(cfg *config.Config, isDefault func(key string) bool) {
	if c, err := Lookup(cfg.WorkerClass); err == nil && c.Defaults != nil {
		c.Defaults(cfg, isDefault)
	}
}

func (catalog) Check(cfg *config.Config) error {
	c, err := Lookup(cfg.WorkerClass)
	if err != nil || c.Check == nil {
		return nil // an unknown name is worker_class's own check
	}
	return c.Check(cfg)
}

// CheckConfig is what the arbiter and --check-config run before anything
// is bound: the class exists and accepts cfg.
func CheckConfig(cfg *config.Config) error {
	c, err := Lookup(cfg.WorkerClass)
	if err != nil {
		return err
	}
	if c.Check == nil {
		return nil
	}
	if err := c.Check(cfg); err != nil {
		return fmt.Errorf("worker class %s: %w", c.Name, err)
	}
	return nil
}

// Describe is the banner's concurrency sentence for cfg, from its class.
func Describe(cfg *config.Config) string {
	c, err := Lookup(cfg.WorkerClass)
	switch {
	case err != nil:
		return fmt.Sprintf("%s of unknown class %q", Plural(cfg.Workers, "worker"), cfg.WorkerClass)
	case c.Describe == nil:
		return fmt.Sprintf("%s of class %s", Plural(cfg.Workers, "worker"), c.Name)
	}
	return c.Describe(cfg)
}

// SingleThread reports the registered class's SingleThread fact; false for
// an unknown class.
func SingleThread(class string) bool {
	c, err := Lookup(class)
	return err == nil && c.SingleThread
}

// Plural renders "1 worker", "2 workers": for Describe sentences.
func Plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// OpenConns renders the open-connection bound of cfg for Describe
// sentences: "2000 connections open".
func OpenConns(cfg *config.Config) string {
	return Plural(cfg.Workers*cfg.WorkerConnections, "connection") + " open"
}
