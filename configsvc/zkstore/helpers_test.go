package zkstore_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc/zkstore"
	"github.com/sluicehq/sluice/configsvc/zkstore/zktest"
)

// roots gives every store opened by a test its own root, so tests can share
// one ZooKeeper server without seeing each other's data.
var roots atomic.Int64

// mustOpen opens a store on servers under a fresh root and closes it at
// cleanup. mod, when not nil, adjusts the Config before Open.
func mustOpen(t testing.TB, servers []string, mod func(*zkstore.Config)) *zkstore.Store {
	t.Helper()
	cfg := zkstore.Config{
		Servers:        servers,
		Root:           fmt.Sprintf("/sluice-test/%d", roots.Add(1)),
		SessionTimeout: 4 * time.Second,
		OpTimeout:      3 * time.Second,
	}
	if mod != nil {
		mod(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := zkstore.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("zkstore.Open(%v%s): %v", cfg.Servers, cfg.Root, err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// shared starts one standalone ZooKeeper for a test and its subtests.
func shared(t *testing.T) *zktest.Server {
	t.Helper()
	return zktest.Start(t)
}
