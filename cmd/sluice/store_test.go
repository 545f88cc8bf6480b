package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/zkstore"
	"github.com/sluicehq/sluice/configsvc/zkstore/zktest"
	"github.com/sluicehq/sluice/configsvc/zkstore/zkversion"
)

func TestOpenStoreTakesZKDigestsFromEnv(t *testing.T) {
	srv := zktest.Start(t)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url := "zk://" + srv.Addr() + "/acl-cmd"

	env := map[string]string{envZKReaderDigest: "sdk:r"}
	if _, err := openStore(ctx, url, logger, func(k string) string { return env[k] }, 0); !errors.Is(err, configsvc.ErrInvalid) {
		t.Fatalf("reader identity without a writer: err = %v, want ErrInvalid", err)
	}

	env[envZKDigest] = "sluice:w"
	st, err := openStore(ctx, url, logger, func(k string) string { return env[k] }, 0)
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

// TestOpenStoreTakesServiceDigestsFromEnv: SLUICE_ZK_SERVICE_DIGESTS puts
// the store in per-service mode: instances/orders grants orders' identity
// and no other; a malformed value is refused without echoing a password.
func TestOpenStoreTakesServiceDigestsFromEnv(t *testing.T) {
	for _, bad := range []string{"orders", "orders=nopassword", "Orders=a:b", "orders=a:b,orders=c:d"} {
		if _, err := parseServiceDigests(bad); !errors.Is(err, configsvc.ErrInvalid) || strings.Contains(err.Error(), "nopassword") {
			t.Fatalf("parseServiceDigests(%q) = %v, want ErrInvalid naming no secret", bad, err)
		}
	}
	srv := zktest.Start(t)
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	url := "zk://" + srv.Addr() + "/acl-svc"
	env := map[string]string{envZKDigest: "sluice:w", envZKReaderDigest: "sdk:r",
		envZKServiceDigests: "orders=sdk-orders:o, payments=sdk-payments:p"}
	st, err := openStore(ctx, url, logger, func(k string) string { return env[k] }, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, svc := range []string{"orders", "payments"} {
		if err := st.Create(ctx, configsvc.Service(svc)); err != nil {
			t.Fatal(err)
		}
	}
	c, _, err := zk.Connect(srv.Servers(), 4*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, id := range []string{"sdk:r", "sdk-orders:o"} {
		if err := c.AddAuth("digest", []byte(id)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Create("/acl-svc/instances/orders/o-1", []byte("{}"), zk.FlagEphemeral, zk.WorldACL(zk.PermRead)); err != nil {
		t.Fatalf("orders' identity registering under orders: %v", err)
	}
	if _, err := c.Create("/acl-svc/instances/payments/p-1", []byte("{}"), zk.FlagEphemeral, zk.WorldACL(zk.PermRead)); !errors.Is(err, zk.ErrNoAuth) {
		t.Fatalf("orders' identity registering under payments = %v, want ErrNoAuth", err)
	}
}

// fakeVersions is a store whose ensemble answers with fixed versions.
type fakeVersions struct {
	configsvc.Store
	answers []zkstore.ServerVersion
}

func (f fakeVersions) ServerVersions(context.Context) []zkstore.ServerVersion { return f.answers }

// TestCheckZooKeeperWarnsOnDataLossRelease: a member on a release that
// loses acknowledged writes is logged at error level with the reason and
// shows 1 in sluice_zookeeper_known_data_loss; a safe one 0, an unreadable
// one -1 (issue 20).
func TestCheckZooKeeperWarnsOnDataLossRelease(t *testing.T) {
	old, _ := zkversion.Parse("3.8.0")
	fixed, _ := zkversion.Parse("3.9.3")
	reason, _ := zkversion.KnownDataLoss(old)
	store := fakeVersions{answers: []zkstore.ServerVersion{
		{Server: "zk1:2181", Version: old, DataLoss: reason},
		{Server: "zk2:2181", Version: fixed},
		{Server: "zk3:2181", Err: errors.New("srvr is not executed because it is not in the whitelist.")},
	}}
	var logs strings.Builder
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	reg := prometheus.NewRegistry()
	if err := checkZooKeeper(context.Background(), store, logger, reg); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "ZOOKEEPER-4643") || !strings.Contains(logs.String(), "zk1:2181") {
		t.Errorf("log does not name the unsafe member and why:\n%s", logs.String())
	}
	want := map[string]float64{"zk1:2181": 1, "zk2:2181": 0, "zk3:2181": -1}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "sluice_zookeeper_known_data_loss" {
			continue
		}
		for _, m := range mf.GetMetric() {
			got[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("sluice_zookeeper_known_data_loss = %v, want %v", got, want)
	}
}
