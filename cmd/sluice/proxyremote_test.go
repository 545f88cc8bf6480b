package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/api"
	"github.com/sluicehq/sluice/configsvc/boltstore"
	"github.com/sluicehq/sluice/configsvc/boltstore/bolttest"
	"github.com/sluicehq/sluice/configsvc/httpapi"
	"github.com/sluicehq/sluice/configsvc/testkit"
	"github.com/sluicehq/sluice/router"
)

// remoteFixture is a bbolt-backed `sluice server` with a service orders
// whose instances are httptest backends registered through the API, a
// route to it in sluice-system/routes.yaml, and a token with the proxy
// role; proxies started by startProxy read it with --server.
type remoteFixture struct {
	t       *testing.T
	dataDir string
	addr    string // the server's fixed address, so that a restart keeps its URL
	srv     *runningServer
	admin   *api.Client
	token   string // the proxy token
	ctx     context.Context
}

func newRemoteFixture(t *testing.T) *remoteFixture {
	t.Helper()
	f := newEmptyRemoteFixture(t)
	ctx := f.ctx
	for _, ref := range []configsvc.Ref{configsvc.Service(configsvc.SystemService), configsvc.Service("orders")} {
		if _, _, err := f.admin.Create(ctx, ref); err != nil {
			t.Fatal(err)
		}
	}
	f.putRoutes("routes:\n  - name: orders\n    upstream: {service: orders}\n")
	return f
}

// newEmptyRemoteFixture is the fixture's server and proxy token, with no
// service yet: sluice-system does not exist.
func newEmptyRemoteFixture(t *testing.T) *remoteFixture {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	// The first start picks its own port (a port reserved and released
	// by FreeAddr can be taken by another test before the server binds
	// it); restarts reuse it.
	f := &remoteFixture{t: t, dataDir: t.TempDir(), addr: "127.0.0.1:0", ctx: ctx}
	f.start()
	f.addr = f.srv.m.Bound("addr")
	_, f.admin = f.srv.adminClient(t, f.dataDir)
	tok, err := f.admin.CreateToken(ctx, api.TokenRequest{Name: "edge-proxy", Roles: []api.Grant{{Role: "proxy", Pattern: "*"}}})
	if err != nil {
		t.Fatal(err)
	}
	f.token = tok.Secret
	return f
}

// start runs the server (again) on the fixture's address and data dir.
func (f *remoteFixture) start() {
	f.t.Helper()
	f.srv = startServerMain(f.t, []string{"--addr", f.addr, "--data-dir", f.dataDir, "--log-level", "warn"}, nil)
}

func (f *remoteFixture) url() string { return "http://" + f.addr }

func (f *remoteFixture) putRoutes(routes string) int64 {
	f.t.Helper()
	rev, err := f.admin.PutFile(f.ctx, configsvc.Service(configsvc.SystemService), configsvc.RoutesFile, []byte(routes))
	if err != nil {
		f.t.Fatal(err)
	}
	return rev.Number
}

// backend starts an HTTP backend answering its id and keeps it registered
// as instance id of orders through the admin API, refreshed every 200 ms
// (so that it is back quickly after the server restarts).
func (f *remoteFixture) backend(id string) {
	f.t.Helper()
	b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, id) }))
	f.t.Cleanup(b.Close)
	c, err := api.New(api.Config{Servers: []string{f.url()}, Token: f.adminToken(), Heartbeat: 200 * time.Millisecond})
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { c.Close() })
	lease, err := c.Register(f.ctx, configsvc.Instance{Service: "orders", ID: id, Addr: b.Listener.Addr().String(), Status: configsvc.StatusApplied})
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { lease.Close() })
}

func (f *remoteFixture) adminToken() string {
	f.t.Helper()
	tok, _ := f.srv.adminClient(f.t, f.dataDir)
	return tok
}

// startProxy runs `sluice proxy --server … --token …` with more args.
func (f *remoteFixture) startProxy(args ...string) (*running, *ProxyMain, string) {
	f.t.Helper()
	e, stdout, stderr := testEnv(nil)
	m := NewProxyMain(e)
	args = append([]string{"--addr", "127.0.0.1:0", "--access-log", "off", "--server", f.url(), "--token", f.token}, args...)
	r := startMain(f.t, m, args, stdout, stderr)
	return r, m, "http://" + m.Bound("addr")
}

