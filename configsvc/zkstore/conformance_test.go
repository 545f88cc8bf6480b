package zkstore_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/storetest"
	"github.com/sluicehq/sluice/configsvc/zkstore"
	"github.com/sluicehq/sluice/configsvc/zkstore/zktest"
)

// conformanceOpTimeout bounds each call of a store the suite opens. The
// suite drives services to their limits (a Snapshot of 4,096 files reads
// 4,096 nodes), which under -race on a machine busy with other test
// binaries took longer than the 3 s other tests give a call.
const conformanceOpTimeout = 10 * time.Second

// TestConformance runs the shared configsvc.Store suite against zkstore, on
// one ZooKeeper server with a fresh root per store.
func TestConformance(t *testing.T) {
	srv := shared(t)
	opened := &sync.Map{}
	storetest.RunWithOptions(t, conformanceOptions(t, srv, opened, func(t *testing.T, root string, mod func(*zkstore.Config)) configsvc.Store {
		st := mustOpen(t, srv.Servers(), func(c *zkstore.Config) {
			c.Root, c.OpTimeout = root, conformanceOpTimeout
			if mod != nil {
				mod(c)
			}
		})
		opened.Store(configsvc.Store(st), root)
		return st
	}))
}

// TestConformanceTwoStores runs the whole suite on two stores per test
// sharing one root, as two admin servers share one ensemble: every write
// goes through one, every read and watch through the other
// (storetest.Split).
func TestConformanceTwoStores(t *testing.T) {
	srv := shared(t)
	opened := &sync.Map{}
	storetest.RunWithOptions(t, conformanceOptions(t, srv, opened, func(t *testing.T, root string, mod func(*zkstore.Config)) configsvc.Store {
		open := func() *zkstore.Store {
			return mustOpen(t, srv.Servers(), func(c *zkstore.Config) {
				c.Root, c.OpTimeout = root, conformanceOpTimeout
				if mod != nil {
					mod(c)
				}
			})
		}
		st := storetest.Split(open(), open())
		opened.Store(st, root)
		return st
	}))
}

// conformanceOptions builds the suite's options from open, which opens a
// store (or a Split pair) under root with mod applied to its Config. opened
// maps each store open returned to its root.
func conformanceOptions(t *testing.T, srv *zktest.Server, opened *sync.Map, open func(t *testing.T, root string, mod func(*zkstore.Config)) configsvc.Store) storetest.Options {
	conn := rawConn(t, srv.Servers(), "") // for StoredRevisions
	return storetest.Options{
		Open: func(t *testing.T) configsvc.Store { return open(t, freshRoot(), nil) },
		OpenWithRetention: func(t *testing.T, n int) configsvc.Store {
			return open(t, freshRoot(), func(c *zkstore.Config) { c.Retention = n })
		},
		OpenAt: func(t *testing.T, now func() time.Time) configsvc.Store {
			return open(t, freshRoot(), func(c *zkstore.Config) { c.Now = now })
		},
		OpenPair: func(t *testing.T, nowA, nowB func() time.Time) (configsvc.Store, configsvc.Store) {
			root := freshRoot()
			return mustOpen(t, srv.Servers(), func(c *zkstore.Config) { c.Root, c.Now, c.OpTimeout = root, nowA, conformanceOpTimeout }),
				mustOpen(t, srv.Servers(), func(c *zkstore.Config) { c.Root, c.Now, c.OpTimeout = root, nowB, conformanceOpTimeout })
		},
		InterruptDelete: func(t *testing.T, st configsvc.Store, ref configsvc.Ref) {
			root, ok := opened.Load(st)
			if !ok {
				t.Fatal("InterruptDelete: a store the test did not open")
			}
			interruptDelete(t, srv.Servers(), root.(string), ref)
		},
		OpenWithLimits: func(t *testing.T, l configsvc.Limits) configsvc.Store {
			return open(t, freshRoot(), func(c *zkstore.Config) { c.Limits = l })
		},
		Reopen: func(t *testing.T, st configsvc.Store, n int) configsvc.Store {
			root, ok := opened.Load(st)
			if !ok {
				t.Fatal("Reopen: a store the test did not open")
			}
			if err := st.Close(); err != nil {
				t.Fatal(err)
			}
			return open(t, root.(string), func(c *zkstore.Config) { c.Retention = n })
		},
		StoredRevisions: func(t *testing.T, st configsvc.Store, ref configsvc.Ref) int {
			root, ok := opened.Load(st)
			if !ok {
				t.Fatal("StoredRevisions: a store the test did not open")
			}
			kids, _, err := conn.Children(refNode(root.(string), ref) + "/revisions")
			if err != nil {
				t.Fatal(err)
			}
			return len(kids)
		},
		Timeout: 15 * time.Second,
	}
}

func freshRoot() string { return fmt.Sprintf("/sluice-test/%d", roots.Add(1)) }

// interruptDelete does what a Delete that stopped after its first
// transaction leaves behind: the head and the link nodes gone, everything
// else still there.
func interruptDelete(t *testing.T, servers []string, root string, ref configsvc.Ref) {
	t.Helper()
	conn := rawConn(t, servers, "")
	base := refNode(root, ref)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var err error
	for ctx.Err() == nil {
		err = conn.Delete(base+"/head", -1)
		if err == nil || errors.Is(err, zk.ErrNoNode) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("interrupt delete of %s: %v", ref, err)
}

// refNode is the node of ref in a store under root.
func refNode(root string, ref configsvc.Ref) string {
	if ref.Kind == configsvc.KindGroup {
		return root + "/shared/" + ref.Name
	}
	return root + "/services/" + ref.Name
}
