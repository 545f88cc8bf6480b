package sdk_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/testkit"
	"github.com/sluicehq/sluice/sdk"
)

// DBConfig is the typed config most tests bind. Its Validate refuses ports
// outside 1-65535.
type DBConfig struct {
	Host string `json:"host" yaml:"host" toml:"host" properties:"host"`
	Port int    `json:"port" yaml:"port" toml:"port" properties:"port"`
}

func (c *DBConfig) Validate() error {
	if c.Port < 1 || c.Port > 65535 {
		return fmt.Errorf("port %d outside 1-65535", c.Port)
	}
	return nil
}

func TestPublishReachesCallback(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			e := tr.mk(t)
			svc := configsvc.Service("orders")
			mustCreate(t, e.pub, svc)
			mustPublish(t, e.pub, svc, map[string]string{"features.json": `{"beta":false}`})
			c := mustOpen(t, e.config(t, "orders", "orders-1"))
			if got, ok := c.File("features.json"); !ok || string(got) != `{"beta":false}` {
				t.Fatalf("File at open = %q, %v", got, ok)
			}
			var log changeLog
			stop := c.OnChange("features.json", log.add)
			defer stop()
			r2 := mustPublish(t, e.pub, svc, map[string]string{"features.json": `{"beta":true}`})
			testkit.EventuallyTrue(t, 5*time.Second, "callback for revision 2", func() bool { return len(log.revisions()) == 1 })
			ch, _ := log.last()
			if ch.File != "features.json" || string(ch.Old) != `{"beta":false}` || string(ch.New) != `{"beta":true}` || ch.Revision != r2 || ch.Deleted {
				t.Fatalf("change = %+v (old %q new %q), want revision %d beta false→true", ch, ch.Old, ch.New, r2)
			}
			if c.Revision() != r2 {
				t.Fatalf("Revision() = %d, want %d", c.Revision(), r2)
			}
			// A deletion reaches the callback too, and File no longer has it.
			r3 := mustPublish(t, e.pub, svc, map[string]string{"features.json": ""})
			testkit.EventuallyTrue(t, 5*time.Second, "callback for the deletion", func() bool { return len(log.revisions()) == 2 })
			if ch, _ := log.last(); !ch.Deleted || ch.New != nil || ch.Revision != r3 {
				t.Fatalf("deletion change = %+v", ch)
			}
			if _, ok := c.File("features.json"); ok {
				t.Fatal("deleted file still served")
			}
			if c.FromCache() {
				t.Fatal("FromCache() true with a reachable store")
			}
		})
	}
}

func TestBindFormats(t *testing.T) {
	files := []struct {
		file      string
		v1, v2    string
		want1, w2 DBConfig
	}{
		{"db.json", `{"host":"a","port":1}`, `{"host":"b","port":2}`, DBConfig{"a", 1}, DBConfig{"b", 2}},
		{"db.yaml", "host: a\nport: 1\n", "host: b\nport: 2\n", DBConfig{"a", 1}, DBConfig{"b", 2}},
		{"db.toml", "host = \"a\"\nport = 1\n", "host = \"b\"\nport = 2\n", DBConfig{"a", 1}, DBConfig{"b", 2}},
		{"db.properties", "host=a\nport=1\n", "host=b\nport=2\n", DBConfig{"a", 1}, DBConfig{"b", 2}},
	}
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			e := tr.mk(t)
			svc := configsvc.Service("formats")
			mustCreate(t, e.pub, svc)
			v1 := map[string]string{}
			for _, f := range files {
				v1[f.file] = f.v1
			}
			mustPublish(t, e.pub, svc, v1)
			c := mustOpen(t, e.config(t, "formats", ""))
			for _, f := range files {
				t.Run(f.file, func(t *testing.T) {
					b := sdk.Bind[DBConfig](c, f.file)
					if err := b.Err(); err != nil {
						t.Fatalf("Err() = %v", err)
					}
					if got := b.Load(); got != f.want1 {
						t.Fatalf("Load() = %+v, want %+v", got, f.want1)
					}
					mustPublish(t, e.pub, svc, map[string]string{f.file: f.v2})
					testkit.EventuallyTrue(t, 5*time.Second, "new value", func() bool { return b.Load() == f.w2 })
					if err := b.Err(); err != nil {
						t.Fatalf("Err() after update = %v", err)
					}
				})
			}
		})
	}
}

