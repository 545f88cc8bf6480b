package schema

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"sort"

	"github.com/sluicehq/sluice/configsvc"
)

// FSTree is the files of one directory of an fs.FS as a Tree: the layout of
// a service or group checked out locally, for `sluice validate`. Only
// regular files whose names are valid config file names count;
// subdirectories and other names are left out.
type FSTree struct {
	fsys  fs.FS
	names map[string]bool
	sums  map[string]string
}

var _ Tree = (*FSTree)(nil)

// NewFSTree lists the top directory of fsys (e.g. os.DirFS(dir)).
func NewFSTree(fsys fs.FS) (*FSTree, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, err
	}
	t := &FSTree{fsys: fsys, names: map[string]bool{}, sums: map[string]string{}}
	for _, e := range entries {
		if e.Type().IsRegular() && configsvc.ValidateFileName(e.Name()) == nil {
			t.names[e.Name()] = true
		}
	}
	return t, nil
}

// Files returns the tree's file names, sorted.
func (t *FSTree) Files() []string {
	out := make([]string, 0, len(t.names))
	for n := range t.names {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// Has reports whether the directory holds name.
func (t *FSTree) Has(name string) bool { return t.names[name] }

// Read returns name's content, at most configsvc.MaxFileSize bytes
// (a *configsvc.LimitError beyond).
func (t *FSTree) Read(_ context.Context, name string) ([]byte, error) {
	if !t.names[name] {
		return nil, fmt.Errorf("no file %q: %w", name, configsvc.ErrNotFound)
	}
	b, err := fs.ReadFile(t.fsys, name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no file %q: %w", name, configsvc.ErrNotFound)
	}
	if err == nil && len(b) > configsvc.MaxFileSize {
		return nil, &configsvc.LimitError{What: fmt.Sprintf("file %q", name), Size: int64(len(b)), Limit: configsvc.MaxFileSize}
	}
	return b, err
}

// Sum returns the checksum of name's content.
func (t *FSTree) Sum(ctx context.Context, name string) (string, bool) {
	if s, ok := t.sums[name]; ok {
		return s, true
	}
	b, err := t.Read(ctx, name)
	if err != nil {
		return "", false
	}
	s := configsvc.Checksum(b)
	t.sums[name] = s
	return s, true
}
