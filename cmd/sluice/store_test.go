package main

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/zkstore/zktest"
)

func TestOpenStoreTakesZKDigestsFromEnv(t *testing.T) {
	srv := zktest.Start(t)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url := "zk://" + srv.Addr() + "/acl-cmd"

	env := map[string]string{envZKReaderDigest: "sdk:r"}
	if _, err := openStore(ctx, url, logger, func(k string) string { return env[k] }); !errors.Is(err, configsvc.ErrInvalid) {
		t.Fatalf("reader identity without a writer: err = %v, want ErrInvalid", err)
	}

	env[envZKDigest] = "sluice:w"
	st, err := openStore(ctx, url, logger, func(k string) string { return env[k] })
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Create(ctx, configsvc.Service("orders")); err != nil {
		t.Fatal(err)
	}
	anon, _, err := zk.Connect(srv.Servers(), 4*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	if _, _, err := anon.Get("/acl-cmd/services/orders/head"); !errors.Is(err, zk.ErrNoAuth) {
		t.Fatalf("anonymous read = %v, want ErrNoAuth: the store did not use the digest from %s", err, envZKDigest)
	}
	reader, _, err := zk.Connect(srv.Servers(), 4*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	if err := reader.AddAuth("digest", []byte("sdk:r")); err != nil {
		t.Fatal(err)
	}
	if _, _, err := reader.Get("/acl-cmd/services/orders/head"); err != nil {
		t.Fatalf("reader identity from %s cannot read: %v", envZKReaderDigest, err)
	}
}