func TestBadPublishKeepsOldValue(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			e := tr.mk(t)
			svc := configsvc.Service("orders")
			mustCreate(t, e.pub, svc)
			mustPublish(t, e.pub, svc, map[string]string{"db.yaml": "host: a\nport: 5432\n", "app.txt": "v1"})
			c := mustOpen(t, e.config(t, "orders", "orders-1"))
			db := sdk.Bind[DBConfig](c, "db.yaml")
			var log changeLog
			c.OnChange("db.yaml", log.add)
			good := DBConfig{"a", 5432}
			testkit.EventuallyTrue(t, 5*time.Second, "instance registered as applied", func() bool {
				in, ok := instance(e.pub, "orders", "orders-1")
				return ok && in.Status == configsvc.StatusApplied && in.Revision == 1
			})

			bad := []struct {
				name, content, why string
			}{
				{"fails Validate", "host: a\nport: 0\n", "outside 1-65535"},
				{"does not decode", "host: a\nport: not-a-number\n", "db.yaml"},
			}
			for _, bc := range bad {
				t.Run(bc.name, func(t *testing.T) {
					rev := mustPublish(t, e.pub, svc, map[string]string{"db.yaml": bc.content, "app.txt": "at " + bc.name})
					testkit.EventuallyTrue(t, 5*time.Second, "revision applied", func() bool { return c.Revision() == rev })
					if got := db.Load(); got != good {
						t.Fatalf("Load() = %+v after a bad publish, want the old %+v", got, good)
					}
					if err := db.Err(); err == nil || !strings.Contains(err.Error(), bc.why) {
						t.Fatalf("Err() = %v, want it to mention %q", err, bc.why)
					}
					if got, _ := c.File("db.yaml"); string(got) != "host: a\nport: 5432\n" {
						t.Fatalf("File(db.yaml) = %q, want the last good content", got)
					}
					if got, _ := c.File("app.txt"); string(got) != "at "+bc.name {
						t.Fatalf("File(app.txt) = %q: the good file of the same revision was not applied", got)
					}
					testkit.EventuallyTrue(t, 5*time.Second, "instance shows rejected", func() bool {
						in, ok := instance(e.pub, "orders", "orders-1")
						return ok && in.Status == configsvc.StatusRejected && in.Rejected == rev && strings.Contains(in.Error, bc.why)
					})
				})
			}
			if n := len(log.revisions()); n != 0 {
				t.Fatalf("OnChange ran %d times for rejected content", n)
			}
			fixed := mustPublish(t, e.pub, svc, map[string]string{"db.yaml": "host: b\nport: 6432\n"})
			testkit.EventuallyTrue(t, 5*time.Second, "fixed value", func() bool { return db.Load() == DBConfig{"b", 6432} })
			if err := db.Err(); err != nil {
				t.Fatalf("Err() after a good publish = %v", err)
			}
			testkit.EventuallyTrue(t, 5*time.Second, "instance back to applied", func() bool {
				in, ok := instance(e.pub, "orders", "orders-1")
				return ok && in.Status == configsvc.StatusApplied && in.Revision == fixed && in.Error == ""
			})
			testkit.EventuallyTrue(t, 5*time.Second, "callback for the good revision", func() bool { return slices.Equal(log.revisions(), []int64{fixed}) })
			if ch, _ := log.last(); string(ch.Old) != "host: a\nport: 5432\n" {
				t.Fatalf("callback Old = %q, want the last good content", ch.Old)
			}
			// Close removes the registration.
			c.Close()
			testkit.EventuallyTrue(t, 5*time.Second, "instance gone after Close", func() bool {
				_, ok := instance(e.pub, "orders", "orders-1")
				return !ok
			})
		})
	}
}

