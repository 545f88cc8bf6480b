package sdk_test

import (
	"context"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/zkstore"
	"github.com/sluicehq/sluice/configsvc/zkstore/zktest"
	"github.com/sluicehq/sluice/sdk"
)

// mustZK starts a real ZooKeeper and a zkstore publisher on a root of its
// own; SDK clients connect to the same server.
func mustZK(t *testing.T) *env {
	t.Helper()
	srv := zktest.Start(t)
	return mustZKOn(t, srv, srv.Servers())
}

func mustZKOn(t *testing.T, srv *zktest.Server, clientServers []string) *env {
	t.Helper()
	root := "/sluice-sdk-test"
	st := mustZKStore(t, srv.Servers(), root)
	return &env{name: "zookeeper", pub: st, zk: srv, transport: func(cfg *sdk.Config) {
		cfg.ZooKeeper, cfg.ZKRoot = clientServers, root
		if cfg.ZKSessionTimeout == 0 {
			cfg.ZKSessionTimeout = 2 * time.Second
		}
	}}
}

func mustZKStore(t *testing.T, servers []string, root string) configsvc.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := zkstore.Open(ctx, zkstore.Config{Servers: servers, Root: root, SessionTimeout: 2 * time.Second, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func mustZKStoreRetention(t *testing.T, servers []string, root string, retention int) configsvc.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := zkstore.Open(ctx, zkstore.Config{Servers: servers, Root: root, SessionTimeout: 2 * time.Second, Retention: retention, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}
