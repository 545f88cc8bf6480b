package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/testkit"
)

// pair returns two stores on the same data (Options.OpenPair) with clocks
// nowA and nowB (nil: time.Now), skipping the test without OpenPair.
func (s *suite) pair(t *testing.T, nowA, nowB func() time.Time) (a, b configsvc.Store, ctx context.Context) {
	t.Helper()
	if s.opts.OpenPair == nil {
		t.Skip("storetest: Options.OpenPair not set")
	}
	if nowA == nil {
		nowA = time.Now
	}
	if nowB == nil {
		nowB = time.Now
	}
	a, b = s.opts.OpenPair(t, nowA, nowB)
	if a == nil || b == nil {
		t.Fatal("storetest: OpenPair returned a nil store")
	}
	return a, b, s.ctx(t)
}

// testTwoStores runs what two admin servers on one store do at once:
// write through one and read, watch or write through the other. Every
// store must give the same answers through either. (Split runs the whole
// suite that way.)
func (s *suite) testTwoStores(t *testing.T) {
	t.Run("PublishOneWatchOther", func(t *testing.T) {
		a, b, ctx := s.pair(t, nil, nil)
		ref := configsvc.Service("orders")
		mustCreate(ctx, t, a, ref)
		ch := b.Watch(ctx, ref, 0)
		want := map[int64][]configsvc.Change{}
		for n := int64(1); n <= 3; n++ {
			c := put("a.txt", fmt.Sprint(n))
			mustPublish(ctx, t, a, ref, n-1, c)
			want[n] = []configsvc.Change{c}
		}
		s.wantRevisions(t, ch, 1, 3, want)
		if h := mustHead(ctx, t, b, ref); h.Revision != 3 {
			t.Fatalf("Head through the other store = %d, want 3", h.Revision)
		}
		wantSnapshot(ctx, t, b, ref, 2, files("a.txt", "2"))
		// Publishing alternately through both builds one history.
		for n := int64(4); n <= 7; n++ {
			st := a
			if n%2 == 0 {
				st = b
			}
			c := put("a.txt", fmt.Sprint(n))
			mustPublish(ctx, t, st, ref, n-1, c)
			want[n] = []configsvc.Change{c}
		}
		s.wantRevisions(t, ch, 4, 7, want)
		_, err := a.Publish(ctx, ref, configsvc.Changeset{Base: 5, Changes: []configsvc.Change{put("a.txt", "stale")}})
		wantErr(t, "a publish on a base the other store moved past", err, configsvc.ErrConflict)
	})

	t.Run("ConcurrentPublishes", func(t *testing.T) {
		// Per base revision exactly one of the two servers wins.
		a, b, ctx := s.pair(t, nil, nil)
		ref := configsvc.Service("orders")
		mustCreate(ctx, t, a, ref)
		for base := int64(0); base < 5; base++ {
			start := make(chan struct{})
			errs := make([]error, 2)
			var wg sync.WaitGroup
			for i, st := range []configsvc.Store{a, b} {
				wg.Go(func() {
					<-start
					_, errs[i] = st.Publish(ctx, ref, configsvc.Changeset{Base: base, Changes: []configsvc.Change{put("a.txt", fmt.Sprint(base, i))}})
				})
			}
			close(start)
			wg.Wait()
			won := 0
			for _, err := range errs {
				switch {
				case err == nil:
					won++
				case !errors.Is(err, configsvc.ErrConflict):
					t.Fatalf("base %d: %v, want success or ErrConflict", base, err)
				}
			}
			if won != 1 {
				t.Fatalf("base %d: %d of two concurrent publishes won, want 1", base, won)
			}
		}
		for _, st := range []configsvc.Store{a, b} {
			if h := mustHead(ctx, t, st, ref); h.Revision != 5 {
				t.Fatalf("head = %d, want 5", h.Revision)
			}
		}
	})

	t.Run("LinkRacesPublish", func(t *testing.T) {
		a, b, ctx := s.pair(t, nil, nil)
		ref := configsvc.Service("orders")
		mustCreate(ctx, t, a, ref)
		ch := a.Watch(ctx, ref, 0)
		var groups []string
		for round := range 4 {
			g := fmt.Sprint("group-", round)
			groups = append(groups, g)
			mustCreate(ctx, t, b, configsvc.Group(g))
			start := make(chan struct{})
			var linkErr, pubErr error
			var wg sync.WaitGroup
			wg.Go(func() { <-start; linkErr = b.Link(ctx, "orders", g) })
			wg.Go(func() {
				<-start
				_, pubErr = a.Publish(ctx, ref, configsvc.Changeset{Base: int64(round), Author: "tester",
					Message: fmt.Sprintf("revision %d", round+1), Changes: []configsvc.Change{put("a.txt", fmt.Sprint(round))}})
			})
			close(start)
			wg.Wait()
			if linkErr != nil || pubErr != nil {
				t.Fatalf("round %d: Link through one store = %v, Publish through the other = %v; want both to succeed", round, linkErr, pubErr)
			}
		}
		for _, st := range []configsvc.Store{a, b} {
			if h := mustHead(ctx, t, st, ref); h.Revision != 4 || !slices.Equal(h.Links, groups) {
				t.Fatalf("head revision %d, links %v; want 4 and %v", h.Revision, h.Links, groups)
			}
		}
		s.wantRevisions(t, ch, 1, 4, nil)
	})

	t.Run("Instances", func(t *testing.T) {
		a, b, ctx := s.pair(t, nil, nil)
		mustCreate(ctx, t, a, configsvc.Service("orders"))
		ch := b.WatchInstances(ctx, "orders")
		s.waitInstances(t, ch)
		inst := instance("orders", "i-1")
		l := mustRegister(ctx, t, a, inst)
		s.waitInstances(t, ch, "i-1")
		_, err := b.Register(ctx, inst)
		wantErr(t, "Register of an id live through the other store", err, configsvc.ErrConflict)
		inst.Revision, inst.Status = 4, configsvc.StatusApplied
		if err := l.Update(ctx, inst); err != nil {
			t.Fatal(err)
		}
		wantInstances(ctx, t, b, "orders", inst)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		s.waitInstances(t, ch)
		mustRegister(ctx, t, b, inst) // the id is free again, through either
		wantInstances(ctx, t, a, "orders", inst)
	})

	t.Run("RemoveInstanceOfOther", func(t *testing.T) {
		// The record of another server's (ZooKeeper: another session's)
		// registration is removed; that registration lists it again at its
		// next Update.
		a, b, ctx := s.pair(t, nil, nil)
		mustCreate(ctx, t, a, configsvc.Service("orders"))
		ch := a.WatchInstances(ctx, "orders")
		s.waitInstances(t, ch)
		inst := instance("orders", "i-1")
		l := mustRegister(ctx, t, a, inst)
		s.waitInstances(t, ch, "i-1")
		if err := b.RemoveInstance(ctx, "orders", "i-1"); err != nil {
			t.Fatalf("RemoveInstance through the other store: %v", err)
		}
		s.waitInstances(t, ch)
		wantInstances(ctx, t, b, "orders")
		inst.Revision, inst.Status = 3, configsvc.StatusApplied
		if err := l.Update(ctx, inst); err != nil {
			t.Fatalf("Update after RemoveInstance: %v", err)
		}
		s.waitInstances(t, ch, "i-1")
		wantInstances(ctx, t, b, "orders", inst)
	})

	t.Run("DeleteAndRecreate", func(t *testing.T) {
		// One server deletes and re-creates a service the other watches and
		// has published to: the other's watch ends, and it publishes on the
		// new service's history, never on what it remembers of the old one.
		a, b, ctx := s.pair(t, nil, nil)
		ref := configsvc.Service("orders")
		mustCreate(ctx, t, a, ref)
		mustPublish(ctx, t, a, ref, 0, put("a.txt", "old 1"))
		mustPublish(ctx, t, a, ref, 1, put("a.txt", "old 2"))
		ch := a.Watch(ctx, ref, 2)
		if err := b.Delete(ctx, ref); err != nil {
			t.Fatal(err)
		}
		s.wantErrEventThenClose(t, ch, configsvc.ErrNotFound)
		mustCreate(ctx, t, b, ref)
		_, err := a.Publish(ctx, ref, configsvc.Changeset{Base: 2, Changes: []configsvc.Change{put("a.txt", "old 3")}})
		wantErr(t, "a publish on the deleted service's head", err, configsvc.ErrConflict)
		mustPublish(ctx, t, a, ref, 0, put("a.txt", "new 1"))
		wantSnapshot(ctx, t, b, ref, 0, files("a.txt", "new 1"))
	})

	t.Run("ClockSkew", func(t *testing.T) {
		// Server b's clock is an hour behind a's: a revision published
		// through b after one published through a still has a later (or
		// equal) time.
		clockA, clockB := testkit.NewClock(epoch.Add(time.Hour)), testkit.NewClock(epoch)
		a, b, ctx := s.pair(t, clockA.Now, clockB.Now)
		ref := configsvc.Service("orders")
		mustCreate(ctx, t, b, ref)
		mustPublish(ctx, t, b, ref, 0, put("a.txt", "1"))
		mustPublish(ctx, t, a, ref, 1, put("a.txt", "2"))
		clockA.Advance(time.Minute)
		clockB.Advance(time.Minute)
		mustPublish(ctx, t, b, ref, 2, put("a.txt", "3"))
		mustPublish(ctx, t, a, ref, 3, put("a.txt", "4"))
		mustPublish(ctx, t, b, ref, 4, put("a.txt", "5"))
		wantOrderedTimes(ctx, t, a, ref)
		wantOrderedTimes(ctx, t, b, ref)
	})

	t.Run("Records", func(t *testing.T) {
		a, b, ctx := s.pair(t, nil, nil)
		const writers, each = 4, 5
		// Identical entries from different writers stay distinct.
		appendConcurrently(ctx, t, []configsvc.RecordStore{a.Records(), b.Records()}, writers, each, func(int, int) []byte {
			return []byte("same entry")
		})
		for _, st := range []configsvc.Store{a, b} {
			list, err := st.Records().Scan(ctx, "audit", 0, 100)
			if err != nil || len(list) != writers*each || list[0].ID != strconv.Itoa(writers*each) {
				t.Fatalf("Scan = %d entries, %v; want %d", len(list), err, writers*each)
			}
		}
		if err := a.Records().Put(ctx, "tokens", "t1", []byte("x")); err != nil {
			t.Fatal(err)
		}
		if got, err := b.Records().Get(ctx, "tokens", "t1"); err != nil || string(got) != "x" {
			t.Fatalf("Get through the other store = %q, %v", got, err)
		}
	})
}
