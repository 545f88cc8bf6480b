package proxyserver_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/goleak"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
	"github.com/sluicehq/sluice/configsvc/boltstore"
	"github.com/sluicehq/sluice/configsvc/boltstore/bolttest"
	"github.com/sluicehq/sluice/configsvc/testkit"
	"github.com/sluicehq/sluice/configsvc/zkstore"
	"github.com/sluicehq/sluice/configsvc/zkstore/zktest"
	"github.com/sluicehq/sluice/router"
	"github.com/sluicehq/sluice/router/proxyserver"
)

func TestMain(m *testing.M) {
	// fasthttp keeps one goroutine per process refreshing its Date header.
	goleak.VerifyTestMain(m, testkit.LeakOptions()...)
}

// engines are the engines the proxy tests run on (forEngines).
var engines = []string{proxyserver.EngineStd, proxyserver.EngineFast, proxyserver.EngineLoop}

// forEngines runs f as a subtest per engine, named after it;
// startServing inside f (and its subtests) serves with that engine.
func forEngines(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	for _, e := range engines {
		t.Run(e, f)
	}
}

// engineOf returns the engine of the forEngines subtest t runs in.
func engineOf(t *testing.T) string {
	t.Helper()
	if parts := strings.Split(t.Name(), "/"); len(parts) >= 2 && slices.Contains(engines, parts[1]) {
		return parts[1]
	}
	t.Fatalf("%s: startServing must run inside forEngines", t.Name())
	return ""
}

func publish(t *testing.T, s configsvc.Store, base int64, routes string) int64 {
	t.Helper()
	rev, err := s.Publish(context.Background(), configsvc.Service(configsvc.SystemService), configsvc.Changeset{
		Base: base, Author: "test", Message: "routes",
		Changes: []configsvc.Change{{File: configsvc.RoutesFile, Content: []byte(routes)}},
	})
	if err != nil {
		t.Fatalf("publish routes: %v", err)
	}
	return rev.Number
}

func TestServeFollowsStore(t *testing.T) {
	forEngines(t, func(t *testing.T) { onBothStores(t, "/proxyserver-test-"+engineOf(t), testServeFollowsStore) })
}

// startServing runs proxyserver.Serve on store with opts on a new loopback
// listener and returns its address and stop, which ends Serve and fails the
// test when Serve returned an error or did not return within 10 s. stop
// runs at the end of the test when the test did not call it; later calls
// do nothing.
func startServing(t *testing.T, store proxyserver.Source, opts proxyserver.Options) (addr string, stop func()) {
	t.Helper()
	if opts.Engine == "" {
		opts.Engine = engineOf(t)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- proxyserver.Serve(ctx, store, ln, opts) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-served:
				if err != nil {
					t.Errorf("Serve: %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Error("Serve did not return within 10 s of its context's end")
			}
		})
	}
	t.Cleanup(stop)
	return ln.Addr().String(), stop
}

// onBothStores runs test on a bbolt store in a temp dir and on a real
// ZooKeeper under root.
func onBothStores(t *testing.T, root string, test func(*testing.T, configsvc.Store)) {
	t.Run("bolt", func(t *testing.T) {
		test(t, bolttest.MustOpen(t, boltstore.Options{}))
	})
	t.Run("zookeeper", func(t *testing.T) {
		zk := zktest.Start(t)
		store, err := zkstore.Open(context.Background(), zkstore.Config{Servers: zk.Servers(), Root: root})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { store.Close() })
		test(t, store)
	})
}

