package boltstore_test

import (
	"context"
	"testing"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/boltstore"
)

func benchRet(b *testing.B, ret int) {
	s := MustOpen(b, boltstore.Options{Retention: ret})
	ctx := context.Background()
	ref := configsvc.Service("bench")
	s.Create(ctx, ref)
	n := int64(0)
	for b.Loop() {
		cs := configsvc.Changeset{Base: n, Changes: []configsvc.Change{{File: "a.yaml", Content: benchContent}}}
		if _, err := s.Publish(ctx, ref, cs); err != nil {
			b.Fatal(err)
		}
		n++
	}
}
func BenchmarkTmpRetSmall(b *testing.B) { benchRet(b, 10) }
func BenchmarkTmpRetHuge(b *testing.B)  { benchRet(b, 1000000) }
