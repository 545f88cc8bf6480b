package storetest

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
)

// testIdentity checks configsvc.Identity: the store generation, publish ids
// and parents on every read and watch event, BumpGeneration, and the watch
// checks (configsvc.Expect, a bump under a watch, a start above the head).
func (s *suite) testIdentity(t *testing.T) {
	t.Run("EveryReadCarriesIt", func(t *testing.T) {
		st, ctx := s.open(t)
		gen, err := st.Generation(ctx)
		if err != nil || gen.ID == "" || gen.Since.IsZero() {
			t.Fatalf("Generation() = %+v, %v; want an id and a time", gen, err)
		}
		ref := configsvc.Service("orders")
		mustCreate(ctx, t, st, ref)
		if h := mustHead(ctx, t, st, ref); h.Generation != gen.ID || h.PublishID != "" {
			t.Fatalf("head of a new service: generation %q, publish id %q; want %q and none", h.Generation, h.PublishID, gen.ID)
		}
		r1 := mustPublish(ctx, t, st, ref, 0, put("a.txt", "1"))
		r2 := mustPublish(ctx, t, st, ref, 1, put("a.txt", "2"))
		if r1.PublishID == "" || r2.PublishID == "" || r1.PublishID == r2.PublishID || r1.Parent != "" || r2.Parent != r1.PublishID {
			t.Fatalf("publishes returned r1 {id %q parent %q}, r2 {id %q parent %q}; want two ids, r2's parent r1's", r1.PublishID, r1.Parent, r2.PublishID, r2.Parent)
		}
		want := map[int64]configsvc.Revision{1: r1, 2: r2}
		check := func(what string, got configsvc.Revision) {
			t.Helper()
			w := want[got.Number]
			if got.PublishID != w.PublishID || got.Parent != w.Parent || got.Generation != gen.ID {
				t.Fatalf("%s: revision %d {id %q parent %q generation %q}, want {%q %q %q}", what, got.Number, got.PublishID, got.Parent, got.Generation, w.PublishID, w.Parent, gen.ID)
			}
		}
		if h := mustHead(ctx, t, st, ref); h.Generation != gen.ID || h.PublishID != r2.PublishID {
			t.Fatalf("head: generation %q, publish id %q; want %q, %q", h.Generation, h.PublishID, gen.ID, r2.PublishID)
		}
		for _, at := range []int64{0, 1, 2} {
			snap := mustSnapshot(ctx, t, st, ref, at)
			w := want[snap.Revision]
			if snap.Generation != gen.ID || snap.PublishID != w.PublishID {
				t.Fatalf("Snapshot(%d): revision %d, generation %q, publish id %q; want %q, %q", at, snap.Revision, snap.Generation, snap.PublishID, gen.ID, w.PublishID)
			}
		}
		for n := int64(1); n <= 2; n++ {
			r, err := st.Revision(ctx, ref, n)
			if err != nil {
				t.Fatal(err)
			}
			check("Revision", r)
		}
		revs, err := st.Revisions(ctx, ref, 0, 10)
		if err != nil || len(revs) != 2 {
			t.Fatalf("Revisions: %d, %v", len(revs), err)
		}
		for _, r := range revs {
			check("Revisions", r)
		}
		ch := st.Watch(ctx, ref, 0)
		for n := int64(1); n <= 2; n++ {
			check("Watch", *s.nextRevision(t, ch))
		}
	})

	t.Run("BumpGeneration", func(t *testing.T) {
		st, ctx := s.open(t)
		before, err := st.Generation(ctx)
		if err != nil {
			t.Fatal(err)
		}
		svc, grp := configsvc.Service("orders"), configsvc.Group("redis-common")
		mustCreate(ctx, t, st, svc)
		mustCreate(ctx, t, st, grp)
		mustPublish(ctx, t, st, svc, 0, put("a.txt", "1"))
		_, err = st.BumpGeneration(ctx, strings.Repeat("x", configsvc.MaxGenerationReasonLen+1))
		wantErr(t, "BumpGeneration with an over-long reason", err, configsvc.ErrTooLarge)
		g, err := st.BumpGeneration(ctx, "restored the backup of Monday")
		if err != nil {
			t.Fatal(err)
		}
		if g.ID == "" || g.ID == before.ID || g.Previous != before.ID || g.Reason != "restored the backup of Monday" {
			t.Fatalf("BumpGeneration = %+v; want a new id, previous %q and the reason", g, before.ID)
		}
		if got, err := st.Generation(ctx); err != nil || got.ID != g.ID {
			t.Fatalf("Generation() after the bump = %+v, %v; want %s", got, err, g.ID)
		}
		for _, ref := range []configsvc.Ref{svc, grp} {
			if h := mustHead(ctx, t, st, ref); h.Generation != g.ID {
				t.Fatalf("head of %s after the bump: generation %q, want %q", ref, h.Generation, g.ID)
			}
		}
		created := configsvc.Service("payments")
		mustCreate(ctx, t, st, created)
		if h := mustHead(ctx, t, st, created); h.Generation != g.ID {
			t.Fatalf("head created after the bump: generation %q, want %q", h.Generation, g.ID)
		}
		if r := mustPublish(ctx, t, st, svc, 1, put("a.txt", "2")); r.Generation != g.ID {
			t.Fatalf("publish after the bump: generation %q, want %q", r.Generation, g.ID)
		}
	})

	t.Run("WatchEndsOnBump", func(t *testing.T) {
		st, ctx := s.open(t)
		ref := configsvc.Service("orders")
		mustCreate(ctx, t, st, ref)
		mustPublish(ctx, t, st, ref, 0, put("a.txt", "1"))
		ch := st.Watch(ctx, ref, 0)
		s.wantRevisions(t, ch, 1, 1, nil)
		if _, err := st.BumpGeneration(ctx, "test"); err != nil {
			t.Fatal(err)
		}
		s.wantErrEventThenClose(t, ch, configsvc.ErrRewritten)
	})

	t.Run("WatchExpect", func(t *testing.T) {
		st, ctx := s.open(t)
		ref := configsvc.Service("orders")
		mustCreate(ctx, t, st, ref)
		mustPublish(ctx, t, st, ref, 0, put("a.txt", "1"))
		r2 := mustPublish(ctx, t, st, ref, 1, put("a.txt", "2"))
		gen := r2.Generation
		if gen == "" {
			gen = mustHead(ctx, t, st, ref).Generation
		}
		for _, tt := range []struct {
			name   string
			from   int64
			expect configsvc.Identity
		}{
			{"another generation", 2, configsvc.Identity{Generation: "0123456789abcdef"}},
			{"another publish id at the head", 2, configsvc.Identity{Generation: gen, PublishID: "00ff"}},
			{"another publish id below the head", 1, configsvc.Identity{Generation: gen, PublishID: "00ff"}},
			{"another generation above the head", 9, configsvc.Identity{Generation: "0123456789abcdef"}},
		} {
			t.Run(tt.name, func(t *testing.T) {
				ch := st.Watch(ctx, ref, tt.from, configsvc.Expect(tt.expect))
				for {
					ev, ok := s.next(t, ch)
					if !ok {
						t.Fatal("watch closed without an ErrRewritten event")
					}
					if ev.Revision != nil {
						t.Fatalf("watch delivered revision %d of a history other than the one expected", ev.Revision.Number)
					}
					if ev.Err != nil {
						wantErr(t, "watch event", ev.Err, configsvc.ErrRewritten)
						break
					}
				}
				s.wantClosed(t, ch)
			})
		}
		t.Run("the revision held", func(t *testing.T) {
			r1, err := st.Revision(ctx, ref, 1)
			if err != nil {
				t.Fatal(err)
			}
			ch := st.Watch(ctx, ref, 1, configsvc.Expect(r1.Identity()))
			if got := s.nextRevision(t, ch); got.Number != 2 || got.PublishID != r2.PublishID {
				t.Fatalf("watch delivered revision %d (publish id %q), want 2 (%q)", got.Number, got.PublishID, r2.PublishID)
			}
		})
	})

	// A watch from a revision the store does not have yet, in its own
	// generation, waits for it (a client ahead of a lagging server) and
	// then delivers what follows it.
	t.Run("WatchAboveTheHeadWaits", func(t *testing.T) {
		st, ctx := s.open(t)
		ref := configsvc.Service("orders")
		mustCreate(ctx, t, st, ref)
		mustPublish(ctx, t, st, ref, 0, put("a.txt", "1"))
		gen := mustHead(ctx, t, st, ref).Generation
		ch := st.Watch(ctx, ref, 3, configsvc.Expect(configsvc.Identity{Generation: gen}))
		select {
		case ev, ok := <-ch:
			if ok && (ev.Err == nil || !errors.Is(ev.Err, configsvc.ErrUnavailable)) {
				t.Fatalf("watch from above the head sent %+v before the store reached it", ev)
			}
		case <-time.After(300 * time.Millisecond):
		}
		mustPublish(ctx, t, st, ref, 1, put("a.txt", "2"))
		mustPublish(ctx, t, st, ref, 2, put("a.txt", "3"))
		c := put("a.txt", "4")
		mustPublish(ctx, t, st, ref, 3, c)
		s.wantRevisions(t, ch, 4, 4, map[int64][]configsvc.Change{4: {c}})
	})
}
