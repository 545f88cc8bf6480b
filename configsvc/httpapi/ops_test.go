package httpapi

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
	"github.com/sluicehq/sluice/configsvc/api"
	"github.com/sluicehq/sluice/configsvc/boltstore"
	"github.com/sluicehq/sluice/configsvc/boltstore/bolttest"
	"github.com/sluicehq/sluice/configsvc/testkit"
	"github.com/sluicehq/sluice/configsvc/zkstore"
	"github.com/sluicehq/sluice/configsvc/zkstore/zktest"
)

// faultyStore wraps a Store: when down, calls fail at once with
// ErrUnavailable; when hung, they block until their ctx ends, as a store
// whose backend does not answer would.
type faultyStore struct {
	configsvc.Store
	down, hang atomic.Bool
}

func (f *faultyStore) fault(ctx context.Context, op string) error {
	switch {
	case f.down.Load():
		return fmt.Errorf("faulty: %s: connection refused: %w", op, configsvc.ErrUnavailable)
	case f.hang.Load():
		<-ctx.Done()
		return fmt.Errorf("faulty: %s: %v: %w", op, ctx.Err(), configsvc.ErrUnavailable)
	}
	return nil
}

func (f *faultyStore) Head(ctx context.Context, ref configsvc.Ref) (configsvc.Head, error) {
	if err := f.fault(ctx, "head"); err != nil {
		return configsvc.Head{}, err
	}
	return f.Store.Head(ctx, ref)
}

func (f *faultyStore) Ping(ctx context.Context) error {
	if err := f.fault(ctx, "ping"); err != nil {
		return err
	}
	return f.Store.Ping(ctx)
}

func (f *faultyStore) Records() configsvc.RecordStore { return faultyRecords{f.Store.Records(), f} }

type faultyRecords struct {
	configsvc.RecordStore
	f *faultyStore
}

func (r faultyRecords) Get(ctx context.Context, c, id string) ([]byte, error) {
	if err := r.f.fault(ctx, "get record"); err != nil {
		return nil, err
	}
	return r.RecordStore.Get(ctx, c, id)
}

func (r faultyRecords) Append(ctx context.Context, c string, data []byte, keep int) (int64, error) {
	if err := r.f.fault(ctx, "append record"); err != nil {
		return 0, err
	}
	return r.RecordStore.Append(ctx, c, data, keep)
}

func TestStoreDownIs503WithRetryAfter(t *testing.T) {
	fs := &faultyStore{Store: bolttest.MustOpen(t, boltstore.Options{})}
	e := newEnvOn(t, fs)
	e.mustService("orders", map[string]string{"a.txt": "x"})
	tests := []struct {
		name   string
		mode   *atomic.Bool
		method string
		path   string
	}{
		{"down: authenticated read", &fs.down, "GET", "/v1/services/orders"},
		{"down: readyz", &fs.down, "GET", "/readyz"},
		{"hung: authenticated read", &fs.hang, "GET", "/v1/services/orders/files/a.txt"},
		{"hung: readyz", &fs.hang, "GET", "/readyz"},
		{"hung: audited write", &fs.hang, "PUT", "/v1/services/orders"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := e.withT(t)
			tc.mode.Store(true)
			defer tc.mode.Store(false)
			start := time.Now()
			resp := e.do(req{method: tc.method, path: tc.path, token: e.admin})
			took := time.Since(start)
			if resp.status != http.StatusServiceUnavailable || resp.errCode(t) != api.CodeUnavailable || resp.header.Get("Retry-After") == "" {
				t.Fatalf("status %d, Retry-After %q: %s", resp.status, resp.header.Get("Retry-After"), resp.body)
			}
			if took > e.srv.cfg.RequestTimeout+500*time.Millisecond {
				t.Fatalf("answered after %v; the request timeout is %v", took, e.srv.cfg.RequestTimeout)
			}
		})
	}
	if code, _ := e.do(req{method: "GET", path: "/healthz"}).status, 0; code != 200 {
		t.Fatalf("healthz = %d while the store is up", code)
	}
	fs.down.Store(true)
	if code := e.do(req{method: "GET", path: "/healthz"}).status; code != 200 {
		t.Fatalf("healthz = %d with the store down; it reports the process, not the store", code)
	}
	fs.down.Store(false)
	metrics := string(e.must(200, req{method: "GET", path: "/metrics"}).body)
	if !strings.Contains(metrics, "sluice_store_errors_total 6") {
		t.Fatalf("store errors not counted:\n%s", grepLines(metrics, "sluice_store_errors"))
	}
}

