package sdk_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/testkit"
	"github.com/sluicehq/sluice/configsvc/zkstore/zktest"
	"github.com/sluicehq/sluice/sdk"
)

// TestOutage stops ZooKeeper for SLUICE_OUTAGE (default 5s; the issue's
// scenario is 30s): a running client keeps serving, a client started during
// the outage comes up from the cache, and both converge on the newest
// revision within 2 s of ZooKeeper's return.
func TestOutage(t *testing.T) {
	e := mustZK(t)
	svc := configsvc.Service("orders")
	mustCreate(t, e.pub, svc)
	mustPublish(t, e.pub, svc, map[string]string{"db.yaml": "host: a\nport: 1\n"})
	r2 := mustPublish(t, e.pub, svc, map[string]string{"db.yaml": "host: a\nport: 2\n"})
	cacheDir := t.TempDir()

	cfgA := e.config(t, "orders", "orders-a")
	cfgA.CacheDir = cacheDir
	a := mustOpen(t, cfgA)
	dbA := sdk.Bind[DBConfig](a, "db.yaml")
	if a.Revision() != r2 || dbA.Load().Port != 2 {
		t.Fatalf("before the outage: revision %d, port %d", a.Revision(), dbA.Load().Port)
	}

	e.zk.Stop()
	down := time.Now()
	cfgB := e.config(t, "orders", "orders-b")
	cfgB.CacheDir = cacheDir
	cfgB.OpenTimeout = time.Second
	b := mustOpen(t, cfgB)
	if !b.FromCache() {
		t.Fatal("client opened during the outage: FromCache() false")
	}
	dbB := sdk.Bind[DBConfig](b, "db.yaml")
	if b.Revision() != r2 || dbB.Load() != (DBConfig{"a", 2}) || dbB.Err() != nil {
		t.Fatalf("from cache: revision %d, value %+v, err %v", b.Revision(), dbB.Load(), dbB.Err())
	}
	for time.Since(down) < outage(t) {
		if got := dbA.Load(); got != (DBConfig{"a", 2}) {
			t.Fatalf("during the outage the running client serves %+v", got)
		}
		if got, ok := a.File("db.yaml"); !ok || !strings.Contains(string(got), "port: 2") {
			t.Fatalf("during the outage File = %q, %v", got, ok)
		}
		time.Sleep(100 * time.Millisecond)
	}

	e.zk.Restart()
	// The publisher's own session expired during the outage; retry until it
	// is back. Convergence is measured from the publish's return.
	var r3 int64
	testkit.EventuallyTrue(t, 30*time.Second, "publisher back", func() bool {
		n, err := publish(e.pub, svc, map[string]string{"db.yaml": "host: a\nport: 3\n"})
		r3 = n
		return err == nil
	})
	published := time.Now()
	converged := func() bool {
		return a.Revision() == r3 && b.Revision() == r3 && dbA.Load().Port == 3 && dbB.Load().Port == 3 && !b.FromCache()
	}
	for !converged() && time.Since(published) < 2*time.Second {
		time.Sleep(10 * time.Millisecond)
	}
	if !converged() {
		t.Fatalf("2s after publishing revision %d: running client at %d (port %d), cache-started client at %d (port %d, FromCache %v)",
			r3, a.Revision(), dbA.Load().Port, b.Revision(), dbB.Load().Port, b.FromCache())
	}
	t.Logf("converged %v after the publish that followed the restart", time.Since(published))

}

// TestSessionExpiry cuts one client's ZooKeeper connection until its session
// expires while revisions are published, and checks that every one of them
// reaches the client, in order.
func TestSessionExpiry(t *testing.T) {
	e := mustZK(t)
	proxy := zktest.StartProxy(t, e.zk.Addr())
	svc := configsvc.Service("orders")
	mustCreate(t, e.pub, svc)
	mustPublish(t, e.pub, svc, map[string]string{"n.txt": "1"})
	cfg := e.config(t, "orders", "orders-1")
	cfg.ZooKeeper = []string{proxy.Addr()}
	cfg.ZKSessionTimeout = time.Second
	c := mustOpen(t, cfg)
	var log changeLog
	c.OnChange("n.txt", log.add)
	testkit.EventuallyTrue(t, 5*time.Second, "registered", func() bool { _, ok := instance(e.pub, "orders", "orders-1"); return ok })

	proxy.Partition()
	var want []int64
	for i := 2; i <= 6; i++ {
		want = append(want, mustPublish(t, e.pub, svc, map[string]string{"n.txt": fmt.Sprint(i)}))
	}
	// Past the session timeout the server expires the session: the
	// ephemeral registration disappears.
	testkit.EventuallyTrue(t, 10*time.Second, "session expired (registration gone)", func() bool {
		_, ok := instance(e.pub, "orders", "orders-1")
		return !ok
	})
	for i := 7; i <= 8; i++ {
		want = append(want, mustPublish(t, e.pub, svc, map[string]string{"n.txt": fmt.Sprint(i)}))
	}
	proxy.Heal()
	testkit.EventuallyTrue(t, 10*time.Second, "all revisions delivered", func() bool { return len(log.revisions()) >= len(want) })
	if got := log.revisions(); !slices.Equal(got, want) {
		t.Fatalf("callbacks for revisions %v, want %v in order", got, want)
	}
	if got, _ := c.File("n.txt"); string(got) != "8" {
		t.Fatalf("File = %q, want 8", got)
	}
	testkit.EventuallyTrue(t, 10*time.Second, "registration rebuilt after expiry", func() bool {
		in, ok := instance(e.pub, "orders", "orders-1")
		return ok && in.Revision == want[len(want)-1]
	})
}

// TestCloseWhileStoreDown closes a client that started from its cache and
// is still retrying an unreachable ZooKeeper: nothing it started remains.
func TestCloseWhileStoreDown(t *testing.T) {
	e := mustZK(t)
	svc := configsvc.Service("orders")
	mustCreate(t, e.pub, svc)
	mustPublish(t, e.pub, svc, map[string]string{"db.yaml": "host: a\nport: 1\n"})
	cfg := e.config(t, "orders", "orders-1")
	cfg.CacheDir = t.TempDir()
	cfg.OpenTimeout = 500 * time.Millisecond
	first := mustOpen(t, cfg)
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	e.zk.Stop()

	ignore := goleak.IgnoreCurrent()
	c, err := sdk.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !c.FromCache() || c.Revision() != 1 {
		t.Fatalf("FromCache %v, revision %d; want true, 1", c.FromCache(), c.Revision())
	}
	c.OnChange("db.yaml", func(sdk.Change) {})
	time.Sleep(time.Second) // let the follower and the registrar retry
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	goleak.VerifyNone(t, ignore)
}
