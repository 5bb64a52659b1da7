package apps

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

// Static returns the static:DIR app: files under dir, served by
// http.FileServer (ranges, If-Modified-Since, index.html, listings).
// dir must be an existing directory. On top of http.Dir's own refusal of
// ".." it hides dotfiles and dot-directories (no .git, no .env: 404 and
// absent from listings) and refuses symlinks that resolve outside dir.
func Static(dir string) (http.Handler, error) {
	if dir == "" {
		return nil, errors.New("apps: static: empty directory (use static:DIR)")
	}
	abs, err := filepath.Abs(dir)
	if err == nil {
		abs, err = filepath.EvalSymlinks(abs)
	}
	if err != nil {
		return nil, fmt.Errorf("apps: static: %w", err)
	}
	st, err := os.Stat(abs)
	if err != nil {
		return nil, fmt.Errorf("apps: static: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("apps: static: %s is not a directory", dir)
	}
	return http.FileServer(guardedFS{root: abs, fs: http.Dir(abs)}), nil
}

// guardedFS is http.Dir with dotfiles hidden and symlink escapes refused.
type guardedFS struct {
	root string // absolute, symlinks resolved
	fs   http.FileSystem
}

func (g guardedFS) Open(name string) (http.File, error) {
	for _, seg := range strings.Split(name, "/") {
		if strings.HasPrefix(seg, ".") {
			return nil, fs.ErrNotExist
		}
	}
	real, err := filepath.EvalSymlinks(filepath.Join(g.root, filepath.FromSlash(name)))
	if err != nil {
		return nil, fs.ErrNotExist
	}
	if real != g.root && !strings.HasPrefix(real, g.root+string(filepath.Separator)) {
		return nil, fs.ErrNotExist // a symlink out of the tree: do not even confirm it exists
	}
	f, err := g.fs.Open(name)
	if err != nil {
		return nil, err
	}
	return dotHidingFile{f}, nil
}

// dotHidingFile drops dot-entries from directory listings.
type dotHidingFile struct{ http.File }

// With n > 0 it keeps reading until it has an entry or an error, as the
// Readdir contract requires.
func (f dotHidingFile) Readdir(n int) ([]fs.FileInfo, error) {
	for {
		infos, err := f.File.Readdir(n)
		kept := infos[:0]
		for _, fi := range infos {
			if !strings.HasPrefix(fi.Name(), ".") {
				kept = append(kept, fi)
			}
		}
		if n <= 0 || len(kept) > 0 || err != nil {
			return kept, err
		}
	}
}
