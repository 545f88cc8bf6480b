package zktest_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/sluicehq/sluice/configsvc/zkstore/zktest"
)

// TestProxyFaults: through a Proxy a client reads normally; a black hole
// stalls its requests without closing anything until Heal; a partition
// fails them at once; a dropped multi never reaches the server, and
// DropMultis drops as many as it is told, then none; LastMultiSize is the
// size of the last transaction that went through.
func TestProxyFaults(t *testing.T) {
	srv := zktest.Start(t)
	direct := connect(t, srv.Servers())
	if _, err := direct.Create("/p", []byte("1"), 0, zk.WorldACL(zk.PermAll)); err != nil {
		t.Fatal(err)
	}
	px := zktest.StartProxy(t, srv.Addr())
	c := connect(t, []string{px.Addr()})
	if b := waitGet(t, c, "/p"); string(b) != "1" {
		t.Fatalf("through the proxy: %q", b)
	}
	if n := px.Requests(zktest.OpGetData); n < 1 {
		t.Fatalf("Requests(OpGetData) = %d, want at least 1", n)
	}

	t.Run("Blackhole", func(t *testing.T) {
		px.Blackhole()
		got := make(chan error, 1)
		go func() { _, _, err := c.Get("/p"); got <- err }()
		select {
		case err := <-got:
			t.Fatalf("a read through a black hole returned at once: %v", err)
		case <-time.After(500 * time.Millisecond):
		}
		px.Heal()
		if b := waitGet(t, c, "/p"); string(b) != "1" {
			t.Fatalf("after Heal: %q", b)
		}
	})

	t.Run("Partition", func(t *testing.T) {
		px.Partition()
		if !px.Partitioned() {
			t.Fatal("Partitioned() = false after Partition")
		}
		start := time.Now()
		if _, _, err := c.Get("/p"); err == nil {
			t.Fatal("a read through a partition succeeded")
		}
		t.Logf("a read through a partition failed after %v", time.Since(start).Round(time.Millisecond))
		px.Heal()
		waitGet(t, c, "/p")
	})

	t.Run("DropMulti", func(t *testing.T) {
		var called atomic.Bool
		px.DropMulti(func() { called.Store(true) })
		_, err := c.Multi(&zk.CreateRequest{Path: "/dropped", Acl: zk.WorldACL(zk.PermAll)})
		if err == nil {
			t.Fatal("a dropped multi succeeded")
		}
		if !called.Load() || px.Cuts() != 1 {
			t.Fatalf("DropMulti: callback called %v, Cuts() = %d; want true and 1", called.Load(), px.Cuts())
		}
		waitGet(t, c, "/p")
		if ok, _, err := direct.Exists("/dropped"); err != nil || ok {
			t.Fatalf("the dropped multi's node exists = %v, %v; want it never applied", ok, err)
		}
	})

	t.Run("DropMultis", func(t *testing.T) {
		before := px.Cuts()
		px.DropMultis(2)
		for i := range 2 {
			if _, err := c.Multi(&zk.CreateRequest{Path: "/dropped", Acl: zk.WorldACL(zk.PermAll)}); err == nil {
				t.Fatalf("dropped multi %d succeeded", i+1)
			}
			waitGet(t, c, "/p")
		}
		if got := px.Cuts() - before; got != 2 {
			t.Fatalf("DropMultis(2): %d multis cut, want 2", got)
		}
		if ok, _, err := direct.Exists("/dropped"); err != nil || ok {
			t.Fatalf("a dropped multi's node exists = %v, %v; want it never applied", ok, err)
		}
		small := multiSize(t, px, c, "/s", 1)
		large := multiSize(t, px, c, "/l", 1001)
		if large-small != 1000 {
			t.Fatalf("LastMultiSize: %d bytes for 1 byte of data, %d for 1001; want 1000 apart", small, large)
		}
		px.DropMultis(1 << 20)
		px.DropMultis(0)
		if _, err := c.Multi(&zk.CreateRequest{Path: "/after", Acl: zk.WorldACL(zk.PermAll)}); err != nil {
			t.Fatalf("a multi after DropMultis(0): %v", err)
		}
	})
}

// multiSize sends one transaction creating p with size bytes of data
// through px and returns px.LastMultiSize after it.
func multiSize(t *testing.T, px *zktest.Proxy, c *zk.Conn, p string, size int) int64 {
	t.Helper()
	if _, err := c.Multi(&zk.CreateRequest{Path: p, Data: make([]byte, size), Acl: zk.WorldACL(zk.PermAll)}); err != nil {
		t.Fatalf("multi through the proxy: %v", err)
	}
	return px.LastMultiSize()
}
