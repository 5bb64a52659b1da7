package multiserve

import (
	"bufio"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// citation is what code comments must not lean on: a behaviour reference
// outside the repository, or the history of how the code came about. The
// code explains itself or cites docs/.
var citation = regexp.MustCompile(`SPEC §|[Ii]ssue [0-9]+|[Ss]ession [0-9]+`)

// TestCodeExplainsItself fails on a non-test Go file outside bench/ that
// cites SPEC §N, an issue or a session.
func TestCodeExplainsItself(t *testing.T) {
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path == "bench" || strings.HasPrefix(d.Name(), ".") && path != "." {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		sc := bufio.NewScanner(f)
		for n := 1; sc.Scan(); n++ {
			if citation.MatchString(sc.Text()) {
				t.Errorf("%s:%d cites %q: write what is needed into docs/ and cite that", path, n, citation.FindString(sc.Text()))
			}
		}
		return sc.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
}
