package cli

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/api"
	"github.com/sluicehq/sluice/configsvc/boltstore"
	"github.com/sluicehq/sluice/configsvc/boltstore/bolttest"
	"github.com/sluicehq/sluice/configsvc/httpapi"
)

// seenRequest is one request a recording front saw.
type seenRequest struct {
	method, path, query, key, emergency string
}

// recordingServer runs an admin server on a bbolt store behind a front that
// records every request, and returns the store, the environment of a CLI
// run as the bootstrap admin, and the requests seen so far.
func recordingServer(t *testing.T) (configsvc.Store, map[string]string, func() []seenRequest) {
	t.Helper()
	st := bolttest.MustOpen(t, boltstore.Options{})
	srv, err := httpapi.New(httpapi.Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var seen []seenRequest
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, seenRequest{r.Method, r.URL.EscapedPath(), r.URL.RawQuery, r.Header.Get(api.HeaderIdempotencyKey), r.Header.Get(api.EmergencyHeader)})
		mu.Unlock()
		srv.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { srv.Close(); front.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	admin, err := srv.Bootstrap(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return st, map[string]string{"SLUICE_SERVER": front.URL, "SLUICE_TOKEN": admin}, func() []seenRequest {
		mu.Lock()
		defer mu.Unlock()
		return append([]seenRequest(nil), seen...)
	}
}

// TestRoutesPutUnderGovernance: `routes put` (main's own publish of
// routes.yaml, which waits for the proxies) honours gov-14's write flags.
// --dry-run publishes nothing and asks no proxy; under an approval policy
// the put prints the change request it created and does not wait, since
// nothing is live yet; --emergency goes with the put, which publishes.
// Every write carries an Idempotency-Key.
func TestRoutesPutUnderGovernance(t *testing.T) {
	st, env, seen := recordingServer(t)
	ctx := context.Background()
	sys := configsvc.Service(systemService)
	head := func() int64 {
		t.Helper()
		h, err := st.Head(ctx, sys)
		if err != nil {
			t.Fatal(err)
		}
		return h.Revision
	}
	askedProxies := func(from int) bool {
		for _, r := range seen()[from:] {
			if r.path == "/v1/routes" {
				return true
			}
		}
		return false
	}
	routes := "routes: []\n"

	r := runCLI(t, nil, env, routes, "routes", "put", "-", "--dry-run")
	if r.err != nil || !strings.Contains(r.stdout, "dry run: publish service/sluice-system on revision 0") || !strings.Contains(r.stdout, "added routes.yaml") {
		t.Fatalf("routes put --dry-run: %v\n%s", r.err, r.all())
	}
	if n := head(); n != 0 || askedProxies(0) {
		t.Fatalf("after a dry run: head %d, asked the proxies %v; want nothing published, no wait", n, askedProxies(0))
	}

	if r := runCLI(t, nil, env, "", "policy", "put", "routes", "--pattern", systemService, "--approvals", "1"); r.err != nil {
		t.Fatalf("policy put: %v\n%s", r.err, r.all())
	}
	from := len(seen())
	r = runCLI(t, nil, env, routes, "routes", "put", "-", "-m", "first routes")
	if r.err != nil || !strings.Contains(r.stdout, "change request") || !strings.Contains(r.stdout, "created") {
		t.Fatalf("routes put under a policy: %v\n%s", r.err, r.all())
	}
	if n := head(); n != 0 || askedProxies(from) {
		t.Fatalf("after a change request: head %d, asked the proxies %v; want nothing published, no wait", n, askedProxies(from))
	}

	from = len(seen())
	r = runCLI(t, nil, env, routes, "routes", "put", "-", "--emergency", "INC-7 routes down", "--wait-timeout", "2s")
	if r.err != nil || !strings.Contains(r.stdout, "sluice-system: published revision 1") {
		t.Fatalf("routes put --emergency: %v\n%s", r.err, r.all())
	}
	var put seenRequest
	for _, q := range seen()[from:] {
		if q.method == http.MethodPut && q.path == "/v1/services/sluice-system/files/routes.yaml" {
			put = q
		}
	}
	if put.emergency != "INC-7 routes down" || put.key == "" {
		t.Fatalf("the emergency put sent X-Sluice-Emergency %q and Idempotency-Key %q; want the reason and a key", put.emergency, put.key)
	}
	if n := head(); n != 1 || !askedProxies(from) {
		t.Fatalf("after an emergency put: head %d, asked the proxies %v; want revision 1, then the wait", n, askedProxies(from))
	}
}

// TestChangeCommandsSendIdempotencyKey: the change request commands send a
// new Idempotency-Key each, like every write, and a dry run is keyed apart
// from the publish it previews.
func TestChangeCommandsSendIdempotencyKey(t *testing.T) {
	st, env, seen := recordingServer(t)
	for _, args := range [][]string{
		{"services", "create", "orders"},
		{"policy", "put", "orders", "--pattern", "orders", "--approvals", "1", "--author-may-approve"},
		{"put", "orders", "db.yaml", "-", "--dry-run"},
		{"put", "orders", "db.yaml", "-"},
	} {
		if r := runCLI(t, nil, env, "pool: 5\n", args...); r.err != nil {
			t.Fatalf("sluice %v: %v\n%s", args, r.err, r.all())
		}
	}
	cl, err := api.New(api.Config{Servers: []string{env["SLUICE_SERVER"]}, Token: env["SLUICE_TOKEN"]})
	if err != nil {
		t.Fatal(err)
	}
	crs, err := cl.Changes(context.Background(), configsvc.Service("orders"), false)
	if err != nil || len(crs) != 1 {
		t.Fatalf("change requests = %+v, %v; want the one", crs, err)
	}
	id := crs[0].ID
	for _, args := range [][]string{{"change", "approve", "orders", id}, {"change", "apply", "orders", id}} {
		if r := runCLI(t, nil, env, "", args...); r.err != nil {
			t.Fatalf("sluice %v: %v\n%s", args, r.err, r.all())
		}
	}
	keys := map[string]bool{}
	writes := 0
	for _, q := range seen() {
		if q.method == http.MethodGet {
			if q.key != "" {
				t.Errorf("%s %s sent Idempotency-Key %q on a read", q.method, q.path, q.key)
			}
			continue
		}
		writes++
		if q.key == "" || keys[q.key] {
			t.Errorf("%s %s?%s sent Idempotency-Key %q; want a new one", q.method, q.path, q.query, q.key)
		}
		keys[q.key] = true
	}
	if writes < 6 {
		t.Fatalf("saw %d writes; want at least create, policy, dry run, put, approve, apply: %+v", writes, seen())
	}
	if h, err := st.Head(context.Background(), configsvc.Service("orders")); err != nil || h.Revision != 1 {
		t.Fatalf("head = %d, %v; want the applied change request as revision 1", h.Revision, err)
	}
}
