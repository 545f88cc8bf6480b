package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/api"
)

// TestServerEmbeddedProxyPublishesLiveRoutes: the proxy embedded by
// `sluice server --proxy-addr` publishes its live table, GET /v1/routes and
// `sluice routes live` show it, and it follows a routes.yaml publish.
func TestServerEmbeddedProxyPublishesLiveRoutes(t *testing.T) {
	dir := t.TempDir()
	rs := startServerMain(t, []string{"--addr", "127.0.0.1:0", "--data-dir", dir, "--proxy-addr", "127.0.0.1:0"}, nil)
	b, err := os.ReadFile(filepath.Join(dir, adminTokenFile))
	if err != nil {
		t.Fatal(err)
	}
	token := strings.TrimSpace(string(b))
	c, err := api.New(api.Config{Servers: []string{rs.url}, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	waitLive := func(what string, cond func(api.LiveRoutes) bool) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			l, err := c.LiveRoutes(ctx)
			if err == nil && cond(l) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET /v1/routes never showed %s: %+v, %v", what, l, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitLive("the embedded proxy", func(l api.LiveRoutes) bool {
		return len(l.Proxies) == 1 && strings.HasPrefix(l.Proxies[0].ID, "proxy-")
	})

	sys := configsvc.Service(configsvc.SystemService)
	if _, _, err := c.Create(ctx, sys); err != nil {
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
