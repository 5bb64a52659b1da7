package config_test

// config knows no worker class by name: the workers registry fills its
// catalog (see Catalog). Linking the built-in classes into this test binary
// gives every test in the package, internal ones included, the catalog a
// real program has.
import (
	"slices"
	"strings"
	"testing"

	"github.com/multiserve/multiserve/config"
	"github.com/multiserve/multiserve/workers"
	_ "github.com/multiserve/multiserve/workers/evloop"
	_ "github.com/multiserve/multiserve/workers/goroutine"
	_ "github.com/multiserve/multiserve/workers/sync"
	_ "github.com/multiserve/multiserve/workers/threaded"
)

// TestWorkerClassFromRegistry: worker_class accepts exactly the registered
// classes, defaults to the one that says so, and --help lists them all.
func TestWorkerClassFromRegistry(t *testing.T) {
	for _, name := range workers.Classes() {
		l, err := config.Load([]string{"-k", name})
		if err != nil {
			t.Errorf("-k %s: %v", name, err)
			continue
		}
		if l.Config.WorkerClass != name {
			t.Errorf("-k %s: got %q", name, l.Config.WorkerClass)
		}
	}
	l, err := config.Load([]string{"--help"})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range workers.Classes() {
		if !strings.Contains(l.Usage, name) {
			t.Errorf("--help does not list class %s:\n%s", name, l.Usage)
		}
	}
	def, err := workers.Lookup(config.Default().WorkerClass)
	if err != nil || !def.Default {
		t.Errorf("default worker_class %q is not the class registered as default (%v)", config.Default().WorkerClass, err)
	}
	for _, s := range config.Settings() {
		if s.Key == "worker_class" && !slices.Contains(workers.Classes(), s.Default.(string)) {
			t.Errorf("worker_class default %q is not registered", s.Default)
		}
	}
}
