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
	storetest.RunWithOptions(t, storetest.Options{
		Open: func(t *testing.T) configsvc.Store { return mustOpen(t, srv.Servers(), nil) },
		OpenWithRetention: func(t *testing.T, n int) configsvc.Store {
			return mustOpen(t, srv.Servers(), func(c *zkstore.Config) { c.Retention = n })
		},
		Timeout: 15 * time.Second,
	})
}
