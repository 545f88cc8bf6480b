package fanout_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/boltstore"
	"github.com/sluicehq/sluice/configsvc/boltstore/bolttest"
	"github.com/sluicehq/sluice/configsvc/fanout"
	"github.com/sluicehq/sluice/configsvc/storetest"
	"github.com/sluicehq/sluice/configsvc/testkit"
	"github.com/sluicehq/sluice/configsvc/zkstore"
	"github.com/sluicehq/sluice/configsvc/zkstore/zktest"
)

// TestMain fails the package if a goroutine outlives the tests: Close
// stops every shared watch.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, testkit.LeakOptions()...)
}

// shared wraps st with a ring smaller than the default and no linger, so
// that the suite's subtests stop and start hubs and catch up past the
// ring's oldest event. The suite's bursts stay within the ring: a receiver
// that falls a whole ring behind is told to reload (TestSlowSubscriber…).
func shared(st configsvc.Store) configsvc.Store {
	return fanout.New(st, fanout.Options{Ring: 64, Linger: -1})
}

// TestConformanceBolt runs the shared Store suite against the decorator on
// bbolt.
func TestConformanceBolt(t *testing.T) {
	storetest.RunWithOptions(t, storetest.Options{
		Open: func(t *testing.T) configsvc.Store { return shared(bolttest.MustOpen(t, boltstore.Options{})) },
		OpenWithRetention: func(t *testing.T, n int) configsvc.Store {
			return shared(bolttest.MustOpen(t, boltstore.Options{Retention: n}))
		},
		OpenAt: func(t *testing.T, now func() time.Time) configsvc.Store {
			return shared(bolttest.MustOpen(t, boltstore.Options{Now: now}))
		},
		OpenPair: func(t *testing.T, nowA, _ func() time.Time) (configsvc.Store, configsvc.Store) {
			st := shared(bolttest.MustOpen(t, boltstore.Options{Now: nowA}))
			return st, st
		},
		InterruptDelete: func(t *testing.T, st configsvc.Store, ref configsvc.Ref) {
			if err := st.Delete(t.Context(), ref); err != nil {
				t.Fatal(err)
			}
		},
		OpenWithLimits: func(t *testing.T, l configsvc.Limits) configsvc.Store {
			return shared(bolttest.MustOpen(t, boltstore.Options{Limits: l}))
		},
	})
}

var zkRoots atomic.Int64

// openZK opens a zkstore under a fresh root of srv, closed at cleanup.
func openZK(t *testing.T, srv *zktest.Server, mod func(*zkstore.Config)) *zkstore.Store {
	t.Helper()
	cfg := zkstore.Config{
		Servers:        srv.Servers(),
		Root:           fmt.Sprintf("/sluice-fanout/%d", zkRoots.Add(1)),
		SessionTimeout: 4 * time.Second,
		OpTimeout:      10 * time.Second,
	}
	if mod != nil {
		mod(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := zkstore.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("zkstore.Open: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// TestConformanceZooKeeper runs the shared Store suite against the
// decorator on a real ZooKeeper.
func TestConformanceZooKeeper(t *testing.T) {
	srv := zktest.Start(t)
	open := func(t *testing.T, mod func(*zkstore.Config)) configsvc.Store {
		st := shared(openZK(t, srv, mod))
		t.Cleanup(func() { st.Close() })
		return st
	}
	storetest.RunWithOptions(t, storetest.Options{
		Open: func(t *testing.T) configsvc.Store { return open(t, nil) },
		OpenWithRetention: func(t *testing.T, n int) configsvc.Store {
			return open(t, func(c *zkstore.Config) { c.Retention = n })
		},
		OpenAt: func(t *testing.T, now func() time.Time) configsvc.Store {
			return open(t, func(c *zkstore.Config) { c.Now = now })
		},
		OpenPair: func(t *testing.T, nowA, nowB func() time.Time) (configsvc.Store, configsvc.Store) {
			root := fmt.Sprintf("/sluice-fanout/%d", zkRoots.Add(1))
			a := shared(openZK(t, srv, func(c *zkstore.Config) { c.Root, c.Now = root, nowA }))
			b := shared(openZK(t, srv, func(c *zkstore.Config) { c.Root, c.Now = root, nowB }))
			t.Cleanup(func() { a.Close(); b.Close() })
			return a, b
		},
		OpenWithLimits: func(t *testing.T, l configsvc.Limits) configsvc.Store {
			return open(t, func(c *zkstore.Config) { c.Limits = l })
		},
		Timeout: 15 * time.Second,
	})
}
