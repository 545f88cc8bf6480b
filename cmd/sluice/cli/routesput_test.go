package cli

import (
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// routesPutAPI is a fake server where sluice-system exists and a put of
// routes.yaml publishes revision 7; GET /v1/routes answers with proxies
// built by live from the number of times it was asked (1, 2 …).
func routesPutAPI(t *testing.T, live func(n int) []map[string]any) *fakeAPI {
	t.Helper()
	f := newFakeAPI(t)
	f.reply("GET /v1/services/sluice-system", http.StatusOK, map[string]any{"revision": 6, "files": map[string]any{}})
	f.handle("PUT /v1/services/sluice-system/files/routes.yaml", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("ETag", `"7"`)
		writeJSON(w, http.StatusOK, map[string]any{"revision": 7, "author": "admin", "changes": []map[string]any{{"file": "routes.yaml"}}})
	})
	var n atomic.Int64
	f.handle("GET /v1/routes", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"revision": 7, "proxies": live(int(n.Add(1))), "stale": []any{
			map[string]any{"id": "proxy-quiet", "reason": "unreported", "revision": 0, "registered": true},
		}})
	})
	return f
}

func proxyAt(id string, rev int) map[string]any {
	return map[string]any{"id": id, "addr": "127.0.0.1:7080", "updated": time.Now().UTC().Format(time.RFC3339), "revision": rev, "peers": 2, "routes": []any{}}
}

