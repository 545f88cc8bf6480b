package main

import (
	"context"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
	"github.com/sluicehq/sluice/configsvc/api"
	"github.com/sluicehq/sluice/configsvc/boltstore"
	"github.com/sluicehq/sluice/configsvc/httpapi"
	"github.com/sluicehq/sluice/configsvc/secrets/localkey"
	"github.com/sluicehq/sluice/configsvc/zkstore"
	"github.com/sluicehq/sluice/configsvc/zkstore/zktest"
	"github.com/sluicehq/sluice/sdk"
)

// BenchmarkSecretPublishApply measures, for a plain file and a secret one
// in the same run, the publish through the admin API (validation, sealing,
// the store's write) and the time until an SDK's binding holds the new
// value (the watch, for a secret file the data key request and the
// decryption: every revision has a new data key, so each one is fetched).
// On bbolt with the SDK over HTTP, and on ZooKeeper with the SDK on
// ZooKeeper (skipped without ZooKeeper). docs/benchmarks.md has figures.
//
//	go test -run '^$' -bench SecretPublishApply -benchtime 200x -count 3 ./cmd/sluice
func BenchmarkSecretPublishApply(b *testing.B) {
	for _, store := range []string{"bolt-http", "zookeeper-zk"} {
		for _, file := range []string{"db.yaml", "db.secret.yaml"} {
			kind := "plain"
			if configsvc.IsSecretFile(file) {
				kind = "secret"
			}
			b.Run(store+"/"+kind, func(b *testing.B) { benchPublishApply(b, store, file) })
		}
	}
}

func benchPublishApply(b *testing.B, kind, file string) {
	ctx := context.Background()
	dir := b.TempDir()
	var backend configsvc.Store
	var zk *zktest.Server
	if kind == "bolt-http" {
		st, err := boltstore.Open(filepath.Join(dir, "s.db"), boltstore.Options{})
		if err != nil {
			b.Fatal(err)
		}
		backend = st
	} else {
		zk = zktest.Start(b)
		st, err := zkstore.Open(ctx, zkstore.Config{Servers: zk.Servers(), Root: "/bench"})
		if err != nil {
			b.Fatal(err)
		}
		backend = st
	}
	kek, err := localkey.Open(filepath.Join(dir, "secrets.key"), true)
	if err != nil {
		b.Fatal(err)
	}
	store, keys := wrapSecretStore(backend, kek, configsvc.DefaultMaxServiceBytes)
	srv, err := httpapi.New(httpapi.Config{Store: store, Keyring: keys})
	if err != nil {
		b.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	defer func() { _ = srv.Close(); ts.Close(); _ = backend.Close() }()
	admin, err := srv.Bootstrap(ctx)
	if err != nil {
		b.Fatal(err)
	}
	agent, _, err := access.NewTokens(backend.Records(), nil).Create(ctx, "bench-agent",
		[]access.Grant{{Role: access.RoleAgent, Pattern: "orders"}, {Role: access.RoleSecrets, Pattern: "orders"}}, "bench")
	if err != nil {
		b.Fatal(err)
	}
	ac, err := api.New(api.Config{Servers: []string{ts.URL}, Token: admin})
	if err != nil {
		b.Fatal(err)
	}
	defer ac.Close()
	orders := configsvc.Service("orders")
	if _, _, err := ac.Create(ctx, orders); err != nil {
		b.Fatal(err)
	}
	if _, err := ac.PutFile(ctx, orders, file, []byte("password: v0\n")); err != nil {
		b.Fatal(err)
	}
	cfg := sdk.Config{Service: "orders", Token: agent, NoRegister: true, CacheDir: b.TempDir()}
	if zk != nil {
		cfg.ZooKeeper, cfg.ZKRoot, cfg.KeyServers = zk.Servers(), "/bench", []string{ts.URL}
	} else {
		cfg.Server = ts.URL
	}
	c, err := sdk.Open(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	bind := sdk.Bind[dbConfig](c, file)
	changed := make(chan struct{}, 1)
	stop := c.OnChange(file, func(sdk.Change) {
		select {
		case changed <- struct{}{}:
		default:
		}
	})
	defer stop()
	var publish, apply time.Duration
	b.ResetTimer()
	for i := 1; i <= b.N; i++ {
		v := fmt.Sprintf("v%d", i)
		t0 := time.Now()
		if _, err := ac.PutFile(ctx, orders, file, []byte("password: "+v+"\n")); err != nil {
			b.Fatal(err)
		}
		publish += time.Since(t0)
		deadline := time.After(10 * time.Second)
		for bind.Load().Password != v {
			select {
			case <-changed:
			case <-time.After(5 * time.Millisecond):
			case <-deadline:
				b.Fatalf("the SDK did not apply %s within 10s (it holds %q, %v)", v, bind.Load().Password, bind.Err())
			}
		}
		apply += time.Since(t0)
	}
	b.StopTimer()
	b.ReportMetric(float64(publish.Microseconds())/float64(b.N)/1000, "publish-ms")
	b.ReportMetric(float64(apply.Microseconds())/float64(b.N)/1000, "apply-ms")
}
