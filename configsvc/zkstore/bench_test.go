package zkstore_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/zkstore"
	"github.com/sluicehq/sluice/configsvc/zkstore/zktest"
)

// benchContent is a typical small config file (about 1 KiB of YAML).
var benchContent = func() []byte {
	var sb strings.Builder
	for i := range 37 {
		fmt.Fprintf(&sb, "key%02d: value-0123456789abcdef\n", i)
	}
	return []byte(sb.String())
}()

// BenchmarkStore measures zkstore against one standalone ZooKeeper started
// once for all sub-benchmarks (a JVM per sub-benchmark round would dominate
// the run). RawMulti is the ceiling: the same client doing a bare multi
// (create a 1 KiB node + set a head node) with none of the store's work.
// Run: go test -run '^$' -bench BenchmarkStore -count 5 ./configsvc/zkstore
func BenchmarkStore(b *testing.B) {
	srv := zktest.Start(b)
	ctx := context.Background()
	st := mustOpen(b, srv.Servers(), nil)
	raw := rawBenchConn(b, srv.Servers())
	warmUp(b, st)

	b.Run("RawMulti", func(b *testing.B) {
		if _, err := raw.Create("/raw-bench", nil, 0, zk.WorldACL(zk.PermAll)); err != nil && err != zk.ErrNodeExists {
			b.Fatal(err)
		}
		head := fmt.Sprintf("/raw-bench/head-%d", time.Now().UnixNano())
		if _, err := raw.Create(head, nil, 0, zk.WorldACL(zk.PermAll)); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			_, err := raw.Multi(
				&zk.CreateRequest{Path: fmt.Sprintf("%s-%010d", head, i), Data: benchContent, Acl: zk.WorldACL(zk.PermAll)},
				&zk.SetDataRequest{Path: head, Data: []byte(fmt.Sprint(i)), Version: int32(i)})
			if err != nil {
				b.Fatal(err)
			}
		}
	})

	b.Run("Publish", func(b *testing.B) {
		ref := benchRef(b, st)
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			if _, err := st.Publish(ctx, ref, configsvc.Changeset{Base: int64(i), Author: "bench",
				Changes: []configsvc.Change{{File: "app.yaml", Content: benchContent}}}); err != nil {
				b.Fatal(err)
			}
		}
	})

	// A service with 50 revisions of app.yaml and one untouched file.
	ref := benchRef(b, st)
	benchHistory(b, st, ref, 50)

	b.Run("Head", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, err := st.Head(ctx, ref); err != nil {
				b.Fatal(err)
			}
		}
	})

	b.Run("FileAtHead", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, _, err := st.File(ctx, ref, "app.yaml", 0); err != nil {
				b.Fatal(err)
			}
		}
	})

	// Many readers at once: their syncs are shared (docs/zookeeper-layout.md,
	// "Linearizable reads"), so a read costs less than one sync each.
	b.Run("HeadParallel", func(b *testing.B) {
		b.SetParallelism(8)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := st.Head(ctx, ref); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})

	b.Run("FileAtOldRevision", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if _, _, err := st.File(ctx, ref, "app.yaml", 10); err != nil {
				b.Fatal(err)
			}
		}
	})

	for _, watchers := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("WatchFanout/%d", watchers), func(b *testing.B) {
			benchFanout(b, st, watchers)
		})
	}
}

func rawBenchConn(b *testing.B, servers []string) *zk.Conn {
	b.Helper()
	c, _, err := zk.Connect(servers, 10*time.Second, zk.WithLogInfo(false), zk.WithLogger(quiet{}))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	return c
}

var benchRefs int

func benchRef(b *testing.B, st *zkstore.Store) configsvc.Ref {
	b.Helper()
	benchRefs++
	ref := configsvc.Service(fmt.Sprintf("bench-%d", benchRefs))
	if err := st.Create(context.Background(), ref); err != nil {
		b.Fatal(err)
	}
	return ref
}

func benchHistory(b *testing.B, st *zkstore.Store, ref configsvc.Ref, n int) {
	b.Helper()
	ctx := context.Background()
	if _, err := st.Publish(ctx, ref, configsvc.Changeset{Base: 0, Changes: []configsvc.Change{
		{File: "app.yaml", Content: benchContent}, {File: "other.yaml", Content: benchContent}}}); err != nil {
		b.Fatal(err)
	}
	for i := int64(1); i < int64(n); i++ {
		if _, err := st.Publish(ctx, ref, configsvc.Changeset{Base: i, Changes: []configsvc.Change{
			{File: "app.yaml", Content: append([]byte(fmt.Sprintf("# %d\n", i)), benchContent...)}}}); err != nil {
			b.Fatal(err)
		}
	}
}

// warmUp lets the JVM compile its hot paths before anything is timed.
func warmUp(b *testing.B, st *zkstore.Store) {
	b.Helper()
	ref := benchRef(b, st)
	benchHistory(b, st, ref, 300)
	for range 300 {
		if _, _, err := st.File(context.Background(), ref, "app.yaml", 0); err != nil {
			b.Fatal(err)
		}
	}
}

// benchFanout: each iteration publishes one revision and waits until every
// one of n watchers has received it.
func benchFanout(b *testing.B, st *zkstore.Store, n int) {
	ref := benchRef(b, st)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	got := make(chan int64, n*4)
	var wg sync.WaitGroup
	for range n {
		ch := st.Watch(ctx, ref, 0)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ev := range ch {
				if ev.Revision != nil {
					got <- ev.Revision.Number
				}
			}
		}()
	}
	defer wg.Wait()
	defer cancel()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := st.Publish(ctx, ref, configsvc.Changeset{Base: int64(i), Changes: []configsvc.Change{{File: "app.yaml", Content: benchContent}}}); err != nil {
			b.Fatal(err)
		}
		for range n {
			select {
			case r := <-got:
				if r != int64(i+1) {
					b.Fatalf("watcher got revision %d, want %d", r, i+1)
				}
			case <-time.After(20 * time.Second):
				b.Fatalf("watchers did not all receive revision %d", i+1)
			}
		}
	}
	b.StopTimer()
}
