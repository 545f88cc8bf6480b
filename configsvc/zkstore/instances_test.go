package zkstore_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/zkstore"
	"github.com/sluicehq/sluice/configsvc/zkstore/zktest"
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
	if ev := <-ch; !ev.GraysChanged || len(ev.Grays) != 0 {
		t.Fatalf("event %+v, want the grays' baseline (none) after the revisions up to the head", ev)
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

// TestFaultRemoveInstanceOfSilentProcess: a process that stopped answering
// (hung, or cut off) keeps its ephemeral instance node until its session
// expires; an administrator's RemoveInstance, through another session,
// deletes it at once.
func TestFaultRemoveInstanceOfSilentProcess(t *testing.T) {
	srv := shared(t)
	root := fmt.Sprintf("/sluice-test/%d", roots.Add(1))
	admin := mustOpen(t, srv.Servers(), func(c *zkstore.Config) { c.Root = root })
	proxy := zktest.StartProxy(t, srv.Servers()[0])
	sdk := mustOpen(t, []string{proxy.Addr()}, func(c *zkstore.Config) { c.Root, c.SessionTimeout = root, 30*time.Second })
	t.Cleanup(proxy.Heal) // before the store's Close, which runs first otherwise
	ctx := testCtx(t)
	if err := admin.Create(ctx, configsvc.Service("orders")); err != nil {
		t.Fatal(err)
	}
	inst := configsvc.Instance{Service: "orders", ID: "o-1", Addr: "127.0.0.1:1", Status: configsvc.StatusApplied}
	if _, err := sdk.Register(ctx, inst); err != nil {
		t.Fatal(err)
	}
	proxy.Blackhole() // the process goes silent; its session lives on for 30 s
	list, err := admin.Instances(ctx, "orders")
	if err != nil || len(list) != 1 {
		t.Fatalf("before: Instances = %v, %v; want o-1 still listed", list, err)
	}
	if err := admin.RemoveInstance(ctx, "orders", "o-1"); err != nil {
		t.Fatalf("RemoveInstance: %v", err)
	}
	if list, err := admin.Instances(ctx, "orders"); err != nil || len(list) != 0 {
		t.Fatalf("after: Instances = %v, %v; want none", list, err)
	}
	if err := admin.RemoveInstance(ctx, "orders", "o-1"); !errors.Is(err, configsvc.ErrNotFound) {
		t.Fatalf("second RemoveInstance: %v, want ErrNotFound", err)
	}
}
