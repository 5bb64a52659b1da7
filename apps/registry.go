// Package apps holds the applications shipped in the multiserve binary
// (hello, echo, sim, static:DIR; see the README's Usage) and the registry through which a
// user's own program adds its http.Handler under a name.
//
// Threading: Register is meant for init() or main() before the server
// runs; Load and Names may be called from any goroutine.
package apps

import (
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"

	"github.com/multiserve/multiserve/internal/suggest"
)

// staticPrefix introduces the one parameterised built-in, static:DIR.
const staticPrefix = "static:"

var (
	mu       sync.RWMutex
	registry = map[string]http.Handler{}
)

func init() {
	Register("hello", Hello())
	Register("echo", Echo())
	Register("sim", Sim())
}

// Register makes h loadable under name. It panics on an empty name, a
// name containing ':' (reserved for parameterised apps such as
// static:DIR), the name "static", a nil handler or a duplicate name, as
// sql.Register does: these are programmer errors found at start-up.
func Register(name string, h http.Handler) {
	if name == "" || strings.Contains(name, ":") || name == "static" {
		panic(fmt.Sprintf("apps: Register with invalid name %q", name))
	}
	if h == nil {
		panic("apps: Register with nil handler for " + name)
	}
	mu.Lock()
	defer mu.Unlock()
	if _, dup := registry[name]; dup {
		panic("apps: Register called twice for " + name)
	}
	registry[name] = h
}

// Names returns the loadable app specs, sorted: every registered name plus
// "static:DIR".
func Names() []string {
	mu.RLock()
	names := make([]string, 0, len(registry)+1)
	for n := range registry {
		names = append(names, n)
	}
	mu.RUnlock()
	names = append(names, staticPrefix+"DIR")
	slices.Sort(names)
	return names
}

// Load resolves an app spec: a registered name (hello, echo, sim, or one a
// program registered) or static:DIR, where DIR must be an existing
// directory. An unknown name is an error that lists the known ones and
// suggests the nearest.
func Load(spec string) (http.Handler, error) {
	if dir, ok := strings.CutPrefix(spec, staticPrefix); ok {
		return Static(dir)
	}
	mu.RLock()
	h, ok := registry[spec]
	mu.RUnlock()
	if ok {
		return h, nil
	}
	names := Names()
	hint := ""
	if near := suggest.Nearest(spec, names); near != "" {
		hint = fmt.Sprintf("did you mean %q? ", near)
	}
	return nil, fmt.Errorf("apps: unknown app %q (%sknown: %s)", spec, hint, strings.Join(names, ", "))
}
