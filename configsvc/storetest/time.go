package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/testkit"
)

// epoch is where the suite's clocks start: a fixed instant, in a zone other
// than UTC, so that a store that keeps the clock's zone is caught.
var epoch = time.Date(2031, 3, 4, 5, 6, 7, 800, time.FixedZone("CET", 3600))

// testTime checks the times a store records: in UTC, and never going back
// within a service's history even when the clock does (an NTP step, or
// another server whose clock is behind; see TwoStores/ClockSkew).
func (s *suite) testTime(t *testing.T) {
	t.Run("UTC", func(t *testing.T) {
		clock, st, ctx, ref := s.openAt(t)
		h := mustHead(ctx, t, st, ref)
		wantUTC(t, "Head.Updated after Create", h.Updated, epoch)
		clock.Advance(time.Minute)
		rev := mustPublish(ctx, t, st, ref, 0, put("a.txt", "1"))
		wantUTC(t, "Publish's revision time", rev.Time, epoch.Add(time.Minute))
		wantUTC(t, "Head.Updated after Publish", mustHead(ctx, t, st, ref).Updated, epoch.Add(time.Minute))
		got, err := st.Revision(ctx, ref, 1)
		if err != nil {
			t.Fatal(err)
		}
		wantUTC(t, "Revision(1).Time", got.Time, epoch.Add(time.Minute))
	})

	t.Run("NeverBackwards", func(t *testing.T) {
		clock, st, ctx, ref := s.openAt(t)
		clock.Advance(time.Hour)
		r1 := mustPublish(ctx, t, st, ref, 0, put("a.txt", "1"))
		clock.Advance(-2 * time.Hour) // the clock jumps back past the creation
		r2 := mustPublish(ctx, t, st, ref, 1, put("a.txt", "2"))
		if r2.Time.Before(r1.Time) {
			t.Fatalf("revision 2 time %v is before revision 1's %v: a service's history went back in time", r2.Time, r1.Time)
		}
		clock.Advance(3 * time.Hour)
		r3 := mustPublish(ctx, t, st, ref, 2, put("a.txt", "3"))
		wantUTC(t, "revision 3, after the clock caught up", r3.Time, epoch.Add(2*time.Hour))
		wantOrderedTimes(ctx, t, st, ref)
	})
}

// openAt opens a store on a Clock at epoch (Options.OpenAt, skipping the
// test without it) holding the service orders, created at epoch.
func (s *suite) openAt(t *testing.T) (*testkit.Clock, configsvc.Store, context.Context, configsvc.Ref) {
	t.Helper()
	if s.opts.OpenAt == nil {
		t.Skip("storetest: Options.OpenAt not set")
	}
	clock := testkit.NewClock(epoch)
	st := s.opts.OpenAt(t, clock.Now)
	ctx := s.ctx(t)
	ref := configsvc.Service("orders")
	mustCreate(ctx, t, st, ref)
	return clock, st, ctx, ref
}

// wantUTC fails unless got is want's instant, in UTC.
func wantUTC(t *testing.T, what string, got, want time.Time) {
	t.Helper()
	if got.Location() != time.UTC || !got.Equal(want) {
		t.Fatalf("%s = %v, want %v in UTC", what, got, want.UTC())
	}
}

// wantOrderedTimes fails unless the retained revisions of ref have times
// that never decrease with the revision number, and the head's time is the
// newest revision's.
func wantOrderedTimes(ctx context.Context, t *testing.T, st configsvc.Store, ref configsvc.Ref) {
	t.Helper()
	revs, err := st.Revisions(ctx, ref, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for i := 1; i < len(revs); i++ { // newest first
		if revs[i-1].Time.Before(revs[i].Time) {
			t.Fatalf("revision %d at %v is before revision %d at %v", revs[i-1].Number, revs[i-1].Time, revs[i].Number, revs[i].Time)
		}
	}
	if h := mustHead(ctx, t, st, ref); len(revs) > 0 && !h.Updated.Equal(revs[0].Time) {
		t.Fatalf("Head.Updated = %v, want the newest revision's time %v", h.Updated, revs[0].Time)
	}
}
