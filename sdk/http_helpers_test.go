package sdk_test

import (
	"context"
	"net/http/httptest"
	"testing"

	"github.com/sluicehq/sluice/configsvc/httpapi"
	"github.com/sluicehq/sluice/sdk"
)

// mustHTTP serves a real admin server (httpapi over bbolt) on loopback; SDK
// clients follow its SSE stream with the bootstrap admin token.
func mustHTTP(t *testing.T) *env {
	t.Helper()
	e := mustBolt(t)
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
	e.name = "http"
	e.transport = func(cfg *sdk.Config) { cfg.Server, cfg.Token = ts.URL, token }
	return e
}