// TestRoutesPutWaitsForEveryProxy: routes put prints each live proxy as it
// reports the new revision and returns once all do.
func TestRoutesPutWaitsForEveryProxy(t *testing.T) {
	f := routesPutAPI(t, func(n int) []map[string]any {
		if n < 3 {
			return []map[string]any{proxyAt("proxy-a", 7), proxyAt("proxy-b", 6)}
		}
		return []map[string]any{proxyAt("proxy-a", 7), proxyAt("proxy-b", 7)}
	})
	r := runCLI(t, f, nil, "routes: []\n", "routes", "put", "-")
	if r.err != nil {
		t.Fatalf("routes put: %v\n%s", r.err, r.all())
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	want := []string{"sluice-system: published revision 7 (routes.yaml)", "proxy proxy-a serves revision 7", "proxy proxy-quiet is registered but publishes no state", "proxy proxy-b serves revision 7", "revision 7 is live on all 2 proxies"}
	if len(lines) != len(want) {
		t.Fatalf("stdout:\n%s\nwant %d lines starting %q", r.stdout, len(want), want)
	}
	for i := range want {
		if !strings.HasPrefix(lines[i], want[i]) {
			t.Errorf("line %d %q, want it to start %q", i, lines[i], want[i])
		}
	}
}

// TestRoutesPutTimesOutNamingLaggingProxies: a proxy that never reports
// the new revision makes routes put fail after --wait-timeout, naming it.
func TestRoutesPutTimesOutNamingLaggingProxies(t *testing.T) {
	f := routesPutAPI(t, func(int) []map[string]any {
		return []map[string]any{proxyAt("proxy-a", 7), proxyAt("proxy-b", 6)}
	})
	start := time.Now()
	r := runCLI(t, f, nil, "routes: []\n", "routes", "put", "-", "--wait-timeout", "300ms")
	if r.err == nil {
		t.Fatalf("routes put succeeded with proxy-b behind:\n%s", r.all())
	}
	if msg := r.err.Error(); !strings.Contains(msg, "proxy-b (revision 6)") || strings.Contains(msg, "proxy-a") || !strings.Contains(msg, "300ms") {
		t.Errorf("error %q, want it to name proxy-b at revision 6 (only) and the timeout", msg)
	}
	if d := time.Since(start); d < 300*time.Millisecond || d > 5*time.Second {
		t.Errorf("gave up after %v, want the 300ms timeout", d)
	}
}

// TestRoutesPutNoWait: --no-wait returns once published, asking nothing
// of the proxies; with -o json the progress stays off stdout.
func TestRoutesPutNoWait(t *testing.T) {
	f := routesPutAPI(t, func(int) []map[string]any { return []map[string]any{proxyAt("proxy-a", 6)} })
	r := runCLI(t, f, nil, "routes: []\n", "routes", "put", "-", "--no-wait")
	if r.err != nil || strings.TrimSpace(r.stdout) != "sluice-system: published revision 7 (routes.yaml)" {
		t.Fatalf("routes put --no-wait: %v\n%s", r.err, r.all())
	}
	f.mu.Lock()
	for _, req := range f.reqs {
		if req.Path == "/v1/routes" {
			t.Error("--no-wait asked GET /v1/routes")
		}
	}
	f.mu.Unlock()

	f = routesPutAPI(t, func(int) []map[string]any { return []map[string]any{proxyAt("proxy-a", 7)} })
	r = runCLI(t, f, nil, "routes: []\n", "-o", "json", "routes", "put", "-")
	if r.err != nil || !strings.HasPrefix(strings.TrimSpace(r.stdout), "{") || strings.Contains(r.stdout, "proxy-a") || !strings.Contains(r.stderr, "proxy proxy-a serves revision 7") {
		t.Fatalf("routes put -o json: %v\nstdout %q\nstderr %q", r.err, r.stdout, r.stderr)
	}
}

// TestRoutesPutCreatesSystemServiceOnce: on a fresh server the first put
// creates sluice-system; a conflict (a proxy created it meanwhile) is fine.
func TestRoutesPutCreatesSystemServiceOnce(t *testing.T) {
	f := routesPutAPI(t, func(int) []map[string]any { return nil })
	f.reply("GET /v1/services/sluice-system", http.StatusNotFound, apiErr("not_found", "no service sluice-system", nil))
	f.reply("PUT /v1/services/sluice-system", http.StatusConflict, apiErr("conflict", "service sluice-system exists", nil))
	r := runCLI(t, f, nil, "routes: []\n", "routes", "put", "-")
	if r.err != nil {
		t.Fatalf("routes put after a create conflict: %v\n%s", r.err, r.all())
	}
	f.last("PUT /v1/services/sluice-system")
	if !strings.Contains(r.stdout, "no live proxy reports its route table") {
		t.Errorf("stdout %q, want it to say there is no proxy to wait for", r.stdout)
	}
}

// TestRoutesPutSeesAQuickProxyBeforeAFullPollInterval: a proxy that
// reports the new revision a few milliseconds after the first look must
// be seen (and the put return) well within the 100 ms a proxy is given to
// apply a revision; the wait used to look again only 100 ms later, so
// that it printed every quick proxy as taking over 100 ms.
func TestRoutesPutSeesAQuickProxyBeforeAFullPollInterval(t *testing.T) {
	var first atomic.Int64 // UnixNano of the first GET /v1/routes
	f := routesPutAPI(t, func(n int) []map[string]any {
		now := time.Now().UnixNano()
		first.CompareAndSwap(0, now)
		if time.Duration(now-first.Load()) < 15*time.Millisecond {
			return []map[string]any{proxyAt("proxy-a", 6)}
		}
		return []map[string]any{proxyAt("proxy-a", 7)}
	})
	r := runCLI(t, f, nil, "routes: []\n", "routes", "put", "-")
	if r.err != nil {
		t.Fatalf("routes put: %v\n%s", r.err, r.all())
	}
	took := time.Since(time.Unix(0, first.Load()))
	if !strings.Contains(r.stdout, "proxy proxy-a serves revision 7") {
		t.Fatalf("stdout:\n%s\nwant proxy-a serving revision 7", r.stdout)
	}
	if took >= 90*time.Millisecond {
		t.Errorf("routes put returned %v after its first look at a proxy that reported 15 ms later; want well under the 100 ms poll interval", took)
	}
}
