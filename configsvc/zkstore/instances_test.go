package zkstore_test

import (
	"context"
	"errors"
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

// TestWatchEndsWhenRecreated: a service deleted and created again is a new
// history; a watch of the old one ends with ErrNotFound instead of waiting
// for revision numbers the new history has not reached.
func TestWatchEndsWhenRecreated(t *testing.T) {
	srv := shared(t)
	st := mustOpen(t, srv.Servers(), nil)
	ctx := testCtx(t)
	ref := configsvc.Service("orders")
	if err := st.Create(ctx, ref); err != nil {
		t.Fatal(err)
	}
	publish(ctx, t, st, ref, 0, put("a.txt", "1"))
	publish(ctx, t, st, ref, 1, put("a.txt", "2"))
	ch := st.Watch(ctx, ref, 0)
	for n := int64(1); n <= 2; n++ {
		if ev := <-ch; ev.Revision == nil || ev.Revision.Number != n {
			t.Fatalf("event %+v, want revision %d", ev, n)
		}
	}
	if err := st.Delete(ctx, ref); err != nil {
		t.Fatal(err)
	}
	if err := st.Create(ctx, ref); err != nil {
		t.Fatal(err)
	}
	publish(ctx, t, st, ref, 0, put("a.txt", "new 1"))
	timeout := time.After(15 * time.Second)
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatal("watch closed without an ErrNotFound event")
			}
			if ev.Err == nil || errors.Is(ev.Err, configsvc.ErrUnavailable) {
				t.Fatalf("unexpected event %+v after the service was re-created", ev)
			}
			if !errors.Is(ev.Err, configsvc.ErrNotFound) {
				t.Fatalf("watch error %v, want ErrNotFound", ev.Err)
			}
			if _, ok := <-ch; ok {
				t.Fatal("watch not closed after ErrNotFound")
			}
			return
		case <-timeout:
			t.Fatal("no ErrNotFound within 15s of re-creating the service")
		}
	}
}
