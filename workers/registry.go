package workers

import (
	"fmt"
	"slices"
	"strings"
	stdsync "sync"
)

// Class is a worker class as it registers itself.
type Class struct {
	Name    string        // --worker-class value: sync, threaded, evloop, goroutine
	Summary string        // one line for --help and the docs
	New     func() Worker // must have no side effects: the arbiter calls it to CheckConfig
}

var (
	mu      stdsync.RWMutex
	classes = map[string]Class{}
)

// Register makes a class available by name. Call it from init(); it panics on
// an empty name, a nil New or a duplicate, as sql.Register does.
func Register(c Class) {
	mu.Lock()
	defer mu.Unlock()
	if c.Name == "" || c.New == nil {
		panic("workers: Register with empty name or nil New")
	}
	if _, dup := classes[c.Name]; dup {
		panic("workers: Register called twice for class " + c.Name)
	}
	classes[c.Name] = c
}

// Lookup returns the class registered under name.
func Lookup(name string) (Class, error) {
	mu.RLock()
	c, ok := classes[name]
	mu.RUnlock()
	if !ok {
		return Class{}, fmt.Errorf("workers: unknown worker class %q (known: %s; forgotten import?)",
			name, strings.Join(Classes(), ", "))
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
