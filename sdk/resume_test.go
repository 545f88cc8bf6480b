package sdk_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/boltstore"
	"github.com/sluicehq/sluice/configsvc/httpapi"
	"github.com/sluicehq/sluice/configsvc/testkit"
	"github.com/sluicehq/sluice/configsvc/zkstore/zktest"
	"github.com/sluicehq/sluice/sdk"
)

// countingMetrics records the SDK's metric calls.
type countingMetrics struct {
	mu            sync.Mutex
	applied       map[string]int
	rejected      map[string]int
	reconnects    map[string]int
	rewrites      map[string]int
	cacheFailures map[string]int // by error message
}

func newCountingMetrics() *countingMetrics {
	return &countingMetrics{applied: map[string]int{}, rejected: map[string]int{}, reconnects: map[string]int{},
		rewrites: map[string]int{}, cacheFailures: map[string]int{}}
}

func (m *countingMetrics) HistoryRewritten(ref string, _, _ int64) {
	m.mu.Lock()
	m.rewrites[ref]++
	m.mu.Unlock()
}

func (m *countingMetrics) CacheWriteFailed(err error) {
	m.mu.Lock()
	m.cacheFailures[err.Error()]++
	m.mu.Unlock()
}

func (m *countingMetrics) RevisionApplied(ref string, _ int64) {
	m.mu.Lock()
	m.applied[ref]++
	m.mu.Unlock()
}

func (m *countingMetrics) RevisionRejected(file string, _ int64) {
	m.mu.Lock()
	m.rejected[file]++
	m.mu.Unlock()
}

func (m *countingMetrics) Reconnect(transport string) {
	m.mu.Lock()
	m.reconnects[transport]++
	m.mu.Unlock()
}

func (m *countingMetrics) get(kind map[string]int, key string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return kind[key]
}

// cuttable is a transport whose client connections go through a proxy the
// test can cut, on a store with the given retention.
type cuttable struct {
	*env
	proxy *zktest.Proxy
}

func cuttableTransports(retention int) []struct {
	name string
	mk   func(t *testing.T) cuttable
} {
	return []struct {
		name string
		mk   func(t *testing.T) cuttable
	}{
		{"zookeeper", func(t *testing.T) cuttable {
			srv := zktest.Start(t)
			proxy := zktest.StartProxy(t, srv.Addr())
			e := mustZKOn(t, srv, []string{proxy.Addr()})
			if retention > 0 {
				e.pub = mustZKStoreRetention(t, srv.Servers(), "/sluice-sdk-test", retention)
			}
			return cuttable{e, proxy}
		}},
		{"http", func(t *testing.T) cuttable {
			st, err := boltstore.Open(filepath.Join(t.TempDir(), "sluice.db"), boltstore.Options{Retention: retention, Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			srv, err := httpapi.New(httpapi.Config{Store: st, Logger: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			token, err := srv.Bootstrap(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			ts := httptest.NewServer(srv)
			proxy := zktest.StartTCPProxy(t, ts.Listener.Addr().String())
			t.Cleanup(func() {
				srv.Close()
				ts.Close()
			})
			e := &env{name: "http", pub: st, transport: func(cfg *sdk.Config) { cfg.Server, cfg.Token = "http://"+proxy.Addr(), token }}
			return cuttable{e, proxy}
		}},
	}
}

// TestResumeAfterDisconnect drops the client's connection briefly (shorter
// than a ZooKeeper session) while revisions are published: the watch
// resumes from the last revision it delivered and none is skipped.
func TestResumeAfterDisconnect(t *testing.T) {
	for _, tr := range cuttableTransports(0) {
		t.Run(tr.name, func(t *testing.T) {
			e := tr.mk(t)
			svc := configsvc.Service("orders")
			mustCreate(t, e.pub, svc)
			mustPublish(t, e.pub, svc, map[string]string{"n.txt": "1"})
			m := newCountingMetrics()
			cfg := e.config(t, "orders", "")
			cfg.Metrics = m
			c := mustOpen(t, cfg)
			var log changeLog
			c.OnChange("n.txt", log.add)

			e.proxy.Partition()
			var want []int64
			for i := 2; i <= 5; i++ {
				want = append(want, mustPublish(t, e.pub, svc, map[string]string{"n.txt": fmt.Sprint(i)}))
			}
			time.Sleep(300 * time.Millisecond)
			e.proxy.Heal()
			for i := 6; i <= 7; i++ {
				want = append(want, mustPublish(t, e.pub, svc, map[string]string{"n.txt": fmt.Sprint(i)}))
			}
			testkit.EventuallyTrue(t, 10*time.Second, "every revision delivered", func() bool { return len(log.revisions()) >= len(want) })
			if got := log.revisions(); !slices.Equal(got, want) {
				t.Fatalf("callbacks for %v, want %v", got, want)
			}
			if tr.name == "http" {
				// The SSE transport sees every dropped stream itself.
				testkit.EventuallyTrue(t, 5*time.Second, "reconnect counted", func() bool { return m.get(m.reconnects, tr.name) > 0 })
			} else if m.get(m.reconnects, tr.name) == 0 {
				// zkstore reports a short disconnection only when its
				// watcher notices it before the session reconnects.
				t.Logf("zkstore reported no ErrUnavailable event for a short disconnection")
			}
			if n := m.get(m.applied, "service/orders"); n != len(want) {
				t.Fatalf("RevisionApplied called %d times, want %d", n, len(want))
			}
		})
	}
}

// TestCompactedWhileAway keeps the client away while more revisions are
// published than the store retains: the watch reports ErrCompacted and the
// client reloads the snapshot and converges on the head.
func TestCompactedWhileAway(t *testing.T) {
	for _, tr := range cuttableTransports(3) {
		t.Run(tr.name, func(t *testing.T) {
			e := tr.mk(t)
			svc := configsvc.Service("orders")
			mustCreate(t, e.pub, svc)
			mustPublish(t, e.pub, svc, map[string]string{"db.yaml": "host: a\nport: 1\n", "gone.txt": "x"})
			cfg := e.config(t, "orders", "")
			cfg.ZKSessionTimeout = 5 * time.Second
			c := mustOpen(t, cfg)
			db := sdk.Bind[DBConfig](c, "db.yaml")
			var gone changeLog
			c.OnChange("gone.txt", gone.add)

			e.proxy.Partition()
			var last int64
			for i := 2; i <= 10; i++ {
				files := map[string]string{"db.yaml": fmt.Sprintf("host: a\nport: %d\n", i)}
				if i == 4 {
					files["gone.txt"] = ""
				}
				last = mustPublish(t, e.pub, svc, files)
			}
			e.proxy.Heal()
			testkit.EventuallyTrue(t, 15*time.Second, "converged on the head", func() bool { return c.Revision() == last && db.Load().Port == 10 })
			if _, ok := c.File("gone.txt"); ok {
				t.Fatal("a file deleted while away is still served")
			}
			testkit.EventuallyTrue(t, 5*time.Second, "deletion callback", func() bool { return len(gone.revisions()) == 1 })
			// Revision 4 deleted the file; a change carrying the head's
			// revision shows it came from the reloaded snapshot.
			if ch, _ := gone.last(); !ch.Deleted || ch.Revision != last {
				t.Fatalf("change %+v, want a deletion at the snapshot's revision %d", ch, last)
			}
		})
	}
}