func TestSharedGroupReachesLinkedService(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			e := tr.mk(t)
			svc, grp, grp2 := configsvc.Service("orders"), configsvc.Group("redis-common"), configsvc.Group("kafka-common")
			mustCreate(t, e.pub, svc)
			mustCreate(t, e.pub, grp)
			mustCreate(t, e.pub, grp2)
			mustPublish(t, e.pub, svc, map[string]string{"app.txt": "x"})
			mustPublish(t, e.pub, grp, map[string]string{"redis.yaml": "host: r1\nport: 6379\n"})
			mustPublish(t, e.pub, grp2, map[string]string{"kafka.json": `{"host":"k1","port":9092}`})
			mustLink(t, e.pub, "orders", "redis-common")

			c := mustOpen(t, e.config(t, "orders", ""))
			redis := sdk.Bind[DBConfig](c, "redis-common/redis.yaml")
			if got := redis.Load(); got != (DBConfig{"r1", 6379}) || redis.Err() != nil {
				t.Fatalf("group binding at open = %+v, %v", got, redis.Err())
			}
			var log changeLog
			c.OnChange("redis-common/redis.yaml", log.add)
			g2 := mustPublish(t, e.pub, grp, map[string]string{"redis.yaml": "host: r2\nport: 6379\n"})
			testkit.EventuallyTrue(t, 5*time.Second, "group change reaches the service", func() bool { return redis.Load().Host == "r2" })
			testkit.EventuallyTrue(t, 5*time.Second, "group change callback", func() bool { return len(log.revisions()) == 1 })
			if ch, _ := log.last(); ch.Revision != g2 || ch.File != "redis-common/redis.yaml" {
				t.Fatalf("change = %+v, want group revision %d", ch, g2)
			}
			if r, ok := c.GroupRevision("redis-common"); !ok || r != g2 {
				t.Fatalf("GroupRevision = %d, %v; want %d", r, ok, g2)
			}

			// Linking another group at run time brings its files in.
			mustLink(t, e.pub, "orders", "kafka-common")
			testkit.EventuallyTrue(t, 5*time.Second, "newly linked group's file", func() bool {
				_, ok := c.File("kafka-common/kafka.json")
				return ok
			})
			if got := c.Links(); !slices.Equal(got, []string{"kafka-common", "redis-common"}) {
				t.Fatalf("Links() = %v", got)
			}
		})
	}
}

// TestConcurrentLoad runs 1,000 readers against a binding while revisions
// change it; each value read must be one that was published, whole.
func TestConcurrentLoad(t *testing.T) {
	type Pair struct {
		A, B int
		Tags []string
	}
	e := mustBolt(t)
	svc := configsvc.Service("orders")
	mustCreate(t, e.pub, svc)
	mustPublish(t, e.pub, svc, map[string]string{"pair.json": `{"A":0,"B":0,"Tags":["0"]}`})
	c := mustOpen(t, e.config(t, "orders", ""))
	p := sdk.Bind[Pair](c, "pair.json")

	const readers, revisions = 1000, 50
	var stop atomic.Bool
	var reads atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, readers)
	for range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			last := -1
			for !stop.Load() {
				v := p.Load()
				if v.A != v.B || len(v.Tags) != 1 || v.Tags[0] != strconv.Itoa(v.A) {
					errs <- fmt.Errorf("torn value %+v", v)
					return
				}
				if v.A < last {
					errs <- fmt.Errorf("value went back from %d to %d", last, v.A)
					return
				}
				last = v.A
				reads.Add(1)
				// Yield so that 1,000 readers on two cores leave the
				// publisher and the applier their share.
				time.Sleep(100 * time.Microsecond)
			}
		}()
	}
	for i := 1; i <= revisions; i++ {
		mustPublish(t, e.pub, svc, map[string]string{"pair.json": fmt.Sprintf(`{"A":%d,"B":%d,"Tags":["%d"]}`, i, i, i)})
	}
	testkit.EventuallyTrue(t, 10*time.Second, "last revision applied", func() bool { return p.Load().A == revisions })
	stop.Store(true)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("%d reads by %d readers over %d revisions", reads.Load(), readers, revisions)
}

