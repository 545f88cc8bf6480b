package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
	"github.com/sluicehq/sluice/configsvc/api"
	"github.com/sluicehq/sluice/configsvc/secrets/localkey"
	"github.com/sluicehq/sluice/configsvc/testkit"
	"github.com/sluicehq/sluice/configsvc/zkstore/zktest"
	"github.com/sluicehq/sluice/sdk"
)

// secretValue returns a value no test data holds by chance.
func secretValue(t *testing.T) string {
	t.Helper()
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "hunter2-" + hex.EncodeToString(b[:])
}

// leak reports whether b holds any of values, as they are or in base64
// (a JSON []byte), at any alignment.
func leak(b []byte, values ...string) string {
	for _, v := range values {
		if bytes.Contains(b, []byte(v)) {
			return v
		}
		for off := 0; off < 3; off++ {
			enc := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("x", off) + v))
			// Drop the characters that depend on the prefix and the tail.
			core := enc[(off*4+2)/3+1 : len(enc)-4]
			if len(core) > 8 && bytes.Contains(b, []byte(core)) {
				return v + " (base64)"
			}
		}
	}
	return ""
}

// secretsFixture is a server with one service holding a secret file at
// two revisions, and tokens with and without the secrets grant.
type secretsFixture struct {
	rs             *runningServer
	dir            string
	admin          *api.Client
	viewer, reader string // tokens: viewer:orders; agent:orders + secrets:orders
	values         []string
}

type dbConfig struct {
	Password string `yaml:"password"`
}

func newSecretsFixture(t *testing.T, store string) *secretsFixture {
	t.Helper()
	ctx := context.Background()
	f := &secretsFixture{dir: t.TempDir()}
	args := []string{"--addr", "127.0.0.1:0", "--data-dir", f.dir}
	if store != "" {
		// On ZooKeeper the key file is not created by itself (every server
		// of the cluster needs the same one): the operator makes it.
		key := filepath.Join(f.dir, "secrets.key")
		if _, err := localkey.Open(key, true); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--store", store, "--secrets-key-file", key)
	}
	f.rs = startServerMain(t, args, nil)
	_, f.admin = f.rs.adminClient(t, f.dir)
	orders := configsvc.Service("orders")
	if _, _, err := f.admin.Create(ctx, orders); err != nil {
		t.Fatal(err)
	}
	// Validation runs on the plaintext: a secret YAML file that does not
	// parse is refused with its line, before anything is encrypted.
	_, err := f.admin.PutFile(ctx, orders, "db.secret.yaml", []byte("password: [unclosed\n"))
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Status != http.StatusUnprocessableEntity {
		t.Fatalf("publish of a bad secret YAML = %v, want 422", err)
	}
	for i := 0; i < 2; i++ {
		v := secretValue(t)
		f.values = append(f.values, v)
		_, err := f.admin.Publish(ctx, orders, api.PublishRequest{Message: "rotate the db password", Changes: []api.Change{
			api.PutChange("db.secret.yaml", []byte("password: "+v+"\n")),
			api.PutChange("app.yaml", []byte("port: "+string(rune('1'+i))+"\n")),
		}})
		if err != nil {
			t.Fatalf("publish %d: %v", i+1, err)
		}
	}
	f.viewer = f.token(t, "viewer", "viewer:orders")
	f.reader = f.token(t, "reader", "agent:orders", "secrets:orders")
	return f
}

func (f *secretsFixture) token(t *testing.T, name string, grants ...string) string {
	t.Helper()
	var roles []api.Grant
	for _, g := range grants {
		gr, err := access.ParseGrant(g)
		if err != nil {
			t.Fatal(err)
		}
		roles = append(roles, gr)
	}
	tok, err := f.admin.CreateToken(context.Background(), api.TokenRequest{Name: name, Roles: roles})
	if err != nil {
		t.Fatal(err)
	}
	return tok.Secret
}

