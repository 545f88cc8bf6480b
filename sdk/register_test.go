package sdk_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/boltstore"
	"github.com/sluicehq/sluice/configsvc/testkit"
	"github.com/sluicehq/sluice/sdk"
)

// TestRegistersAgainInRecreatedService: the service is deleted (its
// registrations end with it) and created again while the client runs. The
// lease the client holds answers ErrNotFound from then on; the client
// registers anew in the new service instead of retrying the dead lease.
func TestRegistersAgainInRecreatedService(t *testing.T) {
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "sluice.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ref := configsvc.Service("orders")
	mustCreate(t, st, ref)
	mustPublish(t, st, ref, map[string]string{"a.txt": "1"})
	mustOpen(t, sdk.Config{Service: "orders", Store: st, Instance: sdk.Instance{ID: "orders-1", Addr: "127.0.0.1:9001"},
		RetryMin: 20 * time.Millisecond, RetryMax: 100 * time.Millisecond, Logger: testLogger(t)})
	testkit.EventuallyTrue(t, 5*time.Second, "registered", func() bool { in, ok := instance(st, "orders", "orders-1"); return ok && in.Revision == 1 })

	if err := st.Delete(context.Background(), ref); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, st, ref)
	for i := range 3 {
		mustPublish(t, st, ref, map[string]string{"a.txt": string(rune('2' + i))})
	}
	testkit.EventuallyTrue(t, 10*time.Second, "registered in the new service", func() bool {
		in, ok := instance(st, "orders", "orders-1")
		return ok && in.Revision == 3
	})
}

// TestRegistrationAppliedAt: the instance record says since when it runs
// its revision. applied_at is set when a revision of the service is
// applied and kept while the record changes for other reasons (a linked
// group's new revision); started stays the client's start.
func TestRegistrationAppliedAt(t *testing.T) {
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "sluice.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	ref, group := configsvc.Service("orders"), configsvc.Group("common")
	mustCreate(t, st, ref)
	mustCreate(t, st, group)
	if err := st.Link(ctx, "orders", "common"); err != nil {
		t.Fatal(err)
	}
	mustPublish(t, st, ref, map[string]string{"a.txt": "1"})
	t0 := time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)
	clock := testkit.NewClock(t0)
	mustOpen(t, sdk.Config{Service: "orders", Store: st, Instance: sdk.Instance{ID: "orders-1", Addr: "127.0.0.1:9001"},
		Now: clock.Now, RetryMin: 20 * time.Millisecond, RetryMax: 100 * time.Millisecond, Logger: testLogger(t)})
	testkit.EventuallyTrue(t, 5*time.Second, "registered at revision 1, applied at the start", func() bool {
		in, ok := instance(st, "orders", "orders-1")
		return ok && in.Revision == 1 && in.AppliedAt.Equal(t0) && in.Started.Equal(t0)
	})

	clock.Advance(time.Hour)
	mustPublish(t, st, group, map[string]string{"c.txt": "1"})
	testkit.EventuallyTrue(t, 5*time.Second, "a group revision updates the record, not applied_at", func() bool {
		in, ok := instance(st, "orders", "orders-1")
		return ok && in.Updated.Equal(t0.Add(time.Hour)) && in.Revision == 1 && in.AppliedAt.Equal(t0)
	})

	clock.Advance(time.Hour)
	mustPublish(t, st, ref, map[string]string{"a.txt": "2"})
	testkit.EventuallyTrue(t, 5*time.Second, "revision 2 applied two hours later", func() bool {
		in, ok := instance(st, "orders", "orders-1")
		return ok && in.Revision == 2 && in.AppliedAt.Equal(t0.Add(2*time.Hour)) && in.Started.Equal(t0)
	})
}
