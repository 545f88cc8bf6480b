package sdk_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/boltstore"
	"github.com/sluicehq/sluice/configsvc/testkit"
	"github.com/sluicehq/sluice/sdk"
)

// laggingStore is a configsvc.Store that can answer like a server whose
// view of the store is behind (a ZooKeeper follower that has not applied
// the newest commits, or an admin server on one), be unreachable, have its
// watches interrupted as a reconnect would, and be switched to another
// store (a restored copy). Register and the other methods go to the store
// it was made with.
type laggingStore struct {
	configsvc.Store

	mu     sync.Mutex
	cur    configsvc.Store // reads and watches go here
	at     int64           // > 0: reads answer as of this revision; watches from above it wait
	down   bool            // reads fail with ErrUnavailable
	caught chan struct{}   // closed when at is cleared
	cut    chan struct{}   // closed to interrupt the running watches
	cutErr error           // what the interrupted watches report
	active int             // watches running
}

func newLaggingStore(st configsvc.Store) *laggingStore {
	l := &laggingStore{Store: st, cur: st, caught: make(chan struct{}), cut: make(chan struct{})}
	close(l.caught)
	return l
}

// lag makes reads answer as of revision at (0: catch up).
func (l *laggingStore) lag(at int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if at > 0 && l.at == 0 {
		l.caught = make(chan struct{})
	}
	if at == 0 && l.at > 0 {
		close(l.caught)
	}
	l.at = at
}

func (l *laggingStore) setDown(down bool) {
	l.mu.Lock()
	l.down = down
	l.mu.Unlock()
}

// use sends reads and watches to st from now on.
func (l *laggingStore) use(st configsvc.Store) {
	l.mu.Lock()
	l.cur = st
	l.mu.Unlock()
}

// interrupt waits until a watch runs, then ends every running watch with
// an event carrying err.
func (l *laggingStore) interrupt(t *testing.T, err error) {
	t.Helper()
	testkit.EventuallyTrue(t, 5*time.Second, "a watch running", func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.active > 0
	})
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cutErr = err
	close(l.cut)
	l.cut = make(chan struct{})
}

func (l *laggingStore) state() (cur configsvc.Store, at int64, down bool, caught, cut chan struct{}) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.cur, l.at, l.down, l.caught, l.cut
}

var errDown = fmt.Errorf("test: store unreachable: %w", configsvc.ErrUnavailable)

func (l *laggingStore) Head(ctx context.Context, ref configsvc.Ref) (configsvc.Head, error) {
	cur, at, down, _, _ := l.state()
	if down {
		return configsvc.Head{}, errDown
	}
	h, err := cur.Head(ctx, ref)
	if err != nil || at == 0 || at >= h.Revision {
		return h, err
	}
	snap, err := cur.Snapshot(ctx, ref, at)
	if err != nil {
		return configsvc.Head{}, err
	}
	h.Revision, h.PublishID, h.Files = at, snap.PublishID, map[string]configsvc.FileMeta{}
	for name, content := range snap.Files {
		h.Files[name] = configsvc.FileMeta{Name: name, Revision: at, SHA256: configsvc.Checksum(content), Size: int64(len(content)), Format: configsvc.FormatOf(name)}
	}
	return h, nil
}

func (l *laggingStore) Snapshot(ctx context.Context, ref configsvc.Ref, rev int64) (configsvc.Snapshot, error) {
	cur, at, down, _, _ := l.state()
	if down {
		return configsvc.Snapshot{}, errDown
	}
	if at > 0 && (rev == 0 || rev > at) {
		rev = at
	}
	return cur.Snapshot(ctx, ref, rev)
}

