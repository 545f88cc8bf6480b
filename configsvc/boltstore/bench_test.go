package boltstore_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/boltstore"
	"github.com/sluicehq/sluice/configsvc/boltstore/bolttest"
	"github.com/sluicehq/sluice/configsvc/format"
)

// benchContent is a 1 KiB YAML file, a typical config file.
var benchContent = func() []byte {
	var sb strings.Builder
	for i := range 34 {
		fmt.Fprintf(&sb, "key%02d: value-0123456789abcdef\n", i)
	}
	return []byte(sb.String())
}()

// benchStore returns a store with service "bench" at revision revs, each
// revision rewriting f{n%10}.yaml.
func benchStore(b *testing.B, revs int64) (*boltstore.Store, configsvc.Ref) {
	b.Helper()
	s := bolttest.MustOpen(b, boltstore.Options{})
	b.Cleanup(func() { s.Close() })
	ctx := context.Background()
	ref := configsvc.Service("bench")
	if err := s.Create(ctx, ref); err != nil {
		b.Fatal(err)
	}
	for n := range revs {
		cs := configsvc.Changeset{Base: n, Changes: []configsvc.Change{{File: fmt.Sprintf("f%d.yaml", n%10), Content: benchContent}}}
		if _, err := s.Publish(ctx, ref, cs); err != nil {
			b.Fatal(err)
		}
	}
	return s, ref
}

// BenchmarkPublish measures one durable single-file publish (1 KiB YAML,
// fsynced), pruning at the default retention once past it. The store does
// not parse content: see BenchmarkValidatingPublish for a publish with the
// validation every publish goes through once, above the store.
func BenchmarkPublish(b *testing.B) {
	s, ref := benchStore(b, 0)
	benchPublish(b, s, ref)
}

func benchPublish(b *testing.B, s configsvc.Store, ref configsvc.Ref) {
	ctx := context.Background()
	b.SetBytes(int64(len(benchContent)))
	n := int64(0)
	for b.Loop() {
		cs := configsvc.Changeset{Base: n, Changes: []configsvc.Change{{File: "a.yaml", Content: benchContent}}}
		if _, err := s.Publish(ctx, ref, cs); err != nil {
			b.Fatal(err)
		}
		n++
	}
}

// BenchmarkRawUpdate is the ceiling for BenchmarkPublish: the same bbolt
// version on the same disk committing one fsynced transaction that writes
// the same 1 KiB under a new key, with none of the store's work (head,
// manifests, revision records, watch wake-ups).
func BenchmarkRawUpdate(b *testing.B) {
	db, err := bolt.Open(filepath.Join(b.TempDir(), "raw.db"), 0o600, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	b.SetBytes(int64(len(benchContent)))
	key := make([]byte, 8)
	n := uint64(0)
	for b.Loop() {
		n++
		binary.BigEndian.PutUint64(key, n)
		err := db.Update(func(tx *bolt.Tx) error {
			bk, err := tx.CreateBucketIfNotExists([]byte("raw"))
			if err != nil {
				return err
			}
			return bk.Put(key, benchContent)
		})
		if err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkValidatingPublish is BenchmarkPublish through the
// configsvc.ValidatingStore that sluice server puts in front of the store,
// with the format validator: the YAML is parsed once, then published.
func BenchmarkValidatingPublish(b *testing.B) {
	s, ref := benchStore(b, 0)
	benchPublish(b, configsvc.Validating(s, format.Validator{}), ref)
}

// BenchmarkFileAtHead measures reading one file at the head.
func BenchmarkFileAtHead(b *testing.B) {
	s, ref := benchStore(b, 100)
	ctx := context.Background()
	for b.Loop() {
		if _, _, err := s.File(ctx, ref, "f3.yaml", 0); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFileAtOldRevision measures reading one file at a revision 150
// behind the head.
func BenchmarkFileAtOldRevision(b *testing.B) {
	s, ref := benchStore(b, 200)
	ctx := context.Background()
	for b.Loop() {
		if _, _, err := s.File(ctx, ref, "f3.yaml", 50); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWatchFanout measures one publish delivered, with content, to 100
// watchers of the service.
func BenchmarkWatchFanout(b *testing.B) {
	const watchers = 100
	s, ref := benchStore(b, 0)
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan int64, watchers)
	var wg sync.WaitGroup
	for range watchers {
		ch := s.Watch(ctx, ref, 0)
		wg.Go(func() {
			for ev := range ch {
				if ev.Revision != nil {
					got <- ev.Revision.Number
				}
			}
		})
	}
	b.Cleanup(func() { cancel(); wg.Wait() })
	n := int64(0)
	for b.Loop() {
		cs := configsvc.Changeset{Base: n, Changes: []configsvc.Change{{File: "a.yaml", Content: benchContent}}}
		if _, err := s.Publish(ctx, ref, cs); err != nil {
			b.Fatal(err)
		}
		n++
		for range watchers {
			if r := <-got; r != n {
				b.Fatalf("watcher got revision %d, want %d", r, n)
			}
		}
	}
}