// proxyGet sends GET path through the proxy with headers (name, value …)
// and returns the status, the body and the X-Sluice-Instance answer header.
func proxyGet(t *testing.T, base, path string, headers ...string) (int, string, string, error) {
	t.Helper()
	req, _ := http.NewRequest("GET", base+path, nil)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	client := &http.Client{Timeout: 3 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header.Get(router.InstanceHeader), nil
}

// eventuallyAnswers waits until GET path through the proxy answers 200
// with want.
func eventuallyAnswers(t *testing.T, base, path, want string, headers ...string) {
	t.Helper()
	testkit.Eventually(t, 20*time.Second, "the proxy answering "+path+" with "+want, func() error {
		code, body, _, err := proxyGet(t, base, path, headers...)
		if err == nil && (code != http.StatusOK || body != want) {
			err = fmt.Errorf("%d %q", code, body)
		}
		return err
	})
}

// TestProxyOnServerRoutesPinsAndPublishesState: a standalone proxy with
// --server on a bbolt-backed server (no store of its own) routes to the
// instances registered there per routes.yaml, follows a routes.yaml
// publish, honours a pin created after it started, and its live state
// shows in GET /v1/routes; the token is in none of its log lines.
func TestProxyOnServerRoutesPinsAndPublishesState(t *testing.T) {
	f := newRemoteFixture(t)
	f.backend("orders-1")
	p, m, base := f.startProxy("--log-level", "debug")
	eventuallyAnswers(t, base, "/", "orders-1")

	// A second instance joins; a pin made now sends the pinned requests
	// to it every time while the others are balanced.
	f.backend("orders-2")
	testkit.Eventually(t, 20*time.Second, "both instances in the proxy's table", func() error {
		seen := map[string]bool{}
		for range 10 {
			if _, body, _, err := proxyGet(t, base, "/"); err == nil {
				seen[body] = true
			}
		}
		if !seen["orders-1"] || !seen["orders-2"] {
			return fmt.Errorf("saw %v", seen)
		}
		return nil
	})
	pin, err := f.admin.CreatePin(f.ctx, api.PinRequest{Targets: map[string]string{"orders": "orders-2"}, TTL: "10m"})
	if err != nil {
		t.Fatal(err)
	}
	eventuallyAnswers(t, base, "/", "orders-2", router.PinHeader, pin.Secret)
	for range 10 {
		code, body, inst, err := proxyGet(t, base, "/", router.PinHeader, pin.Secret)
		if err != nil || code != http.StatusOK || body != "orders-2" || inst != "orders-2" {
			t.Fatalf("pinned request: %d %q instance %q err %v; want orders-2 each time", code, body, inst, err)
		}
	}
	if _, err := f.admin.RevokePin(f.ctx, pin.ID); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 20*time.Second, "the revoked pin refused", func() error {
		code, body, _, err := proxyGet(t, base, "/", router.PinHeader, pin.Secret)
		if err == nil && (code != http.StatusForbidden || !strings.Contains(body, "revoked")) {
			err = fmt.Errorf("%d %q, want 403 revoked", code, body)
		}
		return err
	})

	// A routes.yaml publish takes effect, and the live state the proxy
	// publishes through the API shows it.
	rev := f.putRoutes("routes:\n  - name: orders-api\n    match: {path_prefix: /api}\n    upstream: {service: orders}\n")
	testkit.Eventually(t, 20*time.Second, "the new route in force", func() error {
		code, _, _, err := proxyGet(t, base, "/")
		if err == nil && code != http.StatusNotFound {
			err = fmt.Errorf("GET / answered %d, want 404 (no route any more)", code)
		}
		if err == nil {
			code, _, _, err = proxyGet(t, base, "/api/x")
			if err == nil && code != http.StatusOK {
				err = fmt.Errorf("GET /api/x answered %d", code)
			}
		}
		return err
	})
	testkit.Eventually(t, 20*time.Second, "GET /v1/routes showing the proxy", func() error {
		live, err := f.admin.LiveRoutes(f.ctx)
		if err != nil {
			return err
		}
		if len(live.Proxies) != 1 {
			return fmt.Errorf("proxies %+v stale %+v", live.Proxies, live.Stale)
		}
		st := live.Proxies[0]
		if st.Addr != m.Bound("addr") || st.Revision != rev || len(st.Routes) != 1 || st.Routes[0].Name != "orders-api" || len(st.Routes[0].Instances) != 2 {
			return fmt.Errorf("state %+v, want revision %d with route orders-api over 2 instances", st, rev)
		}
		return nil
	})
	p.stop(t)
	testkit.Eventually(t, 10*time.Second, "the stopped proxy's state removed", func() error {
		live, err := f.admin.LiveRoutes(f.ctx)
		if err == nil && (len(live.Proxies) != 0 || len(live.Stale) != 0) {
			err = fmt.Errorf("still listed: %+v %+v", live.Proxies, live.Stale)
		}
		return err
	})
	if out := p.stderr.String() + p.stdout.String(); strings.Contains(out, f.token) || !strings.Contains(out, "proxy reads the admin servers") {
		t.Fatalf("the proxy's log holds the token, or does not say where it reads:\n%s", out)
	}
}