func (f *secretsFixture) client(t *testing.T, token string) *api.Client {
	t.Helper()
	c, err := api.New(api.Config{Servers: []string{f.rs.url}, Token: token})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// readPaths are the admin API reads that carry content.
var readPaths = []string{
	"/v1/services/orders/files/db.secret.yaml",
	"/v1/services/orders/files/db.secret.yaml?revision=1",
	"/v1/services/orders",
	"/v1/services/orders/revisions",
	"/v1/services/orders/revisions/1",
	"/v1/services/orders/revisions/2",
	"/v1/services/orders/diff?from=1&to=2",
	"/v1/services/orders/diff?from=0&to=2",
	"/v1/services/orders/snapshot",
	"/v1/services/orders/snapshot?revision=1",
	"/v1/services/orders/effective",
	"/v1/search?q=hunter2",
	"/v1/summary/services",
	"/v1/audit",
}

// TestAttackSecretValueWithoutGrant: a token without the secrets grant
// (admin included) reads every content-carrying endpoint, the watch and the
// CLI, and never sees a secret value; it sees that the file is secret, its
// size and its revision. With the grant the value is there, at every
// revision. On both stores.
func TestAttackSecretValueWithoutGrant(t *testing.T) {
	for _, tc := range secretStores(t) {
		t.Run(tc.name, func(t *testing.T) {
			store, _ := tc.start(t)
			f := newSecretsFixture(t, store)
			ctx := context.Background()
			adminTok := strings.TrimSpace(string(mustRead(t, filepath.Join(f.dir, adminTokenFile))))
			for _, who := range []struct{ name, token string }{{"admin", adminTok}, {"viewer", f.viewer}} {
				for _, p := range readPaths {
					code, body := srvGet(t, f.rs.url+p, who.token)
					if code == http.StatusForbidden && p == "/v1/audit" {
						continue
					}
					if code != http.StatusOK {
						t.Fatalf("%s GET %s = %d %s", who.name, p, code, body)
					}
					if v := leak([]byte(body), f.values...); v != "" {
						t.Errorf("%s GET %s shows the secret value %s:\n%s", who.name, p, v, body)
					}
				}
				c := f.client(t, who.token)
				fc, err := c.File(ctx, configsvc.Service("orders"), "db.secret.yaml", 0)
				if err != nil {
					t.Fatal(err)
				}
				if !strings.Contains(string(fc.Content), "secret file") || !strings.Contains(string(fc.Content), "revision 2") {
					t.Errorf("%s sees %q, want a placeholder naming the revision", who.name, fc.Content)
				}
				// The watch (what the console and the SDK's HTTP transport follow).
				wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				n := 0
				for ev := range c.Watch(wctx, configsvc.Service("orders"), 0) {
					b, _ := json.Marshal(ev)
					if v := leak(b, f.values...); v != "" {
						t.Errorf("%s watch event shows %s", who.name, v)
					}
					if ev.Revision != nil {
						for _, ch := range ev.Revision.Changes {
							if ch.File == "db.secret.yaml" && !strings.Contains(string(ch.Content), "secret file") {
								t.Errorf("%s watch shows %s at revision %d as %q, want the placeholder", who.name, ch.File, ev.Revision.Number, ch.Content)
							}
						}
						if n++; n == 2 {
							break
						}
					}
				}
				cancel()
				if n != 2 {
					t.Errorf("%s watch delivered %d revisions, want 2", who.name, n)
				}
				// A data key is for the secrets grant only.
				if _, err := c.DataKey(ctx, configsvc.Service("orders"), "{}"); !errors.Is(err, api.ErrForbidden) {
					t.Errorf("%s DataKey = %v, want forbidden", who.name, err)
				}
			}
			// An editor without the grant may roll a secret file back; the
			// dry run's diff shows sizes, not the old value it restores.
			editor := f.client(t, f.token(t, "editor", "editor:orders"))
			d, err := editor.DryRunRollback(ctx, configsvc.Service("orders"), api.RollbackRequest{ToRevision: 1})
			if err != nil {
				t.Fatal(err)
			}
			db, _ := json.Marshal(d)
			if v := leak(db, f.values...); v != "" || len(d.Files) == 0 {
				t.Errorf("rollback dry run shows %q (%d files):\n%s", v, len(d.Files), db)
			}
			// A change request would keep the value unencrypted until applied:
			// refused, and nothing stored.
			if _, err := f.admin.PutPolicy(ctx, api.Policy{Name: "orders", Pattern: "orders", Approvals: 1}); err != nil {
				t.Fatal(err)
			}
			if _, err := editor.PutFile(ctx, configsvc.Service("orders"), "db.secret.yaml", []byte("password: "+secretValue(t)+"\n")); !errors.Is(err, configsvc.ErrInvalid) {
				t.Errorf("a secret file through a change request = %v, want refused as invalid", err)
			}
			v3 := secretValue(t)
			if _, err := f.admin.PutFile(ctx, configsvc.Service("orders"), "db.secret.yaml", []byte("password: "+v3+"\n"), api.WithEmergency("rotate now")); err != nil {
				t.Errorf("emergency publish of a secret file: %v", err)
			}
			f.values = append(f.values, v3)
			if err := f.admin.DeletePolicy(ctx, "orders"); err != nil {
				t.Fatal(err)
			}
			// The CLI: sluice get, history, diff.
			for _, args := range [][]string{
				{"get", "orders", "db.secret.yaml"},
				{"get", "orders", "db.secret.yaml", "--revision", "1"},
				{"history", "orders"},
				{"diff", "orders", "1", "2"},
			} {
				out, err := runCLI(t, f.rs.url, f.viewer, args...)
				if err != nil {
					out += err.Error()
				}
				if v := leak([]byte(out), f.values...); v != "" {
					t.Errorf("sluice %v shows %s:\n%s", args, v, out)
				}
				if err != nil {
					t.Errorf("sluice %v: %v\n%s", args, err, out)
				}
			}
			// With the grant: the value, at every revision.
			r := f.client(t, f.reader)
			for i, v := range f.values {
				fc, err := r.File(ctx, configsvc.Service("orders"), "db.secret.yaml", int64(i+1))
				if err != nil || string(fc.Content) != "password: "+v+"\n" {
					t.Errorf("reader revision %d = %q, %v; want the value", i+1, fc.Content, err)
				}
			}
			// The watch too: the grant's stream carries the values.
			wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			seen := 0
			for ev := range r.Watch(wctx, configsvc.Service("orders"), 0) {
				if ev.Err != nil {
					t.Errorf("reader watch: %v", ev.Err)
					break
				}
				if ev.Revision == nil {
					continue
				}
				for _, ch := range ev.Revision.Changes {
					if want := "password: " + f.values[ev.Revision.Number-1] + "\n"; ch.File == "db.secret.yaml" && string(ch.Content) != want {
						t.Errorf("reader watch: revision %d shows %q, want the value", ev.Revision.Number, ch.Content)
					}
				}
				if seen++; seen == len(f.values) {
					break
				}
			}
			cancel()
			if seen != len(f.values) {
				t.Errorf("reader watch delivered %d revisions, want %d", seen, len(f.values))
			}
			if out, err := runCLI(t, f.rs.url, f.reader, "get", "orders", "db.secret.yaml"); err != nil || !strings.Contains(out, f.values[len(f.values)-1]) {
				t.Errorf("sluice get with the grant = %q, %v; want the value", out, err)
			}
			// Nor do the server's own logs hold a value.
			if v := leak([]byte(f.rs.stdout.String()+f.rs.stderr.String()), f.values...); v != "" {
				t.Errorf("server log holds %s", v)
			}
		})
	}
}

// TestSecretsAtRestAndThroughTheSDK: the store (every byte of the bbolt
// file or of the ZooKeeper tree), the audit log and the SDK's cache file
// hold no plaintext, while the SDK, over HTTP and over ZooKeeper, binds the
// value and follows a new one; an SDK token without the grant gets no
// value. On both stores.
func TestSecretsAtRestAndThroughTheSDK(t *testing.T) {
	for _, tc := range secretStores(t) {
		t.Run(tc.name, func(t *testing.T) {
			store, zks := tc.start(t)
			f := newSecretsFixture(t, store)
			ctx := context.Background()
			type transport struct {
				name string
				cfg  sdk.Config
			}
			transports := []transport{{"http", sdk.Config{Server: f.rs.url}}}
			if zks != nil {
				transports = append(transports, transport{"zookeeper", sdk.Config{ZooKeeper: zks.Servers(), ZKRoot: "/sluice-secrets",
					KeyServers: []string{f.rs.url}}})
			}
			var caches []string
			for _, tr := range transports {
				cfg := tr.cfg
				cfg.Service, cfg.Token, cfg.NoRegister = "orders", f.reader, true
				cfg.CacheDir = t.TempDir()
				caches = append(caches, filepath.Join(cfg.CacheDir, "orders.cache.db"))
				c, err := sdk.Open(ctx, cfg)
				if err != nil {
					t.Fatalf("%s: %v", tr.name, err)
				}
				db := sdk.Bind[dbConfig](c, "db.secret.yaml")
				latest := f.values[len(f.values)-1]
				if got := db.Load().Password; got != latest || db.Err() != nil {
					t.Fatalf("%s: Bind = %q (%v), want the value", tr.name, got, db.Err())
				}
				if b, ok := c.File("db.secret.yaml"); !ok || !strings.Contains(string(b), latest) {
					t.Errorf("%s: File = %q, %v", tr.name, b, ok)
				}
				v := secretValue(t)
				f.values = append(f.values, v)
				if _, err := f.admin.PutFile(ctx, configsvc.Service("orders"), "db.secret.yaml", []byte("password: "+v+"\n")); err != nil {
					t.Fatal(err)
				}
				testkit.EventuallyTrue(t, 10*time.Second, tr.name+" SDK applies the new secret", func() bool { return db.Load().Password == v })
				c.Close()

				// Without the grant: the SDK has the envelope, not the value.
				cfg.Token, cfg.CacheDir = f.token(t, "agent-"+tr.name, "agent:orders"), ""
				c, err = sdk.Open(ctx, cfg)
				if err != nil {
					t.Fatalf("%s without grant: %v", tr.name, err)
				}
				db = sdk.Bind[dbConfig](c, "db.secret.yaml")
				if db.Load().Password != "" || db.Err() == nil {
					t.Errorf("%s without grant: Bind = %q (%v), want no value and an error", tr.name, db.Load().Password, db.Err())
				}
				c.Close()
			}
			for _, p := range caches {
				b := mustRead(t, p)
				if v := leak(b, f.values...); v != "" {
					t.Errorf("SDK cache %s holds %s", p, v)
				}
				if leak(b, "sluice-secret/v1\n{") == "" {
					t.Errorf("SDK cache %s holds no envelope: the test looked at the wrong file", p)
				}
			}
			audit, err := f.admin.Audit(ctx, access.Query{})
			if err != nil {
				t.Fatal(err)
			}
			ab, _ := json.Marshal(audit)
			if v := leak(ab, f.values...); v != "" {
				t.Errorf("audit holds %s", v)
			}
			if zks == nil {
				b := mustRead(t, filepath.Join(f.dir, "sluice.db"))
				if v := leak(b, f.values...); v != "" {
					t.Errorf("bbolt file holds %s", v)
				}
				if leak(b, "sluice-secret/v1\n{") == "" {
					t.Errorf("bbolt file holds no envelope: the test looked at the wrong file")
				}
				return
			}
			all := zkTree(t, zks)
			if v := leak(all, f.values...); v != "" {
				t.Errorf("ZooKeeper tree holds %s", v)
			}
			if leak(all, "sluice-secret/v1\n{") == "" {
				t.Errorf("ZooKeeper tree holds no envelope: the walk missed the revisions")
			}
		})
	}
}

// TestFaultSecretKeyMissingRefusesToServe: a server whose keyring lacks
// the key of the stored secrets (another key file) refuses to serve them
// in plaintext with a clear error, and the SDK gets no value, while a
// reader without the grant still sees the placeholder.
func TestFaultSecretKeyMissingRefusesToServe(t *testing.T) {
	for _, tc := range secretStores(t) {
		t.Run(tc.name, func(t *testing.T) {
			store, _ := tc.start(t)
			f := newSecretsFixture(t, store)
			f.rs.stop(t)
			other := filepath.Join(t.TempDir(), "other.key")
			if _, err := localkey.Open(other, true); err != nil {
				t.Fatal(err)
			}
			args := []string{"--addr", "127.0.0.1:0", "--data-dir", f.dir, "--secrets-key-file", other}
			if store != "" {
				args = append(args, "--store", store)
			}
			rs := startServerMain(t, args, nil)
			code, body := srvGet(t, rs.url+"/v1/services/orders/files/db.secret.yaml", f.reader)
			if code != http.StatusServiceUnavailable || !strings.Contains(body, "refusing to serve") || leak([]byte(body), f.values...) != "" {
				t.Errorf("read with a missing key = %d %s, want 503 refusing to serve", code, body)
			}
			if code, body := srvGet(t, rs.url+"/v1/services/orders/files/db.secret.yaml", f.viewer); code != http.StatusOK || !strings.Contains(body, "secret file") {
				t.Errorf("viewer read with a missing key = %d %s, want the placeholder", code, body)
			}
			c, err := sdk.Open(context.Background(), sdk.Config{Service: "orders", Server: rs.url, Token: f.reader, NoRegister: true})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			db := sdk.Bind[dbConfig](c, "db.secret.yaml")
			if db.Load().Password != "" || db.Err() == nil || !strings.Contains(db.Err().Error(), "data key") {
				t.Errorf("SDK with a missing key: Bind = %q (%v), want no value and a data key error", db.Load().Password, db.Err())
			}
		})
	}
}

// secretStore is one of the two stores, started by its test.
type secretStore struct {
	name string
	zk   bool
}

// secretStores returns the two stores: bbolt, and a real ZooKeeper
// (skipped when it is not installed, unless SLUICE_REQUIRE_ZOOKEEPER=1).
func secretStores(t *testing.T) []secretStore {
	t.Helper()
	return []secretStore{{name: "bolt"}, {name: "zookeeper", zk: true}}
}

// start returns the store URL (the bbolt file in the data dir, where
// `sluice server` puts it, so the test can read it) and the ZooKeeper
// server, nil for bbolt.
func (s secretStore) start(t *testing.T) (string, *zktest.Server) {
	t.Helper()
	if !s.zk {
		return "", nil
	}
	z := zktest.Start(t)
	return "zk://" + z.Addr() + "/sluice-secrets", z
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// zkTree returns the data of every node of the ZooKeeper tree, concatenated.
func zkTree(t *testing.T, s *zktest.Server) []byte {
	t.Helper()
	conn, _, err := zk.Connect(s.Servers(), 10*time.Second, zk.WithLogInfo(false))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var all bytes.Buffer
	var walk func(p string)
	walk = func(p string) {
		data, _, err := conn.Get(p)
		if err == nil {
			all.Write(data)
			all.WriteByte('\n')
		}
		kids, _, err := conn.Children(p)
		if err != nil {
			return
		}
		for _, k := range kids {
			walk(strings.TrimSuffix(p, "/") + "/" + k)
		}
	}
	walk("/")
	return all.Bytes()
}

// runCLI runs the sluice CLI in process against server with token and
// returns its stdout; a failure's error holds its stderr.
func runCLI(t *testing.T, server, token string, args ...string) (string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	env := Env{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errOut, Getenv: func(k string) string {
		switch k {
		case "SLUICE_TOKEN":
			return token
		case "SLUICE_SERVER":
			return server
		}
		return ""
	}}
	if code := run(context.Background(), args, env); code != 0 {
		return out.String(), fmt.Errorf("exit code %d: %s", code, errOut.String())
	}
	return out.String(), nil
}

// TestSecretsRotateKeepsHistory: `sluice keys rotate` adds a key, re-wraps
// every store key under it without rewriting content; with the old key
// deleted from the key file every historical revision still reads, and new
// revisions publish. On both stores.
func TestSecretsRotateKeepsHistory(t *testing.T) {
	for _, tc := range secretStores(t) {
		t.Run(tc.name, func(t *testing.T) {
			store, _ := tc.start(t)
			f := newSecretsFixture(t, store)
			ctx := context.Background()
			before := map[int64][]byte{}
			for n := int64(1); n <= 2; n++ {
				r, err := f.admin.Revision(ctx, configsvc.Service("orders"), n)
				if err != nil {
					t.Fatal(err)
				}
				before[n] = []byte(*api.FromRevision(r, true).Changes[0].Content)
			}
			f.rs.stop(t)
			keyFile := filepath.Join(f.dir, "secrets.key")
			oldKeys := string(mustRead(t, keyFile))
			args := []string{"keys", "rotate", "--data-dir", f.dir}
			if store != "" {
				args = append(args, "--store", store)
			}
			out, err := runCLI(t, "", "", args...)
			if err != nil {
				t.Fatalf("sluice keys rotate: %v\n%s", err, out)
			}
			var rot struct {
				KEK       string   `json:"kek"`
				Rewrapped []string `json:"rewrapped"`
				Retirable []string `json:"retirable_keys"`
			}
			if err := json.Unmarshal([]byte(out), &rot); err != nil || len(rot.Rewrapped) != 1 || len(rot.Retirable) != 1 || strings.Contains(oldKeys, rot.KEK) {
				t.Fatalf("rotate printed %s (%v), want one store key re-wrapped under a new key", out, err)
			}
			// Retire the old key: only the new line stays.
			lines := strings.Split(strings.TrimSpace(string(mustRead(t, keyFile))), "\n")
			if err := os.WriteFile(keyFile, []byte(lines[len(lines)-1]+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			sargs := []string{"--addr", "127.0.0.1:0", "--data-dir", f.dir}
			if store != "" {
				sargs = append(sargs, "--store", store, "--secrets-key-file", keyFile)
			}
			rs := startServerMain(t, sargs, nil)
			f.rs = rs
			r := f.client(t, f.reader)
			for i, v := range f.values {
				fc, err := r.File(ctx, configsvc.Service("orders"), "db.secret.yaml", int64(i+1))
				if err != nil || string(fc.Content) != "password: "+v+"\n" {
					t.Errorf("after rotation, revision %d = %q, %v; want the value", i+1, fc.Content, err)
				}
			}
			_, admin := rs.adminClient(t, f.dir)
			for n, b := range before {
				rv, err := admin.Revision(ctx, configsvc.Service("orders"), n)
				if err != nil || *api.FromRevision(rv, true).Changes[0].Content != string(b) {
					t.Errorf("revision %d changed with the rotation: %v", n, err)
				}
			}
			if _, err := admin.PutFile(ctx, configsvc.Service("orders"), "db.secret.yaml", []byte("password: after\n")); err != nil {
				t.Fatalf("publish after rotation: %v", err)
			}
			if fc, err := r.File(ctx, configsvc.Service("orders"), "db.secret.yaml", 0); err != nil || string(fc.Content) != "password: after\n" {
				t.Errorf("new revision after rotation = %q, %v", fc.Content, err)
			}
		})
	}
}

// TestAttackSecretValueInSDKRejection: a secret revision the SDK's binding
// refuses is reported (Err, log, instance record) without the decoder's
// words, which quote the value.
func TestAttackSecretValueInSDKRejection(t *testing.T) {
	f := newSecretsFixture(t, "")
	ctx := context.Background()
	c, err := sdk.Open(ctx, sdk.Config{Service: "orders", Server: f.rs.url, Token: f.reader})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	type typed struct {
		Password int `yaml:"password"`
	}
	db := sdk.Bind[typed](c, "db.secret.yaml")
	if db.Err() == nil {
		t.Fatal("a string bound to an int was accepted")
	}
	// yaml.v3 quotes the start of the value ("hunter2..."): look for it.
	if strings.Contains(db.Err().Error(), "hunter2") {
		t.Errorf("the binding's error quotes the value: %v", db.Err())
	}
	testkit.EventuallyTrue(t, 10*time.Second, "the instance reports the rejection", func() bool {
		insts, err := f.admin.Instances(ctx, "orders")
		if err != nil || len(insts) == 0 {
			return false
		}
		b, _ := json.Marshal(insts)
		if strings.Contains(string(b), "hunter2") {
			t.Fatalf("the instance record quotes the value: %s", b)
		}
		return strings.Contains(string(b), "db.secret.yaml")
	})
}

// TestAttackSecretValueThroughSearchCache: a search by a token with the
// grant fills the server's shared snapshot cache; a later search by a
// token without it must not find the value there. Search never indexes
// secret values.
func TestAttackSecretValueThroughSearchCache(t *testing.T) {
	f := newSecretsFixture(t, "")
	ctx := context.Background()
	reader := f.client(t, f.token(t, "searcher", "viewer:orders", "secrets:orders"))
	if _, err := reader.Search(ctx, "hunter2", 10); err != nil {
		t.Fatal(err)
	}
	res, err := f.client(t, f.viewer).Search(ctx, "hunter2", 10)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(res)
	if strings.Contains(string(b), "hunter2") {
		t.Errorf("a viewer's search finds the secret value: %s", b)
	}
}

// TestSecretsKeyFileCreatedInFreshDataDir: `make run` on a new machine
// (no data directory yet) creates the key file, mode 0600, beside the
// bbolt file and admin.token.
func TestSecretsKeyFileCreatedInFreshDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "fresh", "sluice-data")
	startServerMain(t, []string{"--addr", "127.0.0.1:0", "--data-dir", dir}, nil)
	fi, err := os.Stat(filepath.Join(dir, "secrets.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("secrets.key: %v, %v; want a 0600 file", fi, err)
	}
}