func grepLines(s, substr string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// mustZK starts ZooKeeper and opens a store on a fresh chroot.
func mustZK(t *testing.T, zk *zktest.Server, root string) *zkstore.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := zkstore.Open(ctx, zkstore.Config{Servers: []string{zk.Addr()}, Root: root, OpTimeout: time.Second, SessionTimeout: 4 * time.Second})
	if err != nil {
		t.Fatalf("zkstore.Open: %v", err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

func TestZooKeeperDownIs503(t *testing.T) {
	zk := zktest.Start(t)
	e := newEnvOn(t, mustZK(t, zk, "/sluice-503"))
	e.mustService("orders", map[string]string{"a.txt": "x"})
	zk.Stop()
	for _, path := range []string{"/v1/services/orders/files/a.txt", "/readyz"} {
		start := time.Now()
		resp := e.do(req{method: "GET", path: path, token: e.admin})
		if took := time.Since(start); took > e.srv.cfg.RequestTimeout+2*time.Second {
			t.Errorf("%s answered after %v with ZooKeeper down", path, took)
		}
		if resp.status != http.StatusServiceUnavailable || resp.header.Get("Retry-After") == "" {
			t.Fatalf("%s with ZooKeeper down: %d %s", path, resp.status, resp.body)
		}
	}
	zk.Restart()
	testkit.Eventually(t, 30*time.Second, "reads after ZooKeeper restarted", func() error {
		resp := e.do(req{method: "GET", path: "/v1/services/orders/files/a.txt", token: e.admin})
		if resp.status != http.StatusOK {
			return fmt.Errorf("%d %s", resp.status, resp.body)
		}
		return nil
	})
}

func TestTwoServersShareTokensAndAudit(t *testing.T) {
	zk := zktest.Start(t)
	a := newEnvOn(t, mustZK(t, zk, "/sluice-two"))
	b := newEnvOn(t, mustZK(t, zk, "/sluice-two"))
	if a.admin == "" || b.admin != "" {
		t.Fatalf("bootstrap: first server token %t, second %t; want only the first", a.admin != "", b.admin != "")
	}
	var tok api.Token
	a.must(http.StatusCreated, req{method: "POST", path: "/v1/tokens", token: a.admin,
		body: map[string]any{"name": "ed", "roles": []access.Grant{{Role: "editor", Pattern: "orders"}}}}).json(t, &tok)
	b.must(http.StatusCreated, req{method: "PUT", path: "/v1/services/orders", token: tok.Secret})
	b.must(http.StatusOK, req{method: "PUT", path: "/v1/services/orders/files/a.txt", token: tok.Secret, body: "x"})
	if got := string(a.must(http.StatusOK, req{method: "GET", path: "/v1/services/orders/files/a.txt", token: tok.Secret}).body); got != "x" {
		t.Fatalf("server A reads %q", got)
	}
	var audit struct{ Entries []access.Entry }
	a.must(http.StatusOK, req{method: "GET", path: "/v1/audit?actor=" + tok.ID, token: a.admin}).json(t, &audit)
	if len(audit.Entries) != 2 || audit.Entries[0].Action != "publish" || audit.Entries[0].Revision != 1 || audit.Entries[1].Action != "create" {
		t.Fatalf("audit on A of B's requests = %+v", audit.Entries)
	}
	// Revoked on B: refused on A at once.
	b.must(http.StatusNoContent, req{method: "DELETE", path: "/v1/tokens/" + tok.ID, token: a.admin})
	a.must(http.StatusUnauthorized, req{method: "GET", path: "/v1/whoami", token: tok.Secret})
}

func TestClientAddressNotSpoofable(t *testing.T) {
	tests := []struct {
		name    string
		trusted []string
		want    string
	}{
		{"no trusted proxies", nil, "127.0.0.1"},
		{"loopback trusted", []string{"127.0.0.1"}, "6.6.6.6"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(c *Config) { c.TrustedProxies = tc.trusted })
			e.must(http.StatusCreated, req{method: "PUT", path: "/v1/services/orders", token: e.admin,
				header: map[string]string{"X-Forwarded-For": "6.6.6.6", "X-Real-IP": "6.6.6.6"}})
			var audit struct{ Entries []access.Entry }
			e.must(http.StatusOK, req{method: "GET", path: "/v1/audit", token: e.admin}).json(t, &audit)
			if len(audit.Entries) != 1 || audit.Entries[0].Client != tc.want {
				t.Fatalf("audit client = %+v, want %s", audit.Entries, tc.want)
			}
			if !strings.Contains(e.logText(), `"client":"`+tc.want+`"`) {
				t.Fatalf("log lacks client %s:\n%s", tc.want, e.logText())
			}
			if tc.want != "6.6.6.6" && strings.Contains(e.logText(), "6.6.6.6") {
				t.Fatal("the spoofed address reached the log")
			}
		})
	}
}

func TestMetricsAndRequestLog(t *testing.T) {
	e := newEnv(t)
	e.mustService("orders", map[string]string{"a.txt": "x"})
	events, _ := openStream(t, e, "/v1/services/orders/watch", e.admin, nil)
	nextEvent(t, events, "comment")
	e.must(http.StatusNotFound, req{method: "GET", path: "/v1/services/nope", token: e.admin})
	m := string(e.must(http.StatusOK, req{method: "GET", path: "/metrics"}).body)
	for _, want := range []string{
		`sluice_http_requests_total{code="4xx",method="GET",route="/v1/services/:svc"} 1`,
		`sluice_http_requests_total{code="2xx",method="POST",route="/v1/services/:svc/revisions"} 1`,
		`sluice_publishes_total{kind="service"} 1`,
		`sluice_watch_subscribers{stream="revisions"} 1`,
		`sluice_http_request_duration_seconds_count{method="PUT",route="/v1/services/:svc"} 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	log := e.logText()
	if n := strings.Count(log, `"msg":"request"`); n < 4 {
		t.Fatalf("%d request log lines, want one per request:\n%s", n, log)
	}
	if strings.Contains(log, e.admin) || strings.Contains(log, access.HashToken(e.admin)) {
		t.Fatal("the log holds the admin token or its hash")
	}
}

func TestConsoleServedAtRoot(t *testing.T) {
	ui := fstest.MapFS{
		"index.html": {Data: []byte("<!doctype html><title>console</title>")},
		"js/app.js":  {Data: []byte("console.log(1)")},
	}
	e := newEnv(t, func(c *Config) { c.UI = ui })
	tests := []struct {
		path     string
		want     int
		contains string
	}{
		{"/", 200, "<title>console</title>"},
		{"/index.html", 200, "<title>console</title>"},
		{"/services/orders", 200, "<title>console</title>"},
		{"/js/app.js", 200, "console.log"},
		{"/js/missing.js", 404, "not_found"},
		{"/v1/nope", 404, "not_found"},
		{"/../../etc/passwd", 200, "<title>console</title>"}, // cleaned to a console route, never a file outside the UI
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			e := e.withT(t)
			resp := e.do(req{method: "GET", path: tc.path})
			if resp.status != tc.want || !strings.Contains(string(resp.body), tc.contains) {
				t.Fatalf("GET %s = %d %q", tc.path, resp.status, resp.body)
			}
		})
	}
}

func TestBootstrapRaceOnZooKeeper(t *testing.T) {
	zk := zktest.Start(t)
	const n = 3
	stores := make([]*zkstore.Store, n)
	for i := range stores {
		stores[i] = mustZK(t, zk, "/sluice-race")
	}
	tokens := make(chan string, n)
	errs := make(chan error, n)
	for _, st := range stores {
		go func() {
			tok, _, err := access.NewTokens(st.Records(), nil).Bootstrap(context.Background(), 5*time.Second, nil)
			errs <- err
			tokens <- tok
		}()
	}
	var created []string
	for range stores {
		if err := <-errs; err != nil {
			t.Fatalf("Bootstrap: %v", err)
		}
		if tok := <-tokens; tok != "" {
			created = append(created, tok)
		}
	}
	if len(created) != 1 {
		t.Fatalf("%d servers created an admin token; want exactly 1", len(created))
	}
	list, err := access.NewTokens(stores[0].Records(), nil).List(context.Background())
	if err != nil || len(list) != 1 {
		t.Fatalf("tokens in the store: %d, %v", len(list), err)
	}
}
