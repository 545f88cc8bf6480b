package zkstore_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/testkit"
	"github.com/sluicehq/sluice/configsvc/zkstore"
	"github.com/sluicehq/sluice/configsvc/zkstore/zktest"
)

// waitIDs waits up to within for a list from ch holding exactly ids, and
// returns how long that took.
func waitIDs(t *testing.T, ch <-chan configsvc.InstancesEvent, within time.Duration, ids ...string) time.Duration {
	t.Helper()
	start := time.Now()
	timeout := time.NewTimer(within)
	defer timeout.Stop()
	var last []string
	for {
		select {
		case ev, open := <-ch:
			if !open {
				t.Fatalf("WatchInstances closed while waiting for %v", ids)
			}
			if ev.Err != nil {
				continue
			}
			last = last[:0]
			for _, in := range ev.Instances {
				last = append(last, in.ID)
			}
			if slices.Equal(last, ids) || len(last) == 0 && len(ids) == 0 {
				return time.Since(start)
			}
		case <-timeout.C:
			t.Fatalf("WatchInstances: no list %v within %v (last %v)", ids, within, last)
		}
	}
}

func instance(svc, id string, rev int64) configsvc.Instance {
	return configsvc.Instance{Service: svc, ID: id, Addr: "127.0.0.1:1", Status: configsvc.StatusApplied, Revision: rev}
}

// regFixture is a registrant store a, whose network goes through px, an
// instance a-1 it registered in service orders, and a store b on the
// same root that watches the instances directly.
type regFixture struct {
	srv   *zktest.Server
	px    *zktest.Proxy
	a, b  *zkstore.Store
	lease configsvc.Lease
	w     <-chan configsvc.InstancesEvent // b's watch of orders, showing a-1
	ctx   context.Context
}

// newRegFixture builds a regFixture under root with a's session timeout.
func newRegFixture(t *testing.T, root string, session time.Duration) *regFixture {
	t.Helper()
	f := &regFixture{srv: shared(t), ctx: testCtx(t)}
	f.px = zktest.StartProxy(t, f.srv.Addr())
	f.a = mustOpen(t, []string{f.px.Addr()}, func(c *zkstore.Config) {
		c.Root, c.SessionTimeout, c.OpTimeout = root, session, time.Second
	})
	f.b = mustOpen(t, f.srv.Servers(), func(c *zkstore.Config) { c.Root = root })
	if err := f.b.Create(f.ctx, configsvc.Service("orders")); err != nil {
		t.Fatal(err)
	}
	var err error
	if f.lease, err = f.a.Register(f.ctx, instance("orders", "a-1", 1)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.lease.Close() })
	f.w = f.b.WatchInstances(f.ctx, "orders")
	waitIDs(t, f.w, 10*time.Second, "a-1")
	return f
}

// TestFaultSecondPartitionDuringReRegistration: the registrant's network
// goes away for longer than its session, so ZooKeeper expires the session
// and its instance node; when the network comes back the store gets a new
// session, and the network goes away again at the first request of that
// session (the re-registration's), this time for less than a session. The
// store must keep trying: once the second partition heals, the instance is
// back in every watcher's list within the session timeout plus 2 s. The
// first partition is a loud one (connections closed) or a silent one (a
// black hole: the client notices only by its own timeouts).
func TestFaultSecondPartitionDuringReRegistration(t *testing.T) {
	for _, first := range []string{"Partition", "Blackhole"} {
		t.Run(first, func(t *testing.T) {
			root := "/second-partition-" + first
			const session = 2 * time.Second
			f := newRegFixture(t, root, session)
			px, ctx := f.px, f.ctx
			c := mustOpen(t, f.srv.Servers(), func(c *zkstore.Config) { c.Root = root })
			watchers := []<-chan configsvc.InstancesEvent{f.w, c.WatchInstances(ctx, "orders")}
			waitIDs(t, watchers[1], 10*time.Second, "a-1")

			if first == "Blackhole" {
				px.Blackhole()
			} else {
				px.Partition()
			}
			waitIDs(t, watchers[0], 15*time.Second) // ZooKeeper expired a's session
			px.PartitionAtNextRequest()
			px.Heal()
			deadline := time.Now().Add(15 * time.Second)
			for !px.Partitioned() {
				if time.Now().After(deadline) {
					t.Fatal("the store sent no request on its new session within 15s")
				}
				time.Sleep(10 * time.Millisecond)
			}
			time.Sleep(session / 4) // shorter than the session: it survives this one
			px.Heal()
			healed := time.Now()
			for i, w := range watchers {
				left := session + 2*time.Second - time.Since(healed)
				waitIDs(t, w, left, "a-1")
				t.Logf("watcher %d saw the instance again %v after the heal", i, time.Since(healed).Round(time.Millisecond))
			}
			// The lease is still the registration: updates reach the watchers.
			if err := f.lease.Update(ctx, instance("orders", "a-1", 2)); err != nil {
				t.Fatalf("Update after the partitions: %v", err)
			}
			waitList(t, watchers[1], func(l []configsvc.Instance) bool { return len(l) == 1 && l[0].Revision == 2 })
		})
	}
}

