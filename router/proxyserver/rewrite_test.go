package proxyserver_test

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/boltstore"
	"github.com/sluicehq/sluice/configsvc/testkit"
	"github.com/sluicehq/sluice/router/proxyserver"
)

// switchSource is a proxyserver.Source whose store can be replaced (by a
// restored copy); replacing it ends the running watches, as a reconnect
// would.
type switchSource struct {
	mu  sync.Mutex
	cur configsvc.Store
	cut chan struct{}
}

func (s *switchSource) store() (configsvc.Store, chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur, s.cut
}

func (s *switchSource) use(st configsvc.Store) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cur = st
	close(s.cut)
	s.cut = make(chan struct{})
}

func (s *switchSource) Snapshot(ctx context.Context, ref configsvc.Ref, rev int64) (configsvc.Snapshot, error) {
	st, _ := s.store()
	return st.Snapshot(ctx, ref, rev)
}

func (s *switchSource) WatchInstances(ctx context.Context, svc string) <-chan configsvc.InstancesEvent {
	st, _ := s.store()
	return st.WatchInstances(ctx, svc)
}

func (s *switchSource) Records() configsvc.RecordStore {
	st, _ := s.store()
	return st.Records()
}

func (s *switchSource) Watch(ctx context.Context, ref configsvc.Ref, from int64, opts ...configsvc.WatchOption) <-chan configsvc.Event {
	st, cut := s.store()
	wctx, cancel := context.WithCancel(ctx)
	in := st.Watch(wctx, ref, from, opts...)
	out := make(chan configsvc.Event)
	go func() {
		defer close(out)
		defer func() {
			cancel()
			for range in {
			}
		}()
		for {
			select {
			case ev, ok := <-in:
				if !ok {
					return
				}
				select {
				case out <- ev:
				case <-ctx.Done():
					return
				}
			case <-cut:
				return
			}
		}
	}()
	return out
}

// TestFaultRouteFileRestoredAndBumped: the proxy runs revision 2 of the
// route file when its store is replaced by a backup taken at revision 1.
// It keeps revision 2 while the restored store, in the same generation,
// is below it; once the generation is bumped it takes revision 1 as a new
// state, counts the rewrite and follows the new history.
func TestFaultRouteFileRestoredAndBumped(t *testing.T) {
	dir := t.TempDir()
	open := func(path string) *boltstore.Store {
		st, err := boltstore.Open(path, boltstore.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	orig := open(filepath.Join(dir, "sluice.db"))
	ctx := context.Background()
	if err := orig.Create(ctx, configsvc.Service(configsvc.SystemService)); err != nil {
		t.Fatal(err)
	}
	route := func(name string) string {
		return "routes:\n  - name: " + name + "\n    match: {path_prefix: /" + name + "}\n    upstream: {static: [\"127.0.0.1:9\"]}\n"
	}
	publish(t, orig, 0, route("one"))
	copyFile(t, orig.Path(), filepath.Join(dir, "restored.db"))
	publish(t, orig, 1, route("two"))

	src := &switchSource{cur: orig, cut: make(chan struct{})}
	p, err := proxyserver.New(src, proxyserver.Options{RetryInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = p.Run(rctx) }()
	t.Cleanup(func() { stop(); <-done; p.Close() })
	routeName := func() string {
		if rs := p.State().Routes; len(rs) == 1 {
			return rs[0].Name
		}
		return ""
	}
	testkit.EventuallyTrue(t, 5*time.Second, "revision 2 in force", func() bool { return p.Revision() == 2 && routeName() == "two" })

	restored := open(filepath.Join(dir, "restored.db"))
	src.use(restored)
	for deadline := time.Now().Add(300 * time.Millisecond); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if p.Revision() != 2 || routeName() != "two" {
			t.Fatalf("the proxy went to revision %d (%q) while the restored store was below its revision", p.Revision(), routeName())
		}
	}
	if _, err := restored.BumpGeneration(ctx, "restored"); err != nil {
		t.Fatal(err)
	}
	testkit.EventuallyTrue(t, 5*time.Second, "the restored revision 1 in force", func() bool { return p.Revision() == 1 && routeName() == "one" })
	if n := p.Rewrites(); n != 1 {
		t.Fatalf("Rewrites() = %d, want 1", n)
	}
	publish(t, restored, 1, route("three"))
	testkit.EventuallyTrue(t, 5*time.Second, "the new history's revision 2", func() bool { return p.Revision() == 2 && routeName() == "three" })
}

// TestRouteFileServiceRecreated: sluice-system is deleted under a proxy
// at revision 2 of the route file. The proxy creates it again (empty, at
// revision 0) and takes it as a new history: its revision 0 (no routes)
// and then its revision 1 are applied, although both are below the
// revision it held. Taken as one history, the proxy would keep revision 2
// until the new service passed it.
func TestRouteFileServiceRecreated(t *testing.T) {
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "sluice.db"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	sys := configsvc.Service(configsvc.SystemService)
	if err := st.Create(ctx, sys); err != nil {
		t.Fatal(err)
	}
	route := func(name string) string {
		return "routes:\n  - name: " + name + "\n    match: {path_prefix: /" + name + "}\n    upstream: {static: [\"127.0.0.1:9\"]}\n"
	}
	publish(t, st, 0, route("one"))
	publish(t, st, 1, route("two"))
	p, err := proxyserver.New(st, proxyserver.Options{RetryInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	rctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = p.Run(rctx) }()
	t.Cleanup(func() { stop(); <-done; p.Close() })
	routeName := func() string {
		if rs := p.State().Routes; len(rs) == 1 {
			return rs[0].Name
		}
		return ""
	}
	testkit.EventuallyTrue(t, 5*time.Second, "revision 2 in force", func() bool { return p.Revision() == 2 && routeName() == "two" })

	if err := st.Delete(ctx, sys); err != nil {
		t.Fatal(err)
	}
	testkit.EventuallyTrue(t, 5*time.Second, "the re-created service's revision 0 (no routes) in force", func() bool {
		return p.Revision() == 0 && len(p.State().Routes) == 0
	})
	publish(t, st, 0, route("three"))
	testkit.EventuallyTrue(t, 5*time.Second, "the re-created service's revision 1 in force", func() bool {
		return p.Revision() == 1 && routeName() == "three"
	})
	if n := p.Rewrites(); n != 0 {
		t.Fatalf("Rewrites() = %d; a deleted service is not a rewritten history", n)
	}
}

// copyFile copies an idle bbolt file, as a backup would.
func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err == nil {
		err = os.WriteFile(dst, b, 0o600)
	}
	if err != nil {
		t.Fatal(err)
	}
}
