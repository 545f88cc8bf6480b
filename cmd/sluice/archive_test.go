package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
	"github.com/sluicehq/sluice/configsvc/api"
	"github.com/sluicehq/sluice/configsvc/archive"
	"github.com/sluicehq/sluice/configsvc/boltstore"
	"github.com/sluicehq/sluice/configsvc/testkit"
	"github.com/sluicehq/sluice/configsvc/zkstore/zktest"
	"github.com/sluicehq/sluice/sdk"
)

// runCmd runs one sluice command line in the test process and returns its
// exit code, standard output and standard error.
func runCmd(ctx context.Context, stdin io.Reader, args ...string) (int, string, string) {
	var stdout, stderr srvOutput
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	env := Env{Stdin: stdin, Stdout: &stdout, Stderr: &stderr, Getenv: func(string) string { return "" }}
	code := run(ctx, args, env)
	return code, stdout.String(), stderr.String()
}

// mustMigrate runs sluice migrate and returns its result, which must say
// the target was verified.
func mustMigrate(ctx context.Context, t *testing.T, from, to string) migrateResult {
	t.Helper()
	code, out, errOut := runCmd(ctx, nil, "migrate", "--from", from, "--to", to)
	if code != 0 {
		t.Fatalf("sluice migrate --from %s --to %s: exit %d\n%s", from, to, code, errOut)
	}
	var res migrateResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("sluice migrate printed %q: %v", out, err)
	}
	if !res.Verified || res.Written != res.Archive {
		t.Fatalf("sluice migrate: verified %v, wrote %+v of %+v", res.Verified, res.Written, res.Archive)
	}
	return res
}

