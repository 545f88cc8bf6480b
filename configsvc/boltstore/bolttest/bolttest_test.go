package bolttest_test

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/boltstore"
	"github.com/sluicehq/sluice/configsvc/boltstore/bolttest"
)

func TestMustOpenGivesAStoreClosedAtCleanup(t *testing.T) {
	var st *boltstore.Store
	t.Run("open", func(t *testing.T) {
		st = bolttest.MustOpen(t, boltstore.Options{Retention: 3})
		if err := st.Create(context.Background(), configsvc.Service("orders")); err != nil {
			t.Fatalf("Create on a fresh store: %v", err)
		}
		if dir := filepath.Base(filepath.Dir(st.Path())); dir != "data" {
			t.Fatalf("store at %s, want it in a data directory Open created", st.Path())
		}
	})
	if _, err := st.Head(context.Background(), configsvc.Service("orders")); !errors.Is(err, configsvc.ErrClosed) {
		t.Fatalf("after the subtest ended: %v, want ErrClosed", err)
	}
}

func TestMustOpenAtReopensAFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sluice.db")
	first := bolttest.MustOpenAt(t, path, boltstore.Options{})
	if err := first.Create(context.Background(), configsvc.Service("orders")); err != nil {
		t.Fatal(err)
	}
	first.Close()
	again := bolttest.MustOpenAt(t, path, boltstore.Options{})
	if _, err := again.Head(context.Background(), configsvc.Service("orders")); err != nil {
		t.Fatalf("the reopened file lost the service: %v", err)
	}
}
