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
