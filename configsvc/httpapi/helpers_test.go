package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
	"github.com/sluicehq/sluice/configsvc/api"
	"github.com/sluicehq/sluice/configsvc/boltstore"
	"github.com/sluicehq/sluice/configsvc/boltstore/bolttest"
	"github.com/sluicehq/sluice/configsvc/format"
	"github.com/sluicehq/sluice/configsvc/testkit"
	"github.com/sluicehq/sluice/configsvc/zkstore/zktest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, testkit.LeakOptions()...)
}

// testEnv is one admin server on a bbolt store in t.TempDir, served over
// real HTTP on loopback.
type testEnv struct {
	t     testing.TB
	store configsvc.Store
	srv   *Server
	http  *httptest.Server
	admin string // bootstrap admin token
	clock *testkit.Clock
	reg   *prometheus.Registry
	log   *bytes.Buffer
	logMu *sync.Mutex
	// zk and zkRoot are set on ZooKeeper (onBothStores): another store on
	// the same data is another session on them.
	zk     *zktest.Server
	zkRoot string
}

// newEnv starts a server on a fresh bbolt store that validates content
// formats on publish, as the sluice command wires it; mods adjust the Config.
func newEnv(t testing.TB, mods ...func(*Config)) *testEnv {
	t.Helper()
	return newEnvOn(t, configsvc.Validating(bolttest.MustOpen(t, boltstore.Options{}), format.Validator{}), mods...)
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// newEnvOn starts a server on store; the first server on a store
// bootstraps the admin token.
func newEnvOn(t testing.TB, store configsvc.Store, mods ...func(*Config)) *testEnv {
	t.Helper()
	e := &testEnv{t: t, store: store, clock: testkit.NewClock(time.Now().UTC()), reg: prometheus.NewRegistry(), log: &bytes.Buffer{}, logMu: &sync.Mutex{}}
	cfg := Config{
		Store:          store,
		Logger:         slogJSON(lockedWriter{e.logMu, e.log}),
		Registry:       e.reg,
		Now:            e.clock.Now,
		RequestTimeout: 2 * time.Second,
		Heartbeat:      50 * time.Millisecond,
	}
	for _, m := range mods {
		m(&cfg)
	}
	srv, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	e.srv = srv
	e.http = httptest.NewUnstartedServer(srv)
	e.http.Config.RegisterOnShutdown(func() { _ = srv.Close() })
	e.http.Start()
	t.Cleanup(func() {
		_ = srv.Close()
		e.http.Close()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tok, _, err := access.NewTokens(store.Records(), nil).Bootstrap(ctx, 0, nil)
	if err != nil {
		t.Fatalf("Bootstrap: %v", err)
	}
	e.admin = tok
	return e
}

// onBothStores runs test as the subtests "bolt" and "zookeeper", each on a
// fresh server wired as the sluice command wires it (content validated on
// publish): bbolt in t.TempDir, and a real ZooKeeper started by zktest
// (skipped when ZooKeeper is missing, failed instead when
// SLUICE_REQUIRE_ZOOKEEPER=1).
func onBothStores(t *testing.T, test func(t *testing.T, e *testEnv)) {
	t.Helper()
	t.Run("bolt", func(t *testing.T) { test(t, newEnv(t)) })
	t.Run("zookeeper", func(t *testing.T) {
		zk := zktest.Start(t)
		const root = "/sluice"
		e := newEnvOn(t, configsvc.Validating(mustZK(t, zk, root), format.Validator{}))
		e.zk, e.zkRoot = zk, root
		test(t, e)
	})
}

// otherStore returns a store on e's data as another process sees it: on
// ZooKeeper a store with its own session (what it registers is not this
// server's), on bbolt, which one process holds, e's own store.
func (e *testEnv) otherStore(t *testing.T) configsvc.Store {
	t.Helper()
	if e.zk == nil {
		return e.store
	}
	return mustZK(t, e.zk, e.zkRoot)
}

// withT returns a view of e whose helpers fail t, for use inside subtests.
func (e *testEnv) withT(t *testing.T) *testEnv {
	c := *e
	c.t = t
	return &c
}

// logText returns what the server logged so far.
func (e *testEnv) logText() string {
	e.logMu.Lock()
	defer e.logMu.Unlock()
	return e.log.String()
}

// mustToken creates a token with grants ("editor:orders", "admin" …).
func (e *testEnv) mustToken(grants ...string) string {
	e.t.Helper()
	var gs []access.Grant
	for _, s := range grants {
		g, err := access.ParseGrant(s)
		if err != nil {
			e.t.Fatalf("ParseGrant(%q): %v", s, err)
		}
		gs = append(gs, g)
	}
	tok, _, err := access.NewTokens(e.store.Records(), nil).Create(context.Background(), strings.Join(grants, ","), gs, "test")
	if err != nil {
		e.t.Fatalf("create token: %v", err)
	}
	return tok
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (r *response) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// errCode returns the error code of an error response.
func (r *response) errCode(t *testing.T) string {
	t.Helper()
	var b api.ErrorBody
	if err := json.Unmarshal(r.body, &b); err != nil || b.Error == nil || b.Error.Code == "" {
		t.Fatalf("status %d: not the error shape: %s", r.status, r.body)
	}
	return b.Error.Code
}

// req describes one request in tests.
type req struct {
	method, path, token string
	body                any // string/[]byte: raw; anything else: JSON
	contentType         string
	header              map[string]string
}

func (e *testEnv) do(r req) *response {
	e.t.Helper()
	var body io.Reader
	ct := r.contentType
	switch b := r.body.(type) {
	case nil:
	case string:
		body = strings.NewReader(b)
	case []byte:
		body = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		body = bytes.NewReader(data)
		if ct == "" {
			ct = "application/json"
		}
	}
	hr, err := http.NewRequest(r.method, e.http.URL+r.path, body)
	if err != nil {
		e.t.Fatalf("NewRequest %s %s: %v", r.method, r.path, err)
	}
	if ct != "" {
		hr.Header.Set("Content-Type", ct)
	}
	if r.token != "" {
		hr.Header.Set("Authorization", "Bearer "+r.token)
	}
	for k, v := range r.header {
		hr.Header.Set(k, v)
	}
	resp, err := e.http.Client().Do(hr)
	if err != nil {
		e.t.Fatalf("%s %s: %v", r.method, r.path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("read body: %v", err)
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: data}
}

// must does r and fails the test unless the status is want.
func (e *testEnv) must(want int, r req) *response {
	e.t.Helper()
	resp := e.do(r)
	if resp.status != want {
		e.t.Fatalf("%s %s: status %d, want %d: %s", r.method, r.path, resp.status, want, resp.body)
	}
	return resp
}

// mustService creates a service with files published in one revision.
func (e *testEnv) mustService(name string, files map[string]string) {
	e.t.Helper()
	e.must(http.StatusCreated, req{method: "PUT", path: "/v1/services/" + name, token: e.admin})
	if len(files) == 0 {
		return
	}
	var changes []map[string]any
	for f, c := range files {
		changes = append(changes, map[string]any{"file": f, "content": c})
	}
	e.must(http.StatusCreated, req{method: "POST", path: "/v1/services/" + name + "/revisions", token: e.admin,
		body: map[string]any{"message": "seed", "changes": changes}})
}

// mustGroup creates a shared group with files.
func (e *testEnv) mustGroup(name string, files map[string]string) {
	e.t.Helper()
	e.must(http.StatusCreated, req{method: "PUT", path: "/v1/shared/" + name, token: e.admin})
	for f, c := range files {
		e.must(http.StatusOK, req{method: "PUT", path: "/v1/shared/" + name + "/files/" + f, token: e.admin, body: c, contentType: "text/plain"})
	}
}

// auditCount returns the number of entries in the store's audit log (not
// the sampled refusals).
func (e *testEnv) auditCount() int {
	e.t.Helper()
	n, before := 0, int64(0)
	for {
		recs, err := e.store.Records().Scan(context.Background(), access.AuditCollection, before, 1000)
		if err != nil {
			e.t.Fatal(err)
		}
		n += len(recs)
		if len(recs) < 1000 {
			return n
		}
		before, _ = strconv.ParseInt(recs[len(recs)-1].ID, 10, 64)
	}
}
