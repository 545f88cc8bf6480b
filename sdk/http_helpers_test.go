package sdk_test

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/sluicehq/sluice/configsvc/fanout"
	"github.com/sluicehq/sluice/configsvc/httpapi"
	"github.com/sluicehq/sluice/sdk"
)

// mustHTTP serves a real admin server (httpapi over bbolt) on loopback; SDK
// clients follow its SSE stream with the bootstrap admin token.
func mustHTTP(t *testing.T) *env {
	t.Helper()
	return serveHTTP(t, mustBolt(t), "http")
}

// serveHTTP serves an admin server on e's store and makes e's clients
// use it, under name.
func serveHTTP(t *testing.T, e *env, name string) *env {
	t.Helper()
	srv, err := httpapi.New(httpapi.Config{Store: e.pub, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	token, err := srv.Bootstrap(context.Background())
	if err != nil || token == "" {
		t.Fatalf("bootstrap token: %q, %v", token, err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(func() {
		srv.Close()
		ts.Close()
	})
	e.name = name
	e.transport = func(cfg *sdk.Config) { cfg.Server, cfg.Token = ts.URL, token }
	return e
}

// mustShared is mustBolt with the store's watches shared
// (configsvc/fanout), as `sluice server` shares them between its streams,
// its proxy and an in-process SDK. Without a linger, so that a closed
// client's watches stop at once (TestCloseStopsEveryGoroutine).
func mustShared(t *testing.T) *env {
	t.Helper()
	e := mustBolt(t)
	st := fanout.New(e.pub, fanout.Options{Linger: -1})
	t.Cleanup(func() { st.Close() })
	e.name, e.pub = "shared", st
	e.transport = func(cfg *sdk.Config) { cfg.Store = st }
	return e
}

// mustSharedHTTP is mustHTTP on a store whose watches are shared, as
// `sluice server` wires it.
func mustSharedHTTP(t *testing.T) *env {
	t.Helper()
	return serveHTTP(t, mustShared(t), "shared-http")
}
