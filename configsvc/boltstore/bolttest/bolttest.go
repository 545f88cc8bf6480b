package bolttest

import (
	"path/filepath"
	"testing"

	"github.com/sluicehq/sluice/configsvc/boltstore"
)

// MustOpen opens a store with opts on a new file, data/sluice.db in t's
// temp dir (so Open creates the directory, as `sluice server` does), and
// closes it when t ends. It fails t when the store does not open.
func MustOpen(t testing.TB, opts boltstore.Options) *boltstore.Store {
	t.Helper()
	return MustOpenAt(t, filepath.Join(t.TempDir(), "data", "sluice.db"), opts)
}

// MustOpenAt opens a store with opts on path, for tests that reopen a file
// or choose where it lies, and closes it when t ends (a second Close, by the
// test, is harmless). It fails t when the store does not open.
func MustOpenAt(t testing.TB, path string, opts boltstore.Options) *boltstore.Store {
	t.Helper()
	s, err := boltstore.Open(path, opts)
	if err != nil {
		t.Fatalf("boltstore.Open(%s): %v", path, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}
