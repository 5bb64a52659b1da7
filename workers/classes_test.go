package workers_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/multiserve/multiserve/config"
	"github.com/multiserve/multiserve/workers"
	_ "github.com/multiserve/multiserve/workers/evloop"
	_ "github.com/multiserve/multiserve/workers/goroutine"
	_ "github.com/multiserve/multiserve/workers/sync"
	_ "github.com/multiserve/multiserve/workers/threaded"
)

func TestDescribe(t *testing.T) {
	tests := []struct {
		class                string
		workers, threads, wc int
		loops                int
		engine               string
		want                 string
	}{
		{"sync", 2, 1, 1000, 0, "native", "2 workers × 1 thread, blocking IO: at most 2 requests in flight"},
		{"sync", 1, 8, 1000, 0, "native", "1 worker × 1 thread, blocking IO: at most 1 request in flight"},
		{"threaded", 2, 4, 100, 0, "native",
			"2 workers × 4 threads, blocking IO per thread: at most 8 requests in flight, 200 connections open"},
		{"evloop", 2, 0, 1000, 0, "native",
			"2 workers × one event loop per CPU the worker may use, non-blocking IO, handlers inline on the loop (a blocking handler stalls its loop): at most 2000 connections open"},
		{"evloop", 1, 16, 1000, 2, "native",
			"1 worker × 2 event loops, non-blocking IO, handlers on a pool of 16 goroutines per worker: at most 16 requests in flight, 1000 connections open"},
		{"goroutine", 3, 1, 1000, 0, "native",
			"3 workers, a goroutine per connection, non-blocking IO under blocking-looking code: at most 3000 connections open"},
		{"goroutine", 1, 1, 1, 0, "net/http",
			"1 worker, a goroutine per connection (net/http engine), non-blocking IO under blocking-looking code: at most 1 connection open"},
		{"fibers", 2, 1, 1000, 0, "native", `2 workers of unknown class "fibers"`},
	}
	for _, tt := range tests {
		c := config.Default()
		c.WorkerClass, c.Workers, c.Threads, c.WorkerConnections = tt.class, tt.workers, tt.threads, tt.wc
		c.EvloopLoops, c.HTTPEngine = tt.loops, tt.engine
		if got := workers.Describe(c); got != tt.want {
			t.Errorf("Describe(%s)\n got %q\nwant %q", tt.class, got, tt.want)
		}
	}
}

// TestClassesDescribeThemselves: every registered class has a summary, a
// banner sentence of its own, and names only real settings as its own.
func TestClassesDescribeThemselves(t *testing.T) {
	keys := map[string]bool{}
	for _, s := range config.Settings() {
		keys[s.Key] = true
	}
	for _, name := range workers.Classes() {
		cls, _ := workers.Lookup(name)
		if cls.Summary == "" || cls.Describe == nil {
			t.Errorf("%s: no Summary or Describe", name)
		}
		for _, k := range cls.Settings {
			if !keys[k] {
				t.Errorf("%s: Settings names unknown setting %q", name, k)
			}
		}
	}
}

// TestNoClassNamedOutsideItsPackage: nothing but a class's own package
// names it; everything else asks the registry. Tests, examples/ and bench/
// (which choose classes to run) are exempt.
func TestNoClassNamedOutsideItsPackage(t *testing.T) {
	names := workers.Classes()
	root := filepath.Join("..")
	exempt := []string{"examples", "bench", ".git"}
	for _, n := range names {
		exempt = append(exempt, filepath.Join("workers", n))
	}
	var hits []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			if slices.Contains(exempt, rel) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		hits = append(hits, classLiterals(t, path, rel, names)...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hits {
		t.Errorf("%s names a worker class: ask the workers registry instead", h)
	}
}

// classLiterals lists the string literals in file path that are a class
// name, outside import declarations.
func classLiterals(t *testing.T, path, rel string, names []string) []string {
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, path, src, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, decl := range f.Decls {
		if g, ok := decl.(*ast.GenDecl); ok && g.Tok == token.IMPORT {
			continue
		}
		ast.Inspect(decl, func(n ast.Node) bool {
			lit, ok := n.(*ast.BasicLit)
			if !ok || lit.Kind != token.STRING {
				return true
			}
			if s, err := strconv.Unquote(lit.Value); err == nil && slices.Contains(names, s) {
				out = append(out, rel+":"+strconv.Itoa(fset.Position(lit.Pos()).Line)+": "+lit.Value)
			}
			return true
		})
	}
	return out
}
