package httpapi

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/boltstore"
	"github.com/sluicehq/sluice/configsvc/boltstore/bolttest"
	"github.com/sluicehq/sluice/configsvc/format"
	"github.com/sluicehq/sluice/configsvc/zkstore/zktest"
)

// raceStore is a store whose first Watch, once armed, creates a gray as
// the watch is asked for and whose next Head abandons it right after it
// was read: a gray created and ended within milliseconds of a stream
// opening, with a head read in between. The watch itself starts only
// after that abandon (or 300 ms), as a store watcher slow to make its
// first read on a busy server would.
type raceStore struct {
	configsvc.Store
	t     *testing.T
	armed atomic.Bool
	mu    sync.Mutex
	gray  string        // the gray the first Watch created
	start chan struct{} // closed by the Head that abandons it
}

func (r *raceStore) Watch(ctx context.Context, ref configsvc.Ref, from int64, opts ...configsvc.WatchOption) <-chan configsvc.Event {
	if !r.armed.CompareAndSwap(true, false) {
		return r.Store.Watch(ctx, ref, from, opts...)
	}
	g, err := r.Store.CreateGray(context.Background(), ref, configsvc.Gray{BaseRevision: from,
		Changes: []configsvc.Change{{File: "a.txt", Content: []byte("gray")}}, Selector: configsvc.Selector{Percent: 10}})
	if err != nil {
		r.t.Errorf("CreateGray: %v", err)
	}
	start := make(chan struct{})
	r.mu.Lock()
	r.gray, r.start = g.ID, start
	r.mu.Unlock()
	out := make(chan configsvc.Event)
	go func() {
		defer close(out)
		select {
		case <-start:
		case <-time.After(300 * time.Millisecond):
		case <-ctx.Done():
			return
		}
		for ev := range r.Store.Watch(ctx, ref, from, opts...) {
			select {
			case out <- ev:
			case <-ctx.Done():
			}
		}
	}()
	return out
}

func (r *raceStore) Head(ctx context.Context, ref configsvc.Ref) (configsvc.Head, error) {
	h, err := r.Store.Head(ctx, ref)
	r.mu.Lock()
	id, start := r.gray, r.start
	r.gray = ""
	r.mu.Unlock()
	if id != "" {
		if _, _, err := r.Store.EndGray(context.Background(), ref, id, 1, configsvc.GrayEnd{State: configsvc.GrayAbandoned}); err != nil {
			r.t.Errorf("EndGray: %v", err)
		}
		close(start)
	}
	return h, err
}

// TestGraysStreamNotStaleAfterQuickCreateAndEnd is the race gray-core's
// author reported, on both stores: a gray created right after a revision
// stream's watch started and abandoned right after a separate head read
// left the stream's "grays" set holding the gray for good (the head read
// saw it; the watch, whose baseline predated it, saw no change). The
// stream now takes the set from the store's watch alone, so it ends on
// the store's set.
func TestGraysStreamNotStaleAfterQuickCreateAndEnd(t *testing.T) {
	run := func(t *testing.T, st configsvc.Store) {
		rs := &raceStore{Store: st, t: t}
		e2 := newEnvOn(t, configsvc.Validating(rs, format.Validator{}))
		e2.mustService("orders", map[string]string{"a.txt": "main"})
		ref := configsvc.Service("orders")
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		rs.armed.Store(true)
		events := e2.client(e2.admin).Watch(ctx, ref, 1)
		var last []configsvc.GraySummary
		seen := false
		deadline := time.After(3 * time.Second)
		for {
			h, err := st.Head(ctx, ref)
			if err != nil {
				t.Fatal(err)
			}
			if seen && configsvc.SameGrays(last, h.Grays) {
				return
			}
			select {
			case ev := <-events:
				if ev.GraysChanged {
					last, seen = ev.Grays, true
				}
			case <-time.After(100 * time.Millisecond):
			case <-deadline:
				t.Fatalf("the stream's grays %v (seen: %v) never matched the store's %v", ids(last), seen, ids(h.Grays))
			}
		}
	}
	t.Run("bolt", func(t *testing.T) { run(t, bolttest.MustOpen(t, boltstore.Options{})) })
	t.Run("zookeeper", func(t *testing.T) { run(t, mustZK(t, zktest.Start(t), "/sluice")) })
}

func ids(list []configsvc.GraySummary) []string {
	out := []string{}
	for _, s := range list {
		out = append(out, s.ID)
	}
	return slices.Clip(out)
}