// TestFaultWatcherSessionExpiry: the watching store's network goes away
// for longer than its session (ZooKeeper drops its watches with it) while
// instances join and leave. Once the partition heals, its list is the live
// one within the session timeout plus 2 s.
func TestFaultWatcherSessionExpiry(t *testing.T) {
	srv := shared(t)
	px := zktest.StartProxy(t, srv.Addr())
	const root = "/watcher-expiry"
	const session = 2 * time.Second
	a := mustOpen(t, srv.Servers(), func(c *zkstore.Config) { c.Root = root })
	w := mustOpen(t, []string{px.Addr()}, func(c *zkstore.Config) {
		c.Root, c.SessionTimeout, c.OpTimeout = root, session, time.Second
	})
	ctx := testCtx(t)
	if err := a.Create(ctx, configsvc.Service("orders")); err != nil {
		t.Fatal(err)
	}
	first, err := a.Register(ctx, instance("orders", "a-1", 1))
	if err != nil {
		t.Fatal(err)
	}
	ch := w.WatchInstances(ctx, "orders")
	waitIDs(t, ch, 10*time.Second, "a-1")
	px.Partition()
	time.Sleep(2 * session) // past the session: ZooKeeper expires it
	if _, err := a.Register(ctx, instance("orders", "a-2", 1)); err != nil {
		t.Fatal(err)
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	px.Heal()
	healed := time.Now()
	waitIDs(t, ch, session+2*time.Second, "a-2")
	t.Logf("the watcher's list was live again %v after the heal", time.Since(healed).Round(time.Millisecond))
}

// TestFaultRegisterTimeoutLeavesNoNode: Register gives up while its create
// is still on its way (the server is frozen); when the server answers, the
// create lands. The store must remove that node: a Register that failed
// leaves no instance behind on its live session.
func TestFaultRegisterTimeoutLeavesNoNode(t *testing.T) {
	srv := zktest.Start(t)
	const root = "/register-timeout"
	a := mustOpen(t, srv.Servers(), func(c *zkstore.Config) { c.Root, c.SessionTimeout = root, 10*time.Second })
	b := mustOpen(t, srv.Servers(), func(c *zkstore.Config) { c.Root = root })
	ctx := testCtx(t)
	if err := b.Create(ctx, configsvc.Service("orders")); err != nil {
		t.Fatal(err)
	}
	srv.Pause()
	rctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	_, err := a.Register(rctx, instance("orders", "late-1", 1))
	cancel()
	srv.Resume()
	if !errors.Is(err, configsvc.ErrUnavailable) {
		t.Fatalf("Register against a frozen server = %v, want ErrUnavailable", err)
	}
	// The client answers in order: once Ping returns, the create has been
	// applied (or refused).
	if err := a.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	testkit.EventuallyTrue(t, 5*time.Second, "the late node removed", func() bool {
		list, err := b.Instances(ctx, "orders")
		return err == nil && len(list) == 0
	})
	time.Sleep(time.Second)
	if list, err := b.Instances(ctx, "orders"); err != nil || len(list) != 0 {
		t.Fatalf("a second after, Instances = %v, %v; want none", list, err)
	}
	// The id is free for a new registration.
	l, err := a.Register(ctx, instance("orders", "late-1", 2))
	if err != nil {
		t.Fatalf("Register again: %v", err)
	}
	defer l.Close()
	testkit.EventuallyTrue(t, 5*time.Second, "registered", func() bool {
		list, err := b.Instances(ctx, "orders")
		return err == nil && len(list) == 1 && list[0].Revision == 2
	})
}

// TestFaultCloseDuringPartitionRemovesNode: Lease.Close while the store's
// network is down (shorter than its session) cannot delete the node; once
// the network is back the node must go, not stay on the live session.
func TestFaultCloseDuringPartitionRemovesNode(t *testing.T) {
	f := newRegFixture(t, "/close-partition", 20*time.Second)
	px, lease, w := f.px, f.lease, f.w
	px.Partition()
	err := lease.Close()
	t.Logf("Close while partitioned: %v", err)
	time.Sleep(500 * time.Millisecond)
	px.Heal()
	waitIDs(t, w, 5*time.Second) // far sooner than the 20 s session could end
	if err := lease.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

// TestFaultUpdatesRacingReRegistration: while the store registers its
// instance again after a session expiry, the application keeps updating
// it. Whatever the interleaving, the node ends with the newest update: no
// older record is written over a newer one.
func TestFaultUpdatesRacingReRegistration(t *testing.T) {
	f := newRegFixture(t, "/update-race", time.Second)
	px, lease, w, b, ctx := f.px, f.lease, f.w, f.b, f.ctx
	px.Partition()
	waitIDs(t, w, 15*time.Second)
	px.Heal()
	var last int64
	for rev := int64(2); rev <= 200; rev++ {
		uctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
		_ = lease.Update(uctx, instance("orders", "a-1", rev)) // may fail while reconnecting
		cancel()
		last = rev
	}
	waitList(t, w, func(l []configsvc.Instance) bool { return len(l) == 1 && l[0].Revision == last })
	time.Sleep(500 * time.Millisecond)
	list, err := b.Instances(ctx, "orders")
	if err != nil || len(list) != 1 || list[0].Revision != last {
		t.Fatalf("after the updates settled, Instances = %+v, %v; want revision %d", list, err, last)
	}
}

// TestFlappingInstanceKeepsWatchesBounded: one instance among 300 leaves
// and joins 1000 times, and watchers come and go, while a store watches the
// service. The store holds one watch per instance node (plus the child
// watch), whatever the churn: the client's watch channels do not pile up.
func TestFlappingInstanceKeepsWatchesBounded(t *testing.T) {
	srv := shared(t)
	const root = "/flapping"
	const n, flaps = 300, 1000
	a := mustOpen(t, srv.Servers(), func(c *zkstore.Config) { c.Root = root })
	w := mustOpen(t, srv.Servers(), func(c *zkstore.Config) { c.Root = root })
	ctx := testCtx(t)
	if err := a.Create(ctx, configsvc.Service("orders")); err != nil {
		t.Fatal(err)
	}
	var g errgroup.Group
	g.SetLimit(16)
	want := make([]string, n)
	for i := range n {
		want[i] = fmt.Sprintf("i-%03d", i)
		g.Go(func() error {
			_, err := a.Register(ctx, instance("orders", want[i], 1))
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	ch := w.WatchInstances(ctx, "orders")
	waitIDs(t, ch, 20*time.Second, want...)
	var (
		mu     sync.Mutex
		latest []configsvc.Instance
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range ch {
			if ev.Err == nil {
				mu.Lock()
				latest = ev.Instances
				mu.Unlock()
			}
		}
	}()
	for i := range flaps {
		l, err := a.Register(ctx, instance("orders", "flapper", int64(i)))
		if err != nil {
			t.Fatalf("flap %d: %v", i, err)
		}
		if i%50 == 0 {
			// A watcher that comes and goes (a console viewer, an SSE client).
			wctx, cancel := context.WithCancel(ctx)
			<-w.WatchInstances(wctx, "orders")
			cancel()
		}
		if err := l.Close(); err != nil {
			t.Fatalf("flap %d: close: %v", i, err)
		}
	}
	// A last instance joins and leaves: once the watcher's list has shown
	// both, it has handled every flap before them (ZooKeeper delivers a
	// client's events in order) and holds what it holds at rest.
	has := func(id string) bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.ContainsFunc(latest, func(in configsvc.Instance) bool { return in.ID == id })
	}
	last, err := a.Register(ctx, instance("orders", "zz-last", 1))
	if err != nil {
		t.Fatal(err)
	}
	testkit.EventuallyTrue(t, 20*time.Second, "the watcher sees the last instance join", func() bool { return has("zz-last") })
	if err := last.Close(); err != nil {
		t.Fatal(err)
	}
	testkit.EventuallyTrue(t, 20*time.Second, "the watcher's list settles on the 300", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(latest) == n && latest[0].ID == want[0] && latest[n-1].ID == want[n-1]
	})
	got := zkstore.InstanceWatches(w)
	t.Logf("after %d flaps among %d instances: %d watch channels held", flaps, n, got)
	if got > n+1 {
		t.Fatalf("the watching store holds %d watch channels for %d instance nodes; want at most one per node plus the child watch (%d)", got, n, n+1)
	}
}