// TestProxyOnServerTakesTheFirstRoutesAtOnce: on a server where
// sluice-system does not exist yet, a proxy on --server creates it (its
// proxy role allows that, and only that) and watches it, so the first
// routes published take effect at once, as on a proxy reading the store.
// Before, it could not create it and looked for it every retry interval
// (2 s): the first routes reached it up to 2 s after the publish.
func TestProxyOnServerTakesTheFirstRoutesAtOnce(t *testing.T) {
	f := newEmptyRemoteFixture(t)
	ctx := f.ctx
	system := configsvc.Service(configsvc.SystemService)
	if _, err := f.admin.Head(ctx, system); !errors.Is(err, configsvc.ErrNotFound) {
		t.Fatalf("a fresh server has %s already (err %v): the test needs it missing", configsvc.SystemService, err)
	}
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "first") }))
	t.Cleanup(backend.Close)

	_, _, base := f.startProxy() // the default --retry-interval, 2 s
	testkit.Eventually(t, 10*time.Second, "the proxy answering 404 (no routes)", func() error {
		code, _, _, err := proxyGet(t, base, "/")
		if err == nil && code != http.StatusNotFound {
			err = fmt.Errorf("%d", code)
		}
		return err
	})
	testkit.Eventually(t, 5*time.Second, "the proxy creating "+configsvc.SystemService, func() error {
		_, err := f.admin.Head(ctx, system)
		return err
	})
	time.Sleep(100 * time.Millisecond) // the proxy is watching, past its first look

	// What `sluice routes put` does: create sluice-system if missing, publish.
	if _, _, err := f.admin.Create(ctx, system); err != nil {
		t.Fatal(err)
	}
	f.putRoutes(fmt.Sprintf("routes:\n  - name: first\n    upstream: {static: [%q]}\n", backend.Listener.Addr().String()))
	published := time.Now()
	for {
		code, body, _, err := proxyGet(t, base, "/")
		if err == nil && code == http.StatusOK && body == "first" {
			break
		}
		if time.Since(published) > 5*time.Second {
			t.Fatalf("the first routes not in force 5 s after the publish: %d %q %v", code, body, err)
		}
		time.Sleep(time.Millisecond)
	}
	took := time.Since(published)
	t.Logf("first routes in force %v after the publish", took.Round(100*time.Microsecond))
	if took > 500*time.Millisecond {
		t.Fatalf("the first routes took %v to reach the proxy, want well under the 2 s retry interval (at most 500ms)", took)
	}
}

