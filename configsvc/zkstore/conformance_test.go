package zkstore_test

import (
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/storetest"
	"github.com/sluicehq/sluice/configsvc/zkstore"
)

// TestConformance runs the shared configsvc.Store suite against zkstore, on
// one ZooKeeper server with a fresh root per store.
func TestConformance(t *testing.T) {
	srv := shared(t)
	c := rawConn(t, srv.Servers(), "")
	roots := map[configsvc.Store]string{} // subtests run one after another
	storetest.RunWithOptions(t, storetest.Options{
		Open: func(t *testing.T) configsvc.Store { return mustOpen(t, srv.Servers(), nil) },
		OpenWithRetention: func(t *testing.T, n int) configsvc.Store {
			var root string
			st := mustOpen(t, srv.Servers(), func(c *zkstore.Config) { c.Retention, root = n, c.Root })
			roots[st] = root
			return st
		},
		OpenWithLimits: func(t *testing.T, l configsvc.Limits) configsvc.Store {
			return mustOpen(t, srv.Servers(), func(c *zkstore.Config) { c.Limits = l })
		},
		Reopen: func(t *testing.T, st configsvc.Store, n int) configsvc.Store {
			root := roots[st]
			st.Close()
			again := mustOpen(t, srv.Servers(), func(c *zkstore.Config) { c.Root, c.Retention = root, n })
			roots[again] = root
			return again
		},
		StoredRevisions: func(t *testing.T, st configsvc.Store, ref configsvc.Ref) int {
			kids, _, err := c.Children(roots[st] + "/services/" + ref.Name + "/revisions")
			if err != nil {
				t.Fatal(err)
			}
			return len(kids)
		},
		Timeout: 15 * time.Second,
	})
}
