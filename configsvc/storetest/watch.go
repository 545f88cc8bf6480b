package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
)

func (s *suite) testWatch(t *testing.T) {
	t.Run("CatchUpThenLive", func(t *testing.T) {
		for _, ref := range []configsvc.Ref{configsvc.Service("orders"), configsvc.Group("redis-common")} {
			t.Run(ref.Kind.String(), func(t *testing.T) {
				st, ctx := s.open(t)
				mustCreate(ctx, t, st, ref)
				want := map[int64][]configsvc.Change{}
				publish := func(n int64) {
					c := put("a.json", fmt.Sprintf(`{"n":%d}`, n))
					mustPublish(ctx, t, st, ref, n-1, c)
					want[n] = []configsvc.Change{c}
				}
				for n := int64(1); n <= 3; n++ {
					publish(n)
				}
				ch := st.Watch(ctx, ref, 1)
				s.wantRevisions(t, ch, 2, 3, want)
				for n := int64(4); n <= 5; n++ {
					publish(n)
				}
				s.wantRevisions(t, ch, 4, 5, want)
			})
		}
	})

	t.Run("FromZero", func(t *testing.T) {
		st, ctx := s.open(t)
		ref := configsvc.Service("orders")
		mustCreate(ctx, t, st, ref)
		ch := st.Watch(ctx, ref, 0)
		c1, c2 := put("a.txt", "one"), put("b.json", `{"b":2}`)
		mustPublish(ctx, t, st, ref, 0, c1, c2)
		c3 := del("a.txt")
		mustPublish(ctx, t, st, ref, 1, c3)
		s.wantRevisions(t, ch, 1, 2, map[int64][]configsvc.Change{1: {c1, c2}, 2: {c3}})
	})

	t.Run("FromHead", func(t *testing.T) {
		st, ctx := s.open(t)
		ref := configsvc.Service("orders")
		mustCreate(ctx, t, st, ref)
		mustPublish(ctx, t, st, ref, 0, put("a.txt", "1"))
		mustPublish(ctx, t, st, ref, 1, put("a.txt", "2"))
		ch := st.Watch(ctx, ref, 2)
		c := put("a.txt", "3")
		mustPublish(ctx, t, st, ref, 2, c)
		s.wantRevisions(t, ch, 3, 3, map[int64][]configsvc.Change{3: {c}})
	})

	// A watch from a revision the ref has not reached (a client that
	// applied it from another server, ahead of this one) waits for it,
	// like etcd's watch from a future revision: nothing up to from is
	// delivered, revisions after it are, in order.
	t.Run("FromAboveHead", func(t *testing.T) {
		st, ctx := s.open(t)
		ref := configsvc.Service("orders")
		mustCreate(ctx, t, st, ref)
		mustPublish(ctx, t, st, ref, 0, put("a.txt", "1"))
		ch := st.Watch(ctx, ref, 3)
		for n := int64(1); n <= 2; n++ {
			mustPublish(ctx, t, st, ref, n, put("a.txt", fmt.Sprint(n+1)))
		}
		quiet := time.NewTimer(300 * time.Millisecond)
		defer quiet.Stop()
	wait:
		for {
			select {
			case ev, ok := <-ch:
				if !ok {
					t.Fatal("a watch from above the head closed; want it to wait")
				}
				if ev.Revision != nil || (ev.Err != nil && !errors.Is(ev.Err, configsvc.ErrUnavailable)) {
					t.Fatalf("a watch from revision 3 with the head at 3 sent %+v; want nothing yet", ev)
				}
			case <-quiet.C:
				break wait
			}
		}
		c4, c5 := put("a.txt", "4"), put("a.txt", "5")
		mustPublish(ctx, t, st, ref, 3, c4)
		mustPublish(ctx, t, st, ref, 4, c5)
		s.wantRevisions(t, ch, 4, 5, map[int64][]configsvc.Change{4: {c4}, 5: {c5}})
	})

	// A burst published faster than any backend can notify: every revision
	// is still delivered, in order, to several watchers, one of them slow.
	t.Run("BurstNoneSkipped", func(t *testing.T) {
		st, ctx := s.open(t)
		ref := configsvc.Service("orders")
		mustCreate(ctx, t, st, ref)
		const n = 30
		chans := make([]<-chan configsvc.Event, 3)
		for i := range chans {
			chans[i] = st.Watch(ctx, ref, 0)
		}
		want := map[int64][]configsvc.Change{}
		for i := int64(1); i <= n; i++ {
			c := put("a.txt", fmt.Sprint(i))
			mustPublish(ctx, t, st, ref, i-1, c, put(fmt.Sprintf("f%d.txt", i%4), "x"))
			want[i] = []configsvc.Change{c, put(fmt.Sprintf("f%d.txt", i%4), "x")}
		}
		for i, ch := range chans {
			t.Run(fmt.Sprint("watcher", i), func(t *testing.T) {
				s.wantRevisions(t, ch, 1, n, want)
			})
		}
	})

	t.Run("Cancel", func(t *testing.T) {
		st, ctx := s.open(t)
		ref := configsvc.Service("orders")
		mustCreate(ctx, t, st, ref)
		mustPublish(ctx, t, st, ref, 0, put("a.txt", "1"))
		wctx, cancel := context.WithCancel(ctx)
		ch := st.Watch(wctx, ref, 0)
		s.wantRevisions(t, ch, 1, 1, nil)
		cancel()
		s.wantClosed(t, ch)
		// The store keeps working after a watch ended.
		mustPublish(ctx, t, st, ref, 1, put("a.txt", "2"))
		ch = st.Watch(ctx, ref, 1)
		s.wantRevisions(t, ch, 2, 2, nil)
	})

	t.Run("CancelWhileUnread", func(t *testing.T) {
		st, ctx := s.open(t)
		ref := configsvc.Service("orders")
		mustCreate(ctx, t, st, ref)
		for i := int64(0); i < 5; i++ {
			mustPublish(ctx, t, st, ref, i, put("a.txt", fmt.Sprint(i)))
		}
		wctx, cancel := context.WithCancel(ctx)
		ch := st.Watch(wctx, ref, 0)
		cancel()
		s.wantClosed(t, ch)
	})

	t.Run("MissingRef", func(t *testing.T) {
		st, ctx := s.open(t)
		s.wantErrEventThenClose(t, st.Watch(ctx, configsvc.Service("ghost"), 0), configsvc.ErrNotFound)
	})

	t.Run("DeletedWhileWatching", func(t *testing.T) {
		st, ctx := s.open(t)
		ref := configsvc.Service("orders")
		mustCreate(ctx, t, st, ref)
		mustPublish(ctx, t, st, ref, 0, put("a.txt", "1"))
		ch := st.Watch(ctx, ref, 0)
		s.wantRevisions(t, ch, 1, 1, nil)
		if err := st.Delete(ctx, ref); err != nil {
			t.Fatal(err)
		}
		s.wantErrEventThenClose(t, ch, configsvc.ErrNotFound)
	})

	t.Run("LinksChanged", func(t *testing.T) {
		st, ctx := s.open(t)
		ref := configsvc.Service("orders")
		mustCreate(ctx, t, st, ref)
		mustCreate(ctx, t, st, configsvc.Group("kafka"))
		mustCreate(ctx, t, st, configsvc.Group("redis-common"))
		ch := st.Watch(ctx, ref, 0)
		if err := st.Link(ctx, "orders", "redis-common"); err != nil {
			t.Fatal(err)
		}
		s.wantLinks(t, ch, "redis-common")
		if err := st.Link(ctx, "orders", "kafka"); err != nil {
			t.Fatal(err)
		}
		s.wantLinks(t, ch, "kafka", "redis-common")
		c := put("a.txt", "after links")
		mustPublish(ctx, t, st, ref, 0, c)
		s.wantRevisions(t, ch, 1, 1, map[int64][]configsvc.Change{1: {c}})
		if err := st.Unlink(ctx, "orders", "kafka"); err != nil {
			t.Fatal(err)
		}
		if err := st.Unlink(ctx, "orders", "redis-common"); err != nil {
			t.Fatal(err)
		}
		s.wantLinks(t, ch)
	})
}

// wantLinks reads events until a LinksChanged event carries exactly want
// (earlier LinksChanged events with intermediate sets are allowed, and
// GraysChanged events; a revision event is not).
func (s *suite) wantLinks(t *testing.T, ch <-chan configsvc.Event, want ...string) {
	t.Helper()
	deadline := time.Now().Add(s.opts.Timeout)
	for time.Now().Before(deadline) {
		ev, ok := s.next(t, ch)
		if !ok {
			t.Fatalf("watch closed while waiting for links %v", want)
		}
		if ev.Err != nil || ev.Revision != nil {
			t.Fatalf("watch event %+v while waiting for links %v", ev, want)
		}
		if ev.GraysChanged {
			continue // the grays' baseline
		}
		if !ev.LinksChanged {
			t.Fatalf("empty watch event while waiting for links %v", want)
		}
		if len(ev.Links) == len(want) && (len(want) == 0 || slices.Equal(ev.Links, want)) {
			return
		}
	}
	t.Fatalf("no LinksChanged event with %v within %v", want, s.opts.Timeout)
}
