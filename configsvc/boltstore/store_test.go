package boltstore_test

import (
	"path/filepath"
	"testing"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/boltstore"
	"github.com/sluicehq/sluice/configsvc/storetest"
)

// MustOpen opens a store on a new file in t's temp dir, closed at cleanup.
func MustOpen(t *testing.T, opts boltstore.Options) *boltstore.Store {
	t.Helper()
	s, err := boltstore.Open(filepath.Join(t.TempDir(), "data", "sluice.db"), opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.RunWithOptions(t, storetest.Options{
		Open: func(t *testing.T) configsvc.Store { return MustOpen(t, boltstore.Options{}) },
		OpenWithRetention: func(t *testing.T, n int) configsvc.Store {
			return MustOpen(t, boltstore.Options{Retention: n})
		},
	})
}
