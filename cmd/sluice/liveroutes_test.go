package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/api"
	"github.com/sluicehq/sluice/configsvc/testkit"
)

// TestServerEmbeddedProxyPublishesLiveRoutes: the proxy embedded by
// `sluice server --proxy-addr` publishes its live table, GET /v1/routes and
// `sluice routes live` show it, and it follows a routes.yaml publish.
func TestServerEmbeddedProxyPublishesLiveRoutes(t *testing.T) {
	rs, token := startServerWithProxy(t)
	c := adminClient(t, rs.url, token)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	waitLive := func(what string, cond func(api.LiveRoutes) bool) {
		t.Helper()
		testkit.Eventually(t, 15*time.Second, "GET /v1/routes showing "+what, func() error {
			l, err := c.LiveRoutes(ctx)
			if err == nil && !cond(l) {
				err = fmt.Errorf("got %+v", l)
			}
			return err
		})
	}
	waitLive("the embedded proxy", func(l api.LiveRoutes) bool {
		return len(l.Proxies) == 1 && strings.HasPrefix(l.Proxies[0].ID, "proxy-")
	})

	sys := configsvc.Service(configsvc.SystemService)
	if _, _, err := c.Create(ctx, sys); err != nil && !errors.Is(err, configsvc.ErrConflict) { // the proxy may have created it
		t.Fatal(err)
	}
	if _, err := c.PutFile(ctx, sys, configsvc.RoutesFile, []byte("routes:\n  - name: echo\n    upstream: {static: [\"127.0.0.1:9\"]}\n")); err != nil {
		t.Fatal(err)
	}
	waitLive("the published route", func(l api.LiveRoutes) bool {
		return l.Revision == 1 && len(l.Proxies) == 1 && l.Proxies[0].Revision == 1 && len(l.Proxies[0].Routes) == 1 && l.Proxies[0].Routes[0].Name == "echo"
	})

	var stdout, stderr srvOutput
	vars := map[string]string{"SLUICE_SERVER": rs.url, "SLUICE_TOKEN": token, "SLUICE_DATA_DIR": t.TempDir()}
	env := Env{Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr, Getenv: func(k string) string { return vars[k] }}
	if code := run(ctx, []string{"routes", "live"}, env); code != 0 {
		t.Fatalf("sluice routes live: exit %d: %s", code, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "PROXY") || !strings.Contains(lines[1], " echo ") || !strings.Contains(lines[1], "127.0.0.1:9") {
		t.Fatalf("sluice routes live printed:\n%s", stdout.String())
	}
}

// TestAttackSSRFToAdminAPIThroughEmbeddedProxy: a route (or an instance)
// pointing at the admin API of the same process must not let requests
// through the proxy reach it: the embedded proxy knows the process's
// listeners and refuses to connect to them (502 upstream_refused).
func TestAttackSSRFToAdminAPIThroughEmbeddedProxy(t *testing.T) {
	rs, token := startServerWithProxy(t)
	c := adminClient(t, rs.url, token)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sys := configsvc.Service("sluice-system")
	if _, _, err := c.Create(ctx, sys); err != nil && !errors.Is(err, configsvc.ErrConflict) { // the proxy may have created it
		t.Fatal(err)
	}
	routes := "routes:\n  - name: admin\n    upstream: {static: [\"" + rs.m.Bound("addr") + "\"]}\n"
	if _, err := c.PutFile(ctx, sys, "routes.yaml", []byte(routes)); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 15*time.Second, "the proxy refusing its own listener", func() error {
		code, body := srvGet(t, "http://"+rs.m.Bound("proxy-addr")+"/v1/whoami", token)
		if code == http.StatusOK {
			t.Fatalf("the admin API answered through the proxy: %s", body)
		}
		if code != http.StatusBadGateway || !strings.Contains(body, "upstream_refused") || !strings.Contains(body, "listener of this process") {
			return fmt.Errorf("proxy answered %d %s, want 502 upstream_refused", code, body)
		}
		return nil
	})
}

// adminClient returns an API client of the server at url with token,
// closed when the test ends.
func adminClient(t *testing.T, url, token string) *api.Client {
	t.Helper()
	c, err := api.New(api.Config{Servers: []string{url}, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// TestRoutesPutWaitsForTheProxy: on a fresh `sluice server --proxy-addr`,
// `sluice routes put` returns once the embedded proxy serves the new
// routes, saying so: a request right after it is routed, never 404.
func TestRoutesPutWaitsForTheProxy(t *testing.T) {
	rs, token := startServerWithProxy(t)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "backend") }))
	defer backend.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	vars := map[string]string{"SLUICE_SERVER": rs.url, "SLUICE_TOKEN": token, "SLUICE_DATA_DIR": t.TempDir()}
	for i := 1; i <= 3; i++ {
		path := fmt.Sprintf("/v%d", i)
		routes := fmt.Sprintf("routes:\n  - name: r%d\n    match: {path_prefix: %s}\n    upstream: {static: [%q]}\n", i, path, backend.Listener.Addr().String())
		var stdout, stderr srvOutput
		env := Env{Stdin: strings.NewReader(routes), Stdout: &stdout, Stderr: &stderr, Getenv: func(k string) string { return vars[k] }}
		if code := run(ctx, []string{"routes", "put", "-"}, env); code != 0 {
			t.Fatalf("sluice routes put: exit %d: %s", code, stderr.String())
		}
		if code, body := srvGet(t, "http://"+rs.m.Bound("proxy-addr")+path, ""); code != http.StatusOK || body != "backend" {
			t.Fatalf("right after routes put %d: %d %q, want the backend's answer\n%s", i, code, body, stdout.String())
		}
		out := stdout.String()
		t.Logf("routes put %d:\n%s", i, out)
		for _, want := range []string{fmt.Sprintf("published revision %d", i), fmt.Sprintf("serves revision %d", i), fmt.Sprintf("revision %d is live on all 1 proxies", i)} {
			if !strings.Contains(out, want) {
				t.Errorf("routes put %d printed %q, want %q", i, out, want)
			}
		}
	}
}

// startServerWithProxy runs `sluice server` with an embedded proxy on
// loopback and returns it with its bootstrap admin token.
func startServerWithProxy(t *testing.T) (*runningServer, string) {
	t.Helper()
	dir := t.TempDir()
	rs := startServerMain(t, []string{"--addr", "127.0.0.1:0", "--data-dir", dir, "--proxy-addr", "127.0.0.1:0"}, nil)
	b, err := os.ReadFile(filepath.Join(dir, adminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	return rs, strings.TrimSpace(string(b))
}
