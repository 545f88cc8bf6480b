package main

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestServerEmbeddedProxyPublishesLiveRoutes: the proxy embedded by
// `sluice server --proxy-addr` publishes its live table, GET /v1/routes and
// `sluice routes live` show it, and it follows a routes.yaml publish.
func TestServerEmbeddedProxyPublishesLiveRoutes(t *testing.T) {
	rs, token := startServerWithProxy(t)
	do := func(method, path, ctype, body string) {
		t.Helper()
		adminDo(t, rs.url, token, method, path, ctype, body)
	}
	type live struct {
		Revision int64 `json:"revision"`
		Proxies  []struct {
			ID       string `json:"id"`
			Revision int64  `json:"revision"`
			Routes   []struct {
				Name string `json:"name"`
			} `json:"routes"`
		} `json:"proxies"`
	}
	waitLive := func(what string, cond func(live) bool) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			var l live
			code, body := srvGet(t, rs.url+"/v1/routes", token)
			if code == http.StatusOK && json.Unmarshal([]byte(body), &l) == nil && cond(l) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("GET /v1/routes never showed %s: %d %s", what, code, body)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitLive("the embedded proxy", func(l live) bool { return len(l.Proxies) == 1 && strings.HasPrefix(l.Proxies[0].ID, "proxy-") })

	do("PUT", "/v1/services/sluice-system", "", "")
	do("PUT", "/v1/services/sluice-system/files/routes.yaml", "text/plain",
		"routes:\n  - name: echo\n    upstream: {static: [\"127.0.0.1:9\"]}\n")
	waitLive("the published route", func(l live) bool {
		return l.Revision == 1 && len(l.Proxies) == 1 && l.Proxies[0].Revision == 1 && len(l.Proxies[0].Routes) == 1 && l.Proxies[0].Routes[0].Name == "echo"
	})

	var stdout, stderr srvOutput
	vars := map[string]string{"SLUICE_SERVER": rs.url, "SLUICE_TOKEN": token, "SLUICE_DATA_DIR": t.TempDir()}
	env := Env{Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr, Getenv: func(k string) string { return vars[k] }}
	if code := run(context.Background(), []string{"routes", "live"}, env); code != 0 {
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
	adminDo(t, rs.url, token, "PUT", "/v1/services/sluice-system", "", "")
	adminDo(t, rs.url, token, "PUT", "/v1/services/sluice-system/files/routes.yaml", "text/plain",
		"routes:\n  - name: admin\n    upstream: {static: [\""+rs.m.Bound("addr")+"\"]}\n")
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, body := srvGet(t, "http://"+rs.m.Bound("proxy-addr")+"/v1/whoami", token)
		if code == http.StatusBadGateway && strings.Contains(body, "upstream_refused") && strings.Contains(body, "listener of this process") {
			return
		}
		if code == http.StatusOK {
			t.Fatalf("the admin API answered through the proxy: %s", body)
		}
		if time.Now().After(deadline) {
			t.Fatalf("proxy answered %d %s, want 502 upstream_refused", code, body)
		}
		time.Sleep(50 * time.Millisecond)
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

// adminDo sends method path (with body of type ctype, if any) to the admin
// API at base with token, and fails t unless the answer is 2xx.
func adminDo(t *testing.T, base, token, method, path, ctype, body string) {
	t.Helper()
	req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode >= 300 {
		t.Fatalf("%s %s: %s", method, path, resp.Status)
	}
}