// TestFaultProxyOnServerKeepsRoutingWhileServerDown: the only admin server
// is stopped; the proxy keeps routing (and resolving pins) on its last
// table, and a proxy started meanwhile starts without routes; once the
// server is back on the same address the proxies resume their watches and
// take a routes.yaml published after the restart, never going back a
// revision.
func TestFaultProxyOnServerKeepsRoutingWhileServerDown(t *testing.T) {
	f := newRemoteFixture(t)
	f.backend("orders-1")
	_, m, base := f.startProxy()
	pin, err := f.admin.CreatePin(f.ctx, api.PinRequest{Targets: map[string]string{"orders": "orders-1"}, TTL: "10m"})
	if err != nil {
		t.Fatal(err)
	}
	eventuallyAnswers(t, base, "/", "orders-1", router.PinHeader, pin.Secret)

	f.srv.stop(t)
	if code, _, err := httpGet(f.url() + "/healthz"); err == nil {
		t.Fatalf("the server still answers (%d) after stop", code)
	}
	for i := range 20 { // a bounded loop over 2 s with the server down
		code, body, inst, err := proxyGet(t, base, "/", router.PinHeader, pin.Secret)
		if err != nil || code != http.StatusOK || body != "orders-1" || inst != "orders-1" {
			t.Fatalf("request %d with the server down: %d %q instance %q err %v; want orders-1 from the last table", i, code, body, inst, err)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// A proxy started while no server answers starts anyway, without
	// routes, and follows them once the server is back.
	late, _, lateBase := f.startProxy()
	if code, _, _, err := proxyGet(t, lateBase, "/"); err != nil || code != http.StatusNotFound {
		t.Fatalf("a proxy started with the server down answered %d, %v; want 404 (no routes yet)", code, err)
	}

	f.start()
	eventuallyAnswers(t, lateBase, "/", "orders-1")
	if !strings.Contains(late.stderr.String(), "no admin server answers yet") {
		t.Errorf("the late proxy did not say the server was down:\n%s", late.stderr.String())
	}
	rev := f.putRoutes("routes:\n  - name: orders\n    upstream: {service: orders}\n  - name: static\n    match: {path_prefix: /static}\n    upstream: {static: [\"127.0.0.1:9\"]}\n")
	testkit.Eventually(t, 30*time.Second, "the proxy taking the routes published after the restart", func() error {
		live, err := f.admin.LiveRoutes(f.ctx)
		if err != nil {
			return err
		}
		for _, st := range live.Proxies {
			if st.Addr == m.Bound("addr") && st.Revision == rev && len(st.Routes) == 2 {
				return nil
			}
		}
		return fmt.Errorf("live routes %+v, want the proxy at revision %d", live.Proxies, rev)
	})
	eventuallyAnswers(t, base, "/", "orders-1", router.PinHeader, pin.Secret)
}

// httpGet is a GET with a short timeout, for probes.
func httpGet(url string) (int, string, error) {
	c := &http.Client{Timeout: time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// TestProxyServerFlags: --server and --store are mutually exclusive (on
// the command line, or both from the environment), a command-line flag
// wins over the other's env twin, --server needs a token, --token needs
// --server, a bad URL is named, and a token the server refuses, or one
// without the proxy role, stops the proxy with a clear error that never
// holds the token.
func TestProxyServerFlags(t *testing.T) {
	parse := func(vars map[string]string, args ...string) (*ProxyMain, error) {
		e, _, _ := testEnv(vars)
		m := NewProxyMain(e)
		return m, m.ParseFlags(args)
	}
	for _, tc := range []struct {
		name string
		vars map[string]string
		args []string
		want string
	}{
		{"both flags", nil, []string{"--store", "bolt://x.db", "--server", "http://a:7070", "--token", "t"}, "mutually exclusive"},
		{"both twins", map[string]string{"SLUICE_STORE": "bolt://x.db", "SLUICE_SERVER": "http://a:7070", "SLUICE_TOKEN": "t"}, nil, "mutually exclusive"},
		{"server without token", nil, []string{"--server", "http://a:7070"}, "--server needs --token"},
		{"token without server", nil, []string{"--token", "t"}, "--token goes with --server"},
		{"bad url", nil, []string{"--server", "http://a:7070,ftp://b", "--token", "t"}, `"ftp://b"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := parse(tc.vars, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one mentioning %q", err, tc.want)
			}
		})
	}
	t.Run("user info not echoed", func(t *testing.T) {
		_, err := parse(nil, "--server", "http://u:hunter2@a:7070", "--token", "t")
		if err == nil || strings.Contains(err.Error(), "hunter2") {
			t.Fatalf("err %v: want a refusal without the password", err)
		}
	})
	t.Run("flag beats the other twin", func(t *testing.T) {
		m, err := parse(map[string]string{"SLUICE_SERVER": "http://a:7070", "SLUICE_TOKEN": "t"}, "--store", "bolt://x.db")
		if err != nil || m.StoreURL != "bolt://x.db" || m.Servers != nil || m.Token != "" {
			t.Fatalf("err %v, store %q servers %v: want the store, the twins ignored", err, m.StoreURL, m.Servers)
		}
		m, err = parse(map[string]string{"SLUICE_TOKEN": "t"}, "--store", "bolt://x.db")
		if err != nil || m.StoreURL != "bolt://x.db" || m.Token != "" {
			t.Fatalf("SLUICE_TOKEN alone with --store: err %v, token kept %v; want the store, the twin ignored", err, m.Token != "")
		}
		m, err = parse(map[string]string{"SLUICE_STORE": "bolt://x.db", "SLUICE_TOKEN": "t"}, "--server", "http://a:7070,https://b:7070")
		if err != nil || m.StoreURL != "" || len(m.Servers) != 2 || m.Token != "t" {
			t.Fatalf("err %v, store %q servers %v: want the servers with the token from SLUICE_TOKEN", err, m.StoreURL, m.Servers)
		}
	})

	f := newRemoteFixture(t)
	viewer, err := f.admin.CreateToken(f.ctx, api.TokenRequest{Name: "a-viewer", Roles: []api.Grant{{Role: "viewer", Pattern: "*"}}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, token, want string }{
		{"unknown token", "slt_" + strings.Repeat("A", 43), "refuses it"},
		{"token without the proxy role", viewer.Secret, "has no proxy role"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, _, stderr := testEnv(nil)
			m := NewProxyMain(e)
			if err := m.ParseFlags([]string{"--addr", "127.0.0.1:0", "--server", f.url(), "--token", tc.token}); err != nil {
				t.Fatal(err)
			}
			err := m.Run(f.ctx)
			m.Close()
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error()+stderr.String(), tc.token) {
				t.Fatalf("Run: %v (log %q); want an error saying %q, without the token", err, stderr.String(), tc.want)
			}
		})
	}
}

// TestFaultProxyOnServerFailsOverToTheNextServer: two admin servers on one
// store; the proxy is given both. When the first stops, the proxy's
// streams move to the second, in the order given, and what is published
// there (routes, a pin) takes effect.
func TestFaultProxyOnServerFailsOverToTheNextServer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	store := bolttest.MustOpen(t, boltstore.Options{})
	var urls []string
	var servers []*httpapi.Server
	var listeners []*httptest.Server
	for range 2 {
		srv, err := httpapi.New(httpapi.Config{Store: store, Heartbeat: 200 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		ts := httptest.NewServer(srv)
		t.Cleanup(func() { srv.Close(); ts.Close() })
		servers, listeners, urls = append(servers, srv), append(listeners, ts), append(urls, ts.URL)
	}
	adminTok, err := servers[0].Bootstrap(ctx)
	if err != nil {
		t.Fatal(err)
	}
	adminB := adminClient(t, urls[1], adminTok)
	for _, svc := range []string{configsvc.SystemService, "orders"} {
		if _, _, err := adminB.Create(ctx, configsvc.Service(svc)); err != nil {
			t.Fatal(err)
		}
	}
	backend := func(id string) {
		b := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, id) }))
		t.Cleanup(b.Close)
		lease, err := store.Register(ctx, configsvc.Instance{Service: "orders", ID: id, Addr: b.Listener.Addr().String(), Status: configsvc.StatusApplied})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { lease.Close() })
	}
	backend("orders-1")
	backend("orders-2")
	if _, err := adminB.PutFile(ctx, configsvc.Service(configsvc.SystemService), configsvc.RoutesFile, []byte("routes:\n  - name: orders\n    upstream: {service: orders}\n")); err != nil {
		t.Fatal(err)
	}
	tok, err := adminB.CreateToken(ctx, api.TokenRequest{Name: "edge", Roles: []api.Grant{{Role: "proxy", Pattern: "*"}}})
	if err != nil {
		t.Fatal(err)
	}
	e, stdout, stderr := testEnv(nil)
	m := NewProxyMain(e)
	startMain(t, m, []string{"--addr", "127.0.0.1:0", "--access-log", "off", "--server", strings.Join(urls, ","), "--token", tok.Secret}, stdout, stderr)
	base := "http://" + m.Bound("addr")
	testkit.Eventually(t, 20*time.Second, "the proxy routing through the first server's table", func() error {
		code, _, _, err := proxyGet(t, base, "/")
		if err == nil && code != http.StatusOK {
			err = fmt.Errorf("status %d", code)
		}
		return err
	})

	servers[0].Close()
	listeners[0].Close()
	pin, err := adminB.CreatePin(ctx, api.PinRequest{Targets: map[string]string{"orders": "orders-2"}, TTL: "10m"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := adminB.PutFile(ctx, configsvc.Service(configsvc.SystemService), configsvc.RoutesFile, []byte("routes:\n  - name: orders\n    match: {path_prefix: /orders}\n    upstream: {service: orders}\n")); err != nil {
		t.Fatal(err)
	}
	eventuallyAnswers(t, base, "/orders/x", "orders-2", router.PinHeader, pin.Secret)
	if code, _, _, err := proxyGet(t, base, "/"); err != nil || code != http.StatusNotFound {
		t.Fatalf("GET / after the new routes: %d %v, want 404", code, err)
	}
}

// TestProxyOnServerStopsWhenItsTokenIsRevoked: revoking a proxy's token
// cuts it off: its streams are refused and sluice proxy --server stops
// with an error saying so (never with the token in it).
func TestProxyOnServerStopsWhenItsTokenIsRevoked(t *testing.T) {
	f := newRemoteFixture(t)
	f.backend("orders-1")
	p, _, base := f.startProxy()
	eventuallyAnswers(t, base, "/", "orders-1")
	who, err := adminClient(t, f.url(), f.token).Whoami(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.admin.RevokeToken(f.ctx, who.ID); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		p.done <- err // for the cleanup
		if err == nil || !errors.Is(err, api.ErrUnauthorized) || strings.Contains(err.Error(), f.token) {
			t.Fatalf("Run returned %v; want an unauthorized error without the token", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the proxy still runs 20 s after its token was revoked")
	}
}
