package sdk_test

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/boltstore"
	"github.com/sluicehq/sluice/configsvc/httpapi"
	"github.com/sluicehq/sluice/configsvc/zkstore/zktest"
	"github.com/sluicehq/sluice/sdk"
)

// env is one transport under test: a store to publish with, and how an SDK
// config reaches that store.
type env struct {
	name string
	pub  configsvc.Store
	// transport sets the transport fields of an SDK config.
	transport func(cfg *sdk.Config)
	zk        *zktest.Server
}

// testLogger discards logs unless -v.
func testLogger(t *testing.T) *slog.Logger {
	t.Helper()
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// mustBolt opens a bbolt store in a temp dir, used in-process through
// Config.Store.
func mustBolt(t *testing.T) *env {
	t.Helper()
	st, err := boltstore.Open(filepath.Join(t.TempDir(), "sluice.db"), boltstore.Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &env{name: "store", pub: st, transport: func(cfg *sdk.Config) { cfg.Store = st }}
}

// startAPIServer runs an admin server on st; the test's cleanup stops it.
func startAPIServer(t *testing.T, st configsvc.Store) (*httpapi.Server, *httptest.Server) {
	t.Helper()
	srv, err := httpapi.New(httpapi.Config{Store: st, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(func() { srv.Close(); ts.Close() })
	return srv, ts
}

// config returns an SDK config for service svc on e's transport.
func (e *env) config(t *testing.T, svc, id string) sdk.Config {
	cfg := sdk.Config{
		Service:  svc,
		Instance: sdk.Instance{ID: id, Addr: "127.0.0.1:9001", Labels: map[string]string{"zone": "a"}},
		Logger:   testLogger(t).With("client", id),
		RetryMin: 20 * time.Millisecond, RetryMax: 300 * time.Millisecond,
	}
	if id == "" {
		cfg.NoRegister = true
	}
	e.transport(&cfg)
	return cfg
}

func mustOpen(t *testing.T, cfg sdk.Config) *sdk.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := sdk.Open(ctx, cfg)
	if err != nil {
		t.Fatalf("sdk.Open: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func mustCreate(t *testing.T, st configsvc.Store, ref configsvc.Ref) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := st.Create(ctx, ref); err != nil {
		t.Fatalf("create %s: %v", ref, err)
	}
}

// mustPublish publishes files (an empty content deletes) on top of the head
// and returns the new revision number.
func mustPublish(t *testing.T, st configsvc.Store, ref configsvc.Ref, files map[string]string) int64 {
	t.Helper()
	n, err := publish(st, ref, files)
	if err != nil {
		t.Fatalf("publish %s: %v", ref, err)
	}
	return n
}

func publish(st configsvc.Store, ref configsvc.Ref, files map[string]string) (int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	head, err := st.Head(ctx, ref)
	if err != nil {
		return 0, err
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	cs := configsvc.Changeset{Base: head.Revision, Author: "test", Message: "test publish"}
	for _, n := range names {
		if files[n] == "" {
			cs.Changes = append(cs.Changes, configsvc.Change{File: n, Delete: true})
		} else {
			cs.Changes = append(cs.Changes, configsvc.Change{File: n, Content: []byte(files[n])})
		}
	}
	rev, err := st.Publish(ctx, ref, cs)
	return rev.Number, err
}

func mustLink(t *testing.T, st configsvc.Store, svc, group string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := st.Link(ctx, svc, group); err != nil {
		t.Fatalf("link %s → %s: %v", svc, group, err)
	}
}

// instance returns the registered instance id of svc, or false.
func instance(st configsvc.Store, svc, id string) (configsvc.Instance, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	list, err := st.Instances(ctx, svc)
	if err != nil {
		return configsvc.Instance{}, false
	}
	for _, in := range list {
		if in.ID == id {
			return in, true
		}
	}
	return configsvc.Instance{}, false
}

// changeLog collects OnChange deliveries.
type changeLog struct {
	mu      sync.Mutex
	changes []sdk.Change
}

func (l *changeLog) add(ch sdk.Change) {
	l.mu.Lock()
	l.changes = append(l.changes, ch)
	l.mu.Unlock()
}

func (l *changeLog) revisions() []int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]int64, len(l.changes))
	for i, c := range l.changes {
		out[i] = c.Revision
	}
	return out
}

func (l *changeLog) last() (sdk.Change, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.changes) == 0 {
		return sdk.Change{}, false
	}
	return l.changes[len(l.changes)-1], true
}

// outage returns how long the outage test keeps ZooKeeper down: env
// SLUICE_OUTAGE (e.g. "30s", the figure), default 5s.
func outage(t *testing.T) time.Duration {
	t.Helper()
	s := os.Getenv("SLUICE_OUTAGE")
	if s == "" {
		return 5 * time.Second
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("SLUICE_OUTAGE=%q: %v", s, err)
	}
	return d
}

func mustBoltB(b *testing.B) configsvc.Store {
	b.Helper()
	st, err := boltstore.Open(filepath.Join(b.TempDir(), "sluice.db"), boltstore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st
}