// revisionsWithContent reads every retained revision of ref, with content,
// newest first.
func revisionsWithContent(ctx context.Context, t *testing.T, c *api.Client, ref configsvc.Ref) []configsvc.Revision {
	t.Helper()
	list, err := c.Revisions(ctx, ref, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range list {
		full, err := c.Revision(ctx, ref, r.Number)
		if err != nil {
			t.Fatalf("revision %d of %s: %v", r.Number, ref, err)
		}
		full.Generation = ""
		list[i] = full
	}
	return list
}

func sameRevisions(a, b []configsvc.Revision) bool {
	return slices.EqualFunc(a, b, func(x, y configsvc.Revision) bool {
		return x.Number == y.Number && x.Author == y.Author && x.Time.Equal(y.Time) && x.Message == y.Message &&
			x.PublishID == y.PublishID && x.Parent == y.Parent && x.RollbackOf == y.RollbackOf &&
			slices.EqualFunc(x.Changes, y.Changes, func(p, q configsvc.Change) bool {
				return p.File == q.File && p.Delete == q.Delete && bytes.Equal(p.Content, q.Content)
			})
	})
}

// TestMigrateBoltToZooKeeperAndBack moves the store of a `make run`
// server (bbolt, with history, a link, routes, a token and the audit log
// its API wrote) to ZooKeeper with `sluice migrate`, then points a server,
// SDKs (over ZooKeeper and over the API) and a proxy at it: they see the
// same revisions, numbers and content, and the old tokens keep working.
// Then it moves the store back to a new bbolt file.
func TestMigrateBoltToZooKeeperAndBack(t *testing.T) {
	zk := zktest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "backend") }))
	defer backend.Close()

	dirA := t.TempDir()
	boltURL := "bolt://" + filepath.Join(dirA, "sluice.db")
	a := startServerMain(t, []string{"--addr", "127.0.0.1:0", "--store", boltURL, "--data-dir", dirA}, nil)
	adminToken, c := a.adminClient(t, dirA)
	orders, shared, sys := configsvc.Service("orders"), configsvc.Group("shared"), configsvc.Service(configsvc.SystemService)
	for _, ref := range []configsvc.Ref{orders, shared, sys} {
		if _, _, err := c.Create(ctx, ref); err != nil && !errors.Is(err, configsvc.ErrConflict) {
			t.Fatal(err)
		}
	}
	for i := 1; i <= 4; i++ {
		if _, err := c.PutFile(ctx, orders, "app.yaml", []byte(fmt.Sprintf("pool: %d\n", i))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.PutFile(ctx, shared, "common.yaml", []byte("region: eu\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Link(ctx, "orders", "shared"); err != nil {
		t.Fatal(err)
	}
	routes := fmt.Sprintf("routes:\n  - name: app\n    upstream: {static: [%q]}\n", backend.Listener.Addr().String())
	if _, err := c.PutFile(ctx, sys, configsvc.RoutesFile, []byte(routes)); err != nil {
		t.Fatal(err)
	}
	agent, err := c.CreateToken(ctx, api.TokenRequest{Name: "orders-agent", Roles: []api.Grant{{Role: access.RoleAgent, Pattern: "orders"}}})
	if err != nil {
		t.Fatal(err)
	}
	wantRevs := revisionsWithContent(ctx, t, c, orders)
	wantAudit, err := c.Audit(ctx, access.Query{})
	if err != nil || len(wantAudit) == 0 {
		t.Fatalf("audit before the move: %d entries, %v", len(wantAudit), err)
	}
	a.stop(t) // the bbolt file is the server's while it runs

	zkURL := "zk://" + zk.Addr() + "/migrated"
	res := mustMigrate(ctx, t, boltURL, zkURL)
	if res.Archive.Services != 2 || res.Archive.Groups != 1 || res.Archive.Links != 1 || res.Archive.LogEntries < len(wantAudit) {
		t.Fatalf("migrated %+v, want 2 services, 1 group, 1 link, at least %d log entries", res.Archive, len(wantAudit))
	}

	dirB := t.TempDir()
	b := startServerMain(t, []string{"--addr", "127.0.0.1:0", "--store", zkURL, "--data-dir", dirB}, nil)
	if _, err := os.Stat(filepath.Join(dirB, adminTokenFile)); err == nil {
		t.Fatal("the server on the migrated store made a new bootstrap admin token: the tokens did not come over")
	}
	cb := adminClient(t, b.url, adminToken)
	if who, err := cb.Whoami(ctx); err != nil || !who.Admin {
		t.Fatalf("the old admin token on the new store: %+v, %v", who, err)
	}
	if code, body := srvGet(t, b.url+"/v1/whoami", agent.Secret); code != http.StatusOK || !strings.Contains(body, "orders-agent") {
		t.Fatalf("the old agent token on the new store: %d %s", code, body)
	}
	if got := revisionsWithContent(ctx, t, cb, orders); !sameRevisions(got, wantRevs) {
		t.Fatalf("revisions on ZooKeeper = %+v\nwant %+v", got, wantRevs)
	}
	gotAudit, err := cb.Audit(ctx, access.Query{})
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range wantAudit {
		if !slices.ContainsFunc(gotAudit, func(g api.AuditEntry) bool {
			return g.Time.Equal(w.Time) && g.Action == w.Action && g.Target == w.Target && g.ActorID == w.ActorID
		}) {
			t.Fatalf("audit entry %+v missing after the move", w)
		}
	}

	head := wantRevs[0]
	for name, cfg := range map[string]sdk.Config{
		"ZooKeeper": {Service: "orders", ZooKeeper: []string{zk.Addr()}, ZKRoot: "/migrated", CacheDir: t.TempDir()},
		"API":       {Service: "orders", Server: b.url, Token: agent.Secret, CacheDir: t.TempDir()},
	} {
		cl, err := sdk.Open(ctx, cfg)
		if err != nil {
			t.Fatalf("SDK over %s: %v", name, err)
		}
		body, ok := cl.File("app.yaml")
		common, okc := cl.File("shared/common.yaml")
		if cl.Revision() != head.Number || !ok || string(body) != "pool: 4\n" || !okc || string(common) != "region: eu\n" || !slices.Equal(cl.Links(), []string{"shared"}) {
			t.Fatalf("SDK over %s on the migrated store: revision %d, app.yaml %q, common.yaml %q, links %v; want revision %d",
				name, cl.Revision(), body, common, cl.Links(), head.Number)
		}
		cl.Close()
	}

	proxyAddr, metricsAddr := testkit.FreeAddr(t), testkit.FreeAddr(t)
	pctx, pcancel := context.WithCancel(ctx)
	proxyDone := make(chan int, 1)
	go func() {
		code, _, _ := runCmd(pctx, nil, "proxy", "--addr", proxyAddr, "--metrics-addr", metricsAddr, "--store", zkURL)
		proxyDone <- code
	}()
	testkit.Eventually(t, 15*time.Second, "the proxy on the migrated store routing to the backend", func() error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+proxyAddr+"/x", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || string(body) != "backend" {
			return fmt.Errorf("proxy answered %d %q", resp.StatusCode, body)
		}
		return nil
	})
	pcancel()
	if code := <-proxyDone; code != 0 {
		t.Fatalf("sluice proxy exited %d", code)
	}
	b.stop(t)

	// And back: ZooKeeper to a new bbolt file.
	boltC := "bolt://" + filepath.Join(t.TempDir(), "sluice.db")
	mustMigrate(ctx, t, zkURL, boltC)
	code, _, errOut := runCmd(ctx, nil, "migrate", "--from", zkURL, "--to", boltC)
	if code == 0 || !strings.Contains(errOut, "not empty") || !strings.Contains(errOut, "merge") {
		t.Fatalf("a second migrate into the same bbolt file: exit %d %q, want a refusal naming --merge", code, errOut)
	}
	st, err := boltstore.Open(strings.TrimPrefix(boltC, "bolt://"), boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for _, want := range wantRevs {
		got, err := st.Revision(ctx, orders, want.Number)
		got.Generation = ""
		if err != nil || !sameRevisions([]configsvc.Revision{got}, []configsvc.Revision{want}) {
			t.Fatalf("revision %d back in bbolt = %+v, %v\nwant %+v", want.Number, got, err, want)
		}
	}
}

// TestExportImportCommands round-trips a store through `sluice export -o`
// and `sluice import` (bbolt to bbolt), refuses a damaged archive naming
// its line, and reports an import run again after it finished.
func TestExportImportCommands(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	srcPath := filepath.Join(t.TempDir(), "src.db")
	st, err := boltstore.Open(srcPath, boltstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Create(ctx, configsvc.Service("orders")); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := st.Publish(ctx, configsvc.Service("orders"), configsvc.Changeset{Base: int64(i), Author: "me", Message: "m",
			Changes: []configsvc.Change{{File: "a.yaml", Content: []byte(fmt.Sprintf("n: %d\n", i))}}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Records().Put(ctx, "tokens", "abc", []byte(`{"hash":"abc"}`)); err != nil {
		t.Fatal(err)
	}
	st.Close()

	file := filepath.Join(t.TempDir(), "backup.sluice")
	if code, _, errOut := runCmd(ctx, nil, "export", "--store", "bolt://"+srcPath, "-o", file); code != 0 || !strings.Contains(errOut, "exported 1 services") {
		t.Fatalf("sluice export: exit %d %q", code, errOut)
	}
	data, err := os.ReadFile(file)
	if err != nil || !bytes.HasPrefix(data, []byte("sluice-archive 1\n")) {
		t.Fatalf("the archive file: %q…, %v", data[:min(len(data), 40)], err)
	}
	dst := "bolt://" + filepath.Join(t.TempDir(), "dst.db")
	code, out, errOut := runCmd(ctx, bytes.NewReader(data), "import", "--store", dst)
	var res archive.ImportResult
	if code != 0 || json.Unmarshal([]byte(out), &res) != nil || res.Written.Revisions != 3 || res.Written.Records != 1 {
		t.Fatalf("sluice import: exit %d %s %s", code, out, errOut)
	}
	code, out, _ = runCmd(ctx, nil, "import", "--store", dst, "-i", file)
	if code != 0 || !strings.Contains(out, `"already_done": true`) {
		t.Fatalf("sluice import again: exit %d %s", code, out)
	}
	bad := bytes.Replace(data, []byte(`"author":"me"`), []byte(`"author":"mE"`), 1)
	if bytes.Equal(bad, data) {
		t.Fatal("no author in the archive to change")
	}
	code, _, errOut = runCmd(ctx, bytes.NewReader(bad), "import", "--store", "bolt://"+filepath.Join(t.TempDir(), "x.db"))
	if code == 0 || !strings.Contains(errOut, "archive line ") || !strings.Contains(errOut, "checksum mismatch") {
		t.Fatalf("sluice import of a damaged archive: exit %d %q", code, errOut)
	}
	if code, _, errOut := runCmd(ctx, nil, "import", "--store", dst, "--merge", "overwrite"); code == 0 || !strings.Contains(errOut, "--merge") {
		t.Fatalf("sluice import --merge overwrite: exit %d %q", code, errOut)
	}
}
