package zkstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
)

// TestWatchInstancesSeesUpdates: an instance changing its applied
// revision (Lease.Update, no join or leave) reaches WatchInstances.
func TestWatchInstancesSeesUpdates(t *testing.T) {
	srv := shared(t)
	st := mustOpen(t, srv.Servers(), nil)
	ctx := testCtx(t)
	if err := st.Create(ctx, configsvc.Service("orders")); err != nil {
		t.Fatal(err)
	}
	inst := configsvc.Instance{Service: "orders", ID: "o-1", Addr: "127.0.0.1:1", Status: configsvc.StatusStarting}
	l, err := st.Register(ctx, inst)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch := st.WatchInstances(wctx, "orders")
	waitList(t, ch, func(list []configsvc.Instance) bool {
		return len(list) == 1 && list[0].Status == configsvc.StatusStarting
	})
	inst.Status, inst.Revision = configsvc.StatusApplied, 7
	if err := l.Update(ctx, inst); err != nil {
		t.Fatal(err)
	}
	waitList(t, ch, func(list []configsvc.Instance) bool {
		return len(list) == 1 && list[0].Status == configsvc.StatusApplied && list[0].Revision == 7
	})
}

func waitList(t *testing.T, ch <-chan configsvc.InstancesEvent, ok func([]configsvc.Instance) bool) {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case ev, open := <-ch:
			if !open {
				t.Fatal("WatchInstances closed")
			}
			if ev.Err == nil && ok(ev.Instances) {
				return
			}
		case <-timeout:
			t.Fatal("WatchInstances: no matching list within 15s")
		}
	}
}