func (l *laggingStore) Watch(ctx context.Context, ref configsvc.Ref, from int64, opts ...configsvc.WatchOption) <-chan configsvc.Event {
	l.mu.Lock()
	cur, at, caught, cut := l.cur, l.at, l.caught, l.cut
	l.active++
	l.mu.Unlock()
	out := make(chan configsvc.Event)
	go func() {
		defer close(out)
		defer func() {
			l.mu.Lock()
			l.active--
			l.mu.Unlock()
		}()
		send := func(ev configsvc.Event) bool {
			select {
			case out <- ev:
				return true
			case <-ctx.Done():
				return false
			}
		}
		interrupted := func() {
			l.mu.Lock()
			err := l.cutErr
			l.mu.Unlock()
			send(configsvc.Event{Err: err})
		}
		if at > 0 && from > at {
			// A server behind the revision asked for waits until it has it.
			select {
			case <-caught:
			case <-cut:
				interrupted()
				return
			case <-ctx.Done():
				return
			}
		}
		wctx, cancel := context.WithCancel(ctx)
		in := cur.Watch(wctx, ref, from, opts...)
		defer func() {
			cancel()
			for range in {
			}
		}()
		for {
			select {
			case ev, ok := <-in:
				if !ok || !send(ev) {
					return
				}
			case <-cut:
				interrupted()
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

// holdsFor fails the test if cond turns false within d.
func holdsFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if !cond() {
			t.Fatalf("%s: stopped holding within %v", what, d)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// fileIs reports whether c serves content as name.
func fileIs(c *sdk.Client, name, content string) bool {
	b, ok := c.File(name)
	return ok && string(b) == content
}

// publishN publishes n.txt = "1" … "n" to a new service orders.
func publishN(t *testing.T, st configsvc.Store, n int) {
	t.Helper()
	mustCreate(t, st, configsvc.Service("orders"))
	for i := 1; i <= n; i++ {
		mustPublish(t, st, configsvc.Service("orders"), map[string]string{"n.txt": fmt.Sprint(i)})
	}
}

// TestFaultFailOverToLaggingServerNeverGoesBack: the SDK follows two admin
// servers; the one it uses dies and the other one's store is behind. The
// SDK must keep the revision it applied (the server answers its resumed
// watch 503 behind, and the SDK retries) and move on once that server
// catches up. Before, the server answered 400, the SDK reloaded that
// server's snapshot and applied the older revision with callbacks.
func TestFaultFailOverToLaggingServerNeverGoesBack(t *testing.T) {
	e := mustBolt(t)
	ctx := context.Background()
	lag := newLaggingStore(e.pub)
	srvA, tsA := startAPIServer(t, e.pub)
	_, tsB := startAPIServer(t, lag)
	token, err := srvA.Bootstrap(ctx)
	if err != nil || token == "" {
		t.Fatalf("bootstrap: %q, %v", token, err)
	}
	publishN(t, e.pub, 5)
	lag.lag(2)

	cfg := e.config(t, "orders", "")
	cfg.Store = nil
	cfg.Servers, cfg.Token = []string{tsA.URL, tsB.URL}, token
	c := mustOpen(t, cfg)
	var log changeLog
	c.OnChange("n.txt", log.add)
	mustPublish(t, e.pub, configsvc.Service("orders"), map[string]string{"n.txt": "6"})
	testkit.EventuallyTrue(t, 5*time.Second, "revision 6 via server A", func() bool { return c.Revision() == 6 })

	srvA.Close()
	tsA.CloseClientConnections()
	tsA.Close()
	holdsFor(t, 1500*time.Millisecond, "revision 6 kept while server B is behind", func() bool {
		return c.Revision() == 6 && fileIs(c, "n.txt", "6")
	})
	lag.lag(0)
	mustPublish(t, e.pub, configsvc.Service("orders"), map[string]string{"n.txt": "7"})
	testkit.EventuallyTrue(t, 10*time.Second, "revision 7 via server B once it caught up, its callback run", func() bool {
		return c.Revision() == 7 && len(log.revisions()) > 1
	})
	if got, want := log.revisions(), []int64{6, 7}; !slices.Equal(got, want) {
		t.Fatalf("callbacks saw revisions %v, want %v", got, want)
	}
}

// TestFaultCompactionReloadFromLaggingStore: the SDK's watch reports its
// revisions compacted and the snapshot it reloads comes from a store view
// behind the revision applied (a new ZooKeeper session on a lagging
// follower). The SDK keeps what it applied and waits for the store.
func TestFaultCompactionReloadFromLaggingStore(t *testing.T) {
	e := mustBolt(t)
	lag := newLaggingStore(e.pub)
	publishN(t, e.pub, 5)
	cfg := e.config(t, "orders", "")
	cfg.Store = lag
	c := mustOpen(t, cfg)
	var log changeLog
	c.OnChange("n.txt", log.add)

	lag.lag(2)
	lag.interrupt(t, fmt.Errorf("test: revisions pruned: %w", configsvc.ErrCompacted))
	holdsFor(t, time.Second, "revision 5 kept after a reload from a store behind it", func() bool {
		return c.Revision() == 5 && fileIs(c, "n.txt", "5")
	})
	lag.lag(0)
	mustPublish(t, e.pub, configsvc.Service("orders"), map[string]string{"n.txt": "6"})
	testkit.EventuallyTrue(t, 5*time.Second, "revision 6 once the store caught up, its callback run", func() bool {
		return c.Revision() == 6 && len(log.revisions()) > 0
	})
	if got, want := log.revisions(), []int64{6}; !slices.Equal(got, want) {
		t.Fatalf("callbacks saw revisions %v, want %v", got, want)
	}
}

// TestFaultCacheStartThenLaggingStore: a process starts from its cache
// (revision 5) while the store is unreachable; the store comes back behind
// that revision. The SDK keeps the cached state until the store reaches
// it, then follows.
func TestFaultCacheStartThenLaggingStore(t *testing.T) {
	e := mustBolt(t)
	lag := newLaggingStore(e.pub)
	publishN(t, e.pub, 5)
	cfg := e.config(t, "orders", "")
	cfg.Store, cfg.CacheDir, cfg.OpenTimeout = lag, t.TempDir(), 300*time.Millisecond
	first := mustOpen(t, cfg)
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}

	lag.setDown(true)
	c := mustOpen(t, cfg)
	if !c.FromCache() || c.Revision() != 5 {
		t.Fatalf("FromCache %v at revision %d, want the cache's revision 5", c.FromCache(), c.Revision())
	}
	var log changeLog
	c.OnChange("n.txt", log.add)
	lag.lag(3)
	lag.setDown(false)
	holdsFor(t, time.Second, "cached revision 5 kept while the store is at 3", func() bool {
		return c.Revision() == 5 && fileIs(c, "n.txt", "5")
	})
	lag.lag(0)
	mustPublish(t, e.pub, configsvc.Service("orders"), map[string]string{"n.txt": "6"})
	// Callbacks run after the new value is visible: wait for the one of 6.
	testkit.EventuallyTrue(t, 5*time.Second, "revision 6 from the store, its callback run", func() bool {
		return c.Revision() == 6 && !c.FromCache() && len(log.revisions()) > 0
	})
	if got, want := log.revisions(), []int64{6}; !slices.Equal(got, want) {
		t.Fatalf("callbacks saw revisions %v, want %v", got, want)
	}
}

// restoredCopy copies the bbolt file of st (idle) and opens the copy: the
// store as a backup taken now would restore it.
func restoredCopy(t *testing.T, st configsvc.Store) *boltstore.Store {
	t.Helper()
	src := st.(*boltstore.Store).Path()
	dst := filepath.Join(t.TempDir(), "restored.db")
	b, err := os.ReadFile(src)
	if err == nil {
		err = os.WriteFile(dst, b, 0o600)
	}
	if err != nil {
		t.Fatal(err)
	}
	return openBolt(t, dst)
}

func openBolt(t *testing.T, path string) *boltstore.Store {
	t.Helper()
	st, err := boltstore.Open(path, boltstore.Options{Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// restoredRun is an SDK client at revision 5 of service orders whose store
// was just replaced by a backup taken at revision 2 (same generation): the
// connection to the old store was cut and the client's watch is on the
// restored one.
type restoredRun struct {
	e        *env
	restored *boltstore.Store
	c        *sdk.Client
	m        *countingMetrics
	log      changeLog // OnChange of n.txt
}

// newRestored publishes n.txt = 1, 2, takes the backup, publishes 3 to 5,
// opens a client (registered as id unless empty) and switches its store to
// the restored backup.
func newRestored(t *testing.T, id string) *restoredRun {
	t.Helper()
	r := &restoredRun{e: mustBolt(t), m: newCountingMetrics()}
	publishN(t, r.e.pub, 2)
	r.restored = restoredCopy(t, r.e.pub)
	for i := 3; i <= 5; i++ {
		mustPublish(t, r.e.pub, configsvc.Service("orders"), map[string]string{"n.txt": fmt.Sprint(i)})
	}
	sw := newLaggingStore(r.e.pub)
	cfg := r.e.config(t, "orders", id)
	cfg.Store, cfg.Metrics = sw, r.m
	r.c = mustOpen(t, cfg)
	r.c.OnChange("n.txt", r.log.add)
	sw.use(r.restored)
	sw.interrupt(t, fmt.Errorf("test: connection lost: %w", configsvc.ErrUnavailable))
	return r
}

// TestFaultRestoredWithoutBumpPublishIDCatchesIt: the store is replaced by
// a backup taken at revision 2 and its generation is not bumped; revisions
// 3 to 5 are published again with other content. The SDK, at revision 5
// of the old history, keeps it while the restored store is below (the
// same generation: a store that has not caught up, as far as it can
// tell), and once the restored store reaches 5 with another publish id it
// reloads it as a new state, with callbacks, and reports the rewrite.
func TestFaultRestoredWithoutBumpPublishIDCatchesIt(t *testing.T) {
	r := newRestored(t, "")
	c, m, svc := r.c, r.m, configsvc.Service("orders")
	restored, log := r.restored, &r.log
	holdsFor(t, 500*time.Millisecond, "revision 5 kept while the restored store is at 2", func() bool {
		return c.Revision() == 5 && fileIs(c, "n.txt", "5")
	})
	for i := 3; i <= 5; i++ {
		mustPublish(t, restored, svc, map[string]string{"n.txt": fmt.Sprintf("again %d", i)})
	}
	testkit.EventuallyTrue(t, 5*time.Second, "the reissued revision 5 applied", func() bool { return fileIs(c, "n.txt", "again 5") })
	if c.Revision() != 5 || m.get(m.rewrites, "service/orders") != 1 {
		t.Fatalf("revision %d, %d rewrites reported; want 5 and 1", c.Revision(), m.get(m.rewrites, "service/orders"))
	}
	// Callbacks run after the new value is visible: wait for its one.
	testkit.EventuallyTrue(t, 5*time.Second, "the callback of the change from 5 to again 5", func() bool {
		ch, ok := log.last()
		return ok && string(ch.New) == "again 5" && string(ch.Old) == "5"
	})
}

// TestFaultRestoredAndBumpedReloadsLowerRevision: the store is replaced by
// a backup taken at revision 2, then its generation is bumped. The SDK at
// revision 5 takes revision 2 as a new state: callbacks with its content,
// the rewrite reported in metrics and on its instance record.
func TestFaultRestoredAndBumpedReloadsLowerRevision(t *testing.T) {
	r := newRestored(t, "orders-1")
	e, c, m, svc := r.e, r.c, r.m, configsvc.Service("orders")
	restored, log := r.restored, &r.log
	holdsFor(t, 300*time.Millisecond, "revision 5 kept before the bump", func() bool { return c.Revision() == 5 })
	g, err := restored.BumpGeneration(context.Background(), "restored the backup of revision 2")
	if err != nil {
		t.Fatal(err)
	}
	testkit.EventuallyTrue(t, 5*time.Second, "revision 2 of the restored store applied", func() bool {
		return c.Revision() == 2 && fileIs(c, "n.txt", "2")
	})
	// Callbacks run after the new value is visible: wait for its one.
	testkit.EventuallyTrue(t, 5*time.Second, "the callback of n.txt = 2 at revision 2", func() bool {
		ch, ok := log.last()
		return ok && string(ch.New) == "2" && ch.Revision == 2
	})
	if got := m.get(m.rewrites, "service/orders"); got != 1 {
		t.Fatalf("%d rewrites reported, want 1", got)
	}
	// The registration lives in the store the SDK registered with.
	testkit.EventuallyTrue(t, 5*time.Second, "the instance record reports the rewrite", func() bool {
		in, ok := instance(e.pub, "orders", "orders-1")
		return ok && in.Revision == 2 && in.Generation == g.ID && in.Rewritten != nil &&
			in.Rewritten.From == 5 && in.Rewritten.To == 2 && in.Rewritten.Generation == g.ID
	})
	// It follows the new history from there.
	mustPublish(t, restored, svc, map[string]string{"n.txt": "new 3"})
	testkit.EventuallyTrue(t, 5*time.Second, "revision 3 of the new history", func() bool { return c.Revision() == 3 && fileIs(c, "n.txt", "new 3") })
}

// TestServiceDeletedAndCreatedAgain: the service is deleted under a client
// at revision 2, created again and published once. The client keeps its
// configuration while the service is gone and takes the new service's
// revision 1 as a new history (with callbacks and one rewrite reported),
// although it is below the revision it held; taken as one history it would
// keep revision 2 until the new service passed it.
func TestServiceDeletedAndCreatedAgain(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			e := tr.mk(t)
			svc := configsvc.Service("orders")
			mustCreate(t, e.pub, svc)
			mustPublish(t, e.pub, svc, map[string]string{"n.txt": "1"})
			mustPublish(t, e.pub, svc, map[string]string{"n.txt": "2"})
			m := newCountingMetrics()
			cfg := e.config(t, "orders", "")
			cfg.Metrics = m
			c := mustOpen(t, cfg)
			var log changeLog
			defer c.OnChange("n.txt", log.add)()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := e.pub.Delete(ctx, svc); err != nil {
				t.Fatal(err)
			}
			holdsFor(t, 300*time.Millisecond, "revision 2 kept while the service is gone", func() bool {
				return c.Revision() == 2 && fileIs(c, "n.txt", "2")
			})
			mustCreate(t, e.pub, svc)
			mustPublish(t, e.pub, svc, map[string]string{"n.txt": "new 1"})
			testkit.EventuallyTrue(t, 10*time.Second, "the new service's revision 1 applied", func() bool {
				return c.Revision() == 1 && fileIs(c, "n.txt", "new 1")
			})
			// The client may have applied the new service's revision 0 (no
			// file) in between, when it loaded it before the publish.
			testkit.EventuallyTrue(t, 5*time.Second, "the callback of the change to new 1", func() bool {
				ch, ok := log.last()
				return ok && string(ch.New) == "new 1" && (string(ch.Old) == "2" || ch.Old == nil)
			})
			if got := m.get(m.rewrites, "service/orders"); got != 1 {
				t.Fatalf("%d rewrites reported, want 1", got)
			}
		})
	}
}

// lockCache holds bbolt's exclusive lock on the cache file of svc in dir,
// as a process writing it would, until the returned function is called.
func lockCache(t *testing.T, dir, svc string) (release func()) {
	t.Helper()
	db, err := bolt.Open(filepath.Join(dir, svc+".cache.db"), 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() { once.Do(func() { db.Close() }) }
	t.Cleanup(release)
	return release
}

// TestCacheWrittenBeforeTheValueIsVisible: docs/sdk.md promises that a new
// value becomes visible to Load only after it was written to the cache, so
// that a process that crashes right after acting on it restarts from it.
// While another process holds the cache file, the new value stays
// invisible; once the write went through, it is there. Before, Load showed
// the new value first.
func TestCacheWrittenBeforeTheValueIsVisible(t *testing.T) {
	e := mustBolt(t)
	svc := configsvc.Service("orders")
	mustCreate(t, e.pub, svc)
	mustPublish(t, e.pub, svc, map[string]string{"db.yaml": "host: a\nport: 1\n"})
	cfg := e.config(t, "orders", "")
	cfg.CacheDir = t.TempDir()
	c := mustOpen(t, cfg)
	db := sdk.Bind[DBConfig](c, "db.yaml")

	release := lockCache(t, cfg.CacheDir, "orders")
	mustPublish(t, e.pub, svc, map[string]string{"db.yaml": "host: a\nport: 2\n"})
	holdsFor(t, 500*time.Millisecond, "the old value while the cache cannot be written", func() bool { return db.Load().Port == 1 })
	release()
	testkit.EventuallyTrue(t, 5*time.Second, "the new value once written", func() bool { return db.Load().Port == 2 })
	if err := c.Err(); err != nil {
		t.Fatalf("Err() = %v after a write that went through", err)
	}
}

// TestCacheWriteFailureIsReported: a cache that cannot be written (held by
// another process past the lock timeout) does not hold the new state back,
// and the failure is reported through Err and Metrics until a write
// succeeds again.
func TestCacheWriteFailureIsReported(t *testing.T) {
	e := mustBolt(t)
	svc := configsvc.Service("orders")
	mustCreate(t, e.pub, svc)
	mustPublish(t, e.pub, svc, map[string]string{"n.txt": "1"})
	m := newCountingMetrics()
	cfg := e.config(t, "orders", "")
	cfg.CacheDir, cfg.Metrics = t.TempDir(), m
	c := mustOpen(t, cfg)

	release := lockCache(t, cfg.CacheDir, "orders")
	mustPublish(t, e.pub, svc, map[string]string{"n.txt": "2"})
	testkit.EventuallyTrue(t, 10*time.Second, "revision 2 applied although the cache is locked", func() bool { return fileIs(c, "n.txt", "2") })
	if err := c.Err(); err == nil || !strings.Contains(err.Error(), "cache") {
		t.Fatalf("Err() = %v, want the failed cache write", err)
	}
	m.mu.Lock()
	failures := len(m.cacheFailures)
	m.mu.Unlock()
	if failures == 0 {
		t.Fatal("Metrics.CacheWriteFailed was not called")
	}
	release()
	mustPublish(t, e.pub, svc, map[string]string{"n.txt": "3"})
	testkit.EventuallyTrue(t, 5*time.Second, "revision 3 written and the error cleared", func() bool { return fileIs(c, "n.txt", "3") && c.Err() == nil })
}