// testServeFollowsStore runs the proxy on store and checks that it follows
// the route file, the instances and the pins kept there.
func testServeFollowsStore(t *testing.T, store configsvc.Store) {
	ctx := context.Background()
	a := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "a:"+r.URL.Path) }))
	t.Cleanup(a.Close)
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "b:"+r.URL.Path) }))
	t.Cleanup(b.Close)

	reg := prometheus.NewRegistry()
	addr, stop := startServing(t, store, proxyserver.Options{Registerer: reg, RetryInterval: 20 * time.Millisecond})
	url := "http://" + addr
	client := &http.Client{Transport: &http.Transport{}, Timeout: 5 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	get := func(path string, hdr ...string) (int, string) {
		req, _ := http.NewRequest("GET", url+path, nil)
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := client.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}

	if code, _ := get("/orders/1"); code != http.StatusNotFound {
		t.Fatalf("before any route file: %d, want 404", code)
	}
	for _, svc := range []string{configsvc.SystemService, "orders"} {
		// The proxy creates sluice-system when it finds none: it may be there.
		if err := store.Create(ctx, configsvc.Service(svc)); err != nil && !(svc == configsvc.SystemService && errors.Is(err, configsvc.ErrConflict)) {
			t.Fatal(err)
		}
	}
	rev := publish(t, store, 0, "routes:\n  - name: orders\n    match: {path_prefix: /orders}\n    upstream: {service: orders}\n    strip_prefix: true\n")
	lease, err := store.Register(ctx, configsvc.Instance{Service: "orders", ID: "orders-1", Addr: a.Listener.Addr().String(), Status: configsvc.StatusApplied})
	if err != nil {
		t.Fatal(err)
	}
	testkit.EventuallyTrue(t, 5*time.Second, "orders route to reach a", func() bool { _, body := get("/orders/1"); return body == "a:/1" })

	// A second instance joins the rotation.
	lease2, err := store.Register(ctx, configsvc.Instance{Service: "orders", ID: "orders-2", Addr: b.Listener.Addr().String(), Status: configsvc.StatusApplied})
	if err != nil {
		t.Fatal(err)
	}
	testkit.EventuallyTrue(t, 5*time.Second, "orders-2 to serve", func() bool { _, body := get("/orders/1"); return body == "b:/1" })

	// A pin created through access (as the admin API does) pins a request to orders-2.
	tok, _, err := access.NewPins(store.Records(), access.PinsConfig{}).Create(ctx, access.PinSpec{Targets: map[string]string{"orders": "orders-2"}}, "test")
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 4; i++ {
		if _, body := get("/orders/x", router.PinHeader, tok); body != "b:/x" {
			t.Fatalf("pinned request answered %q", body)
		}
	}

	// A route file that parses as YAML but not as routes is refused; the table stays.
	bad := publish(t, store, rev, "routes:\n  - name: orders\n    upstream: {service: orders}\n    rate_limit: {rps: 0}\n")
	time.Sleep(100 * time.Millisecond)
	if code, _ := get("/orders/1"); code != 200 {
		t.Fatalf("after a bad route file: %d, want the old table", code)
	}
	// The next good one is applied.
	publish(t, store, bad, "routes:\n  - name: v2\n    match: {path_prefix: /v2}\n    upstream: {static: [\""+a.Listener.Addr().String()+"\"]}\n")
	testkit.EventuallyTrue(t, 5*time.Second, "v2 table", func() bool { code, body := get("/v2/z"); return code == 200 && body == "a:/v2/z" })
	if code, _ := get("/orders/1"); code != http.StatusNotFound {
		t.Fatalf("old route still served: %d", code)
	}
	mfs, err := reg.Gather()
	if err != nil || len(mfs) == 0 {
		t.Fatalf("no metrics gathered: %v", err)
	}
	// The loop engine counts what its loops served and the connections
	// it handed to the fast engine (the pinned requests' connection); the
	// other engines have no such series.
	served, okServed := counterValue(mfs, "sluice_proxy_loop_requests_total")
	handed, okHanded := counterValue(mfs, "sluice_proxy_loop_handoffs_total")
	if engineOf(t) == proxyserver.EngineLoop {
		if !okServed || !okHanded || served < 3 || handed < 1 {
			t.Errorf("loop engine counts: served %v (%t), handed off %v (%t); want at least 3 served and 1 hand-off", served, okServed, handed, okHanded)
		}
	} else if okServed || okHanded {
		t.Errorf("engine %s has the loop engine's series", engineOf(t))
	}

	lease.Close()
	lease2.Close()
	stop()
}

// counterValue returns the value of the counter name (without labels) in
// mfs, and whether it is there.
func counterValue(mfs []*dto.MetricFamily, name string) (float64, bool) {
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue(), true
		}
	}
	return 0, false
}