func TestLoadDoesNotAllocate(t *testing.T) {
	e := mustBolt(t)
	svc := configsvc.Service("orders")
	mustCreate(t, e.pub, svc)
	mustPublish(t, e.pub, svc, map[string]string{"db.yaml": "host: a\nport: 1\n"})
	c := mustOpen(t, e.config(t, "orders", ""))
	db := sdk.Bind[DBConfig](c, "db.yaml")
	var sink DBConfig
	if n := testing.AllocsPerRun(1000, func() { sink = db.Load() }); n != 0 {
		t.Fatalf("Load allocates %v times per call", n)
	}
	if sink.Port != 1 {
		t.Fatalf("Load() = %+v", sink)
	}
}

func BenchmarkLoad(b *testing.B) {
	st := mustBoltB(b)
	svc := configsvc.Service("orders")
	ctx := context.Background()
	if err := st.Create(ctx, svc); err != nil {
		b.Fatal(err)
	}
	if _, err := st.Publish(ctx, svc, configsvc.Changeset{Changes: []configsvc.Change{{File: "db.yaml", Content: []byte("host: a\nport: 1\n")}}}); err != nil {
		b.Fatal(err)
	}
	c, err := sdk.Open(ctx, sdk.Config{Service: "orders", Store: st, NoRegister: true, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	db := sdk.Bind[DBConfig](c, "db.yaml")
	b.Run("serial", func(b *testing.B) {
		b.ReportAllocs()
		var v DBConfig
		for b.Loop() {
			v = db.Load()
		}
		if v.Port != 1 {
			b.Fatal(v)
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			var v DBConfig
			for pb.Next() {
				v = db.Load()
			}
			_ = v
		})
	})
}

// TestCallbacksSerializedPerFile checks that one file's callbacks never
// overlap and that a blocked callback holds up neither the watch nor other
// files' callbacks.
func TestCallbacksSerializedPerFile(t *testing.T) {
	e := mustBolt(t)
	svc := configsvc.Service("orders")
	mustCreate(t, e.pub, svc)
	mustPublish(t, e.pub, svc, map[string]string{"slow.txt": "0", "fast.txt": "0"})
	c := mustOpen(t, e.config(t, "orders", ""))

	release := make(chan struct{})
	var running, overlaps atomic.Int32
	var slow changeLog
	c.OnChange("slow.txt", func(ch sdk.Change) {
		if running.Add(1) > 1 {
			overlaps.Add(1)
		}
		<-release
		slow.add(ch)
		running.Add(-1)
	})
	var fast changeLog
	c.OnChange("fast.txt", fast.add)

	var want []int64
	for i := 1; i <= 5; i++ {
		want = append(want, mustPublish(t, e.pub, svc, map[string]string{"slow.txt": fmt.Sprint(i), "fast.txt": fmt.Sprint(i)}))
	}
	testkit.EventuallyTrue(t, 5*time.Second, "fast file's callbacks while the slow one blocks", func() bool { return len(fast.revisions()) == 5 })
	if got, _ := c.File("slow.txt"); string(got) != "5" {
		t.Fatalf("the watch is held up by a blocked callback: File(slow.txt) = %q", got)
	}
	close(release)
	testkit.EventuallyTrue(t, 5*time.Second, "slow callbacks done", func() bool { return len(slow.revisions()) == 5 })
	if !slices.Equal(slow.revisions(), want) || !slices.Equal(fast.revisions(), want) {
		t.Fatalf("order: slow %v fast %v, want %v", slow.revisions(), fast.revisions(), want)
	}
	if overlaps.Load() != 0 {
		t.Fatalf("%d overlapping callbacks for one file", overlaps.Load())
	}
	// stop: no further calls.
	var stopped changeLog
	stop := c.OnChange("fast.txt", stopped.add)
	stop()
	r := mustPublish(t, e.pub, svc, map[string]string{"fast.txt": "after stop"})
	testkit.EventuallyTrue(t, 5*time.Second, "revision applied", func() bool { return c.Revision() == r })
	testkit.EventuallyTrue(t, 5*time.Second, "other subscriber still called", func() bool { return len(fast.revisions()) == 6 })
	if n := len(stopped.revisions()); n != 0 {
		t.Fatalf("stopped callback ran %d times", n)
	}
}

func TestOpenFailsNamingBothCauses(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	defer goleak.VerifyNone(t, ignore)
	cfg := sdk.Config{
		Service: "orders", ZooKeeper: []string{"127.0.0.1:1"}, CacheDir: t.TempDir(),
		OpenTimeout: 500 * time.Millisecond, NoRegister: true, Logger: testLogger(t),
	}
	c, err := sdk.Open(context.Background(), cfg)
	if err == nil {
		c.Close()
		t.Fatal("Open succeeded with no store and no cache")
	}
	if !errors.Is(err, configsvc.ErrUnavailable) || !errors.Is(err, configsvc.ErrNotFound) ||
		!strings.Contains(err.Error(), "store") || !strings.Contains(err.Error(), "cache") {
		t.Fatalf("error %q does not name both causes", err)
	}
}

func TestOpenServiceNotFound(t *testing.T) {
	e := mustBolt(t)
	_, err := sdk.Open(context.Background(), e.config(t, "nope", ""))
	if !errors.Is(err, configsvc.ErrNotFound) {
		t.Fatalf("Open of a missing service: %v, want ErrNotFound", err)
	}
}

func TestConfigValidation(t *testing.T) {
	tests := []struct {
		name string
		cfg  sdk.Config
	}{
		{"no service", sdk.Config{Server: "http://127.0.0.1:1"}},
		{"bad service", sdk.Config{Service: "Orders", Server: "http://127.0.0.1:1"}},
		{"no transport", sdk.Config{Service: "orders"}},
		{"two transports", sdk.Config{Service: "orders", Server: "http://127.0.0.1:1", ZooKeeper: []string{"127.0.0.1:1"}}},
		{"bad server URL", sdk.Config{Service: "orders", Server: "127.0.0.1:1"}},
		{"bad instance id", sdk.Config{Service: "orders", Server: "http://127.0.0.1:1", Instance: sdk.Instance{ID: "a/b"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := sdk.Open(context.Background(), tt.cfg)
			if !errors.Is(err, configsvc.ErrInvalid) {
				t.Fatalf("Open: %v, want ErrInvalid", err)
			}
		})
	}
}

// TestCloseStopsEveryGoroutine opens a client with bindings, callbacks and a
// registration on each transport, closes it and checks with goleak that
// nothing it started is left.
func TestCloseStopsEveryGoroutine(t *testing.T) {
	for _, tr := range transports {
		t.Run(tr.name, func(t *testing.T) {
			e := tr.mk(t)
			svc := configsvc.Service("orders")
			mustCreate(t, e.pub, svc)
			mustCreate(t, e.pub, configsvc.Group("g"))
			mustPublish(t, e.pub, configsvc.Group("g"), map[string]string{"x.txt": "1"})
			mustLink(t, e.pub, "orders", "g")
			mustPublish(t, e.pub, svc, map[string]string{"db.yaml": "host: a\nport: 1\n"})
			ignore := goleak.IgnoreCurrent()
			cfg := e.config(t, "orders", "orders-1")
			cfg.CacheDir = filepath.Join(t.TempDir(), "cache")
			c, err := sdk.Open(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			sdk.Bind[DBConfig](c, "db.yaml")
			var log changeLog
			c.OnChange("db.yaml", log.add)
			c.OnChange("g/x.txt", log.add)
			mustPublish(t, e.pub, svc, map[string]string{"db.yaml": "host: a\nport: 2\n"})
			testkit.EventuallyTrue(t, 5*time.Second, "callback", func() bool { return len(log.revisions()) == 1 })
			testkit.EventuallyTrue(t, 5*time.Second, "registered", func() bool { _, ok := instance(e.pub, "orders", "orders-1"); return ok })
			if err := c.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			if err := c.Close(); err != nil {
				t.Fatalf("second Close: %v", err)
			}
			goleak.VerifyNone(t, ignore)
		})
	}
}
