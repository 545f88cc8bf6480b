package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/format"
)

// testGrays runs the gray releases of the Store (issue 13): creation,
// the one-gray-per-file rule, selector updates, abandon and promote,
// main moving under a gray, watch events, service deletion, the history
// of ended grays, limits, and the ValidatingStore in front of all of it.
func (s *suite) testGrays(t *testing.T) {
	t.Run("CreateListGet", s.testGrayCreate)
	t.Run("OneGrayPerFile", s.testGrayConflict)
	t.Run("CreateRefused", s.testGrayRefused)
	t.Run("UpdateSelector", s.testGrayUpdate)
	t.Run("Abandon", s.testGrayAbandon)
	t.Run("Promote", s.testGrayPromote)
	t.Run("PromoteRacesPublish", s.testGrayPromoteRace)
	t.Run("MainMovesUnderneath", s.testGrayMainMoves)
	t.Run("Watch", s.testGrayWatch)
	t.Run("DeleteRef", s.testGrayDeleteRef)
	t.Run("EndedHistoryBounded", s.testGrayHistory)
	t.Run("Limits", s.testGrayLimits)
	t.Run("InstanceReports", s.testGrayInstanceReports)
	t.Run("Validating", s.testGrayValidating)
}

// grayBase creates ref with a.yaml, b.json and c.txt at revision 2
// (a.yaml written by 1, the rest by 2) and returns its files.
func grayBase(ctx context.Context, t *testing.T, st configsvc.Store, ref configsvc.Ref) map[string][]byte {
	t.Helper()
	mustCreate(ctx, t, st, ref)
	mustPublish(ctx, t, st, ref, 0, put("a.yaml", "pool: 10\n"), put("b.json", `{"v":1}`))
	mustPublish(ctx, t, st, ref, 1, put("b.json", `{"v":2}`), put("c.txt", "notes"))
	return files("a.yaml", "pool: 10\n", "b.json", `{"v":2}`, "c.txt", "notes")
}

// newGray is a gray on base that writes a.yaml, deletes c.txt and adds
// new.txt, for 10 % of the instances and orders-7.
func newGray(base int64) configsvc.Gray {
	return configsvc.Gray{Name: "bigger pool", Message: "try a bigger pool", Author: "alice", BaseRevision: base,
		Changes:  []configsvc.Change{put("a.yaml", "pool: 50\n"), del("c.txt"), put("new.txt", "added")},
		Selector: configsvc.Selector{Instances: []string{"orders-7"}, Percent: 10}}
}

func mustCreateGray(ctx context.Context, t *testing.T, st configsvc.Store, ref configsvc.Ref, g configsvc.Gray) configsvc.Gray {
	t.Helper()
	out, err := st.CreateGray(ctx, ref, g)
	if err != nil {
		t.Fatalf("CreateGray(%s, %v): %v", ref, g.Files(), err)
	}
	return out
}

func mustGray(ctx context.Context, t *testing.T, st configsvc.Store, ref configsvc.Ref, id string) configsvc.Gray {
	t.Helper()
	g, err := st.Gray(ctx, ref, id)
	if err != nil {
		t.Fatalf("Gray(%s, %s): %v", ref, id, err)
	}
	return g
}

func mustGrays(ctx context.Context, t *testing.T, st configsvc.Store, ref configsvc.Ref) []configsvc.Gray {
	t.Helper()
	gs, err := st.Grays(ctx, ref)
	if err != nil {
		t.Fatalf("Grays(%s): %v", ref, err)
	}
	return gs
}

// grayIDs returns the ids and states of grays, in order.
func grayIDs(gs []configsvc.Gray) []string {
	out := make([]string, len(gs))
	for i, g := range gs {
		out[i] = g.ID + ":" + string(g.State)
	}
	return out
}

// wantHeadGrays fails unless ref's head carries exactly the summaries of
// the given grays (id and version), sorted by id.
func wantHeadGrays(ctx context.Context, t *testing.T, st configsvc.Store, ref configsvc.Ref, want ...configsvc.Gray) configsvc.Head {
	t.Helper()
	h := mustHead(ctx, t, st, ref)
	var exp []configsvc.GraySummary
	for _, g := range want {
		exp = configsvc.WithGraySummary(exp, g.Summary())
	}
	if !configsvc.SameGrays(h.Grays, exp) {
		t.Fatalf("Head(%s).Grays = %s, want %s", ref, showSummaries(h.Grays), showSummaries(exp))
	}
	for i := range exp {
		if !slices.Equal(h.Grays[i].Files, exp[i].Files) || fmt.Sprint(h.Grays[i].Selector) != fmt.Sprint(exp[i].Selector) {
			t.Fatalf("Head(%s).Grays[%d] = %+v, want %+v", ref, i, h.Grays[i], exp[i])
		}
	}
	return h
}

func showSummaries(list []configsvc.GraySummary) string {
	parts := make([]string, len(list))
	for i, s := range list {
		parts[i] = fmt.Sprintf("%s@%d%v", s.ID, s.Version, s.Files)
	}
	return "[" + strings.Join(parts, " ") + "]"
}

func (s *suite) testGrayCreate(t *testing.T) {
	for _, ref := range []configsvc.Ref{configsvc.Service("orders"), configsvc.Group("redis-common")} {
		t.Run(ref.Kind.String(), func(t *testing.T) {
			st, ctx := s.open(t)
			main := grayBase(ctx, t, st, ref)
			before := time.Now().Add(-time.Minute)
			g := mustCreateGray(ctx, t, st, ref, newGray(2))
			if configsvc.ValidateGrayID(g.ID) != nil || g.State != configsvc.GrayActive || g.Version != 1 || g.BaseRevision != 2 ||
				g.Name != "bigger pool" || g.Author != "alice" || g.Ref != ref {
				t.Fatalf("CreateGray = %+v", g)
			}
			if g.Created.Before(before) || g.Created.Location() != time.UTC || !g.Updated.Equal(g.Created) {
				t.Fatalf("created %v, updated %v: want now, in UTC", g.Created, g.Updated)
			}
			// Main did not move; the head carries the gray's summary.
			wantUnchanged(ctx, t, st, ref, 2, main)
			h := wantHeadGrays(ctx, t, st, ref, g)
			if !slices.Equal(h.Grays[0].Files, []string{"a.yaml", "c.txt", "new.txt"}) || h.Grays[0].Selector.Percent != 10 {
				t.Fatalf("head summary %+v", h.Grays[0])
			}

			got := mustGray(ctx, t, st, ref, g.ID)
			wantChanges(t, "Gray's changes", got.Changes, newGray(2).Changes)
			if got.State != configsvc.GrayActive || got.Version != 1 || len(got.MainChanged) != 0 || !got.Created.Equal(g.Created) ||
				!slices.Equal(got.Selector.Instances, []string{"orders-7"}) || got.Message != "try a bigger pool" {
				t.Fatalf("Gray = %+v", got)
			}
			list := mustGrays(ctx, t, st, ref)
			if len(list) != 1 || list[0].ID != g.ID || list[0].State != configsvc.GrayActive {
				t.Fatalf("Grays = %v, want the one gray", grayIDs(list))
			}
			for _, c := range list[0].Changes {
				if c.Content != nil {
					t.Fatalf("Grays lists %s with content; the list carries none", c.File)
				}
			}

			_, err := st.Gray(ctx, ref, configsvc.NewGrayID())
			wantErr(t, "Gray of an unknown id", err, configsvc.ErrNotFound)
			_, err = st.Gray(ctx, ref, "../head")
			wantErr(t, "Gray of a malformed id", err, configsvc.ErrInvalid)
			missing := configsvc.Ref{Kind: ref.Kind, Name: "ghost"}
			_, err = st.CreateGray(ctx, missing, newGray(0))
			wantErr(t, "CreateGray on a missing ref", err, configsvc.ErrNotFound)
			_, err = st.Grays(ctx, missing)
			wantErr(t, "Grays of a missing ref", err, configsvc.ErrNotFound)
		})
	}
}

func (s *suite) testGrayConflict(t *testing.T) {
	st, ctx := s.open(t)
	ref := configsvc.Service("orders")
	main := grayBase(ctx, t, st, ref)
	g1 := mustCreateGray(ctx, t, st, ref, configsvc.Gray{BaseRevision: 2, Changes: []configsvc.Change{put("a.yaml", "pool: 20\n")}})
	// A second gray on a file g1 holds is refused, naming the file and g1.
	_, err := st.CreateGray(ctx, ref, configsvc.Gray{BaseRevision: 2, Changes: []configsvc.Change{put("x.txt", "x"), put("a.yaml", "pool: 30\n")}})
	var ce *configsvc.GrayConflictError
	if !errors.Is(err, configsvc.ErrConflict) || !errors.As(err, &ce) || ce.File != "a.yaml" || ce.GrayID != g1.ID {
		t.Fatalf("a gray on a held file = %v, want a *GrayConflictError on a.yaml naming %s", err, g1.ID)
	}
	wantHeadGrays(ctx, t, st, ref, g1)
	if list := mustGrays(ctx, t, st, ref); len(list) != 1 {
		t.Fatalf("after a refused gray, Grays = %v", grayIDs(list))
	}
	// Grays on other files coexist; the head lists both, sorted by id.
	g2 := mustCreateGray(ctx, t, st, ref, configsvc.Gray{BaseRevision: 2, Changes: []configsvc.Change{put("b.json", `{"v":3}`)}})
	g3 := mustCreateGray(ctx, t, st, ref, configsvc.Gray{BaseRevision: 2, Changes: []configsvc.Change{del("c.txt")}})
	wantHeadGrays(ctx, t, st, ref, g1, g2, g3)
	wantUnchanged(ctx, t, st, ref, 2, main)
	if list := mustGrays(ctx, t, st, ref); len(list) != 3 {
		t.Fatalf("Grays = %v, want three", grayIDs(list))
	}
	// Once g1 ends, its file is free again.
	if _, _, err := st.EndGray(ctx, ref, g1.ID, 1, configsvc.GrayEnd{State: configsvc.GrayAbandoned}); err != nil {
		t.Fatalf("abandon: %v", err)
	}
	g4 := mustCreateGray(ctx, t, st, ref, configsvc.Gray{BaseRevision: 2, Changes: []configsvc.Change{put("a.yaml", "pool: 40\n")}})
	wantHeadGrays(ctx, t, st, ref, g2, g3, g4)
}

func (s *suite) testGrayRefused(t *testing.T) {
	st, ctx := s.open(t)
	ref := configsvc.Service("orders")
	main := grayBase(ctx, t, st, ref)
	held := mustCreateGray(ctx, t, st, ref, configsvc.Gray{BaseRevision: 2, Changes: []configsvc.Change{put("held.txt", "h")}})
	text := func(n int) []byte { return bytes.Repeat([]byte("a"), n) }
	for _, tc := range []struct {
		name   string
		g      configsvc.Gray
		target error
	}{
		{"StaleBase", configsvc.Gray{BaseRevision: 1, Changes: []configsvc.Change{put("a.yaml", "x: 1\n")}}, configsvc.ErrConflict},
		{"FutureBase", configsvc.Gray{BaseRevision: 3, Changes: []configsvc.Change{put("a.yaml", "x: 1\n")}}, configsvc.ErrConflict},
		{"DeleteMissingFile", configsvc.Gray{BaseRevision: 2, Changes: []configsvc.Change{del("nope.txt")}}, configsvc.ErrInvalid},
		{"NoChanges", configsvc.Gray{BaseRevision: 2}, configsvc.ErrInvalid},
		{"BadFileName", configsvc.Gray{BaseRevision: 2, Changes: []configsvc.Change{put("../x", "x")}}, configsvc.ErrInvalid},
		{"FileTwice", configsvc.Gray{BaseRevision: 2, Changes: []configsvc.Change{put("a.yaml", "1"), put("a.yaml", "2")}}, configsvc.ErrInvalid},
		{"BadSelector", configsvc.Gray{BaseRevision: 2, Changes: []configsvc.Change{put("a.yaml", "1")}, Selector: configsvc.Selector{Percent: 12.345}}, configsvc.ErrInvalid},
		{"EmptyLabelMap", configsvc.Gray{BaseRevision: 2, Changes: []configsvc.Change{put("a.yaml", "1")}, Selector: configsvc.Selector{Labels: []map[string]string{{}}}}, configsvc.ErrInvalid},
		{"FileOverLimit", configsvc.Gray{BaseRevision: 2, Changes: []configsvc.Change{{File: "big.txt", Content: text(configsvc.MaxFileSize + 1)}}}, configsvc.ErrTooLarge},
		{"ChangesetOverLimit", configsvc.Gray{BaseRevision: 2, Changes: []configsvc.Change{
			{File: "big1.txt", Content: text(configsvc.MaxFileSize)},
			{File: "big2.txt", Content: text(configsvc.MaxChangesetSize - configsvc.MaxFileSize + 1)}}}, configsvc.ErrTooLarge},
		{"HeldFile", configsvc.Gray{BaseRevision: 2, Changes: []configsvc.Change{put("held.txt", "again")}}, configsvc.ErrConflict},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := st.CreateGray(ctx, ref, tc.g)
			wantErr(t, "CreateGray", err, tc.target)
			wantHeadGrays(ctx, t, st, ref, held)
			if list := mustGrays(ctx, t, st, ref); len(list) != 1 {
				t.Fatalf("a refused gray left %v", grayIDs(list))
			}
			wantUnchanged(ctx, t, st, ref, 2, main)
		})
	}
}

func (s *suite) testGrayUpdate(t *testing.T) {
	st, ctx := s.open(t)
	ref := configsvc.Service("orders")
	main := grayBase(ctx, t, st, ref)
	g := mustCreateGray(ctx, t, st, ref, newGray(2))
	sel := configsvc.Selector{Labels: []map[string]string{{"zone": "b"}}, Percent: 25.5}
	up, err := st.UpdateGray(ctx, ref, g.ID, 1, func(x *configsvc.Gray) error {
		x.Selector = sel
		return nil
	})
	if err != nil || up.Version != 2 || up.Selector.Percent != 25.5 || up.Updated.Before(g.Updated) {
		t.Fatalf("UpdateGray = %+v, %v; want version 2 with the new selector", up, err)
	}
	h := wantHeadGrays(ctx, t, st, ref, up)
	if h.Grays[0].Version != 2 || h.Grays[0].Selector.Labels[0]["zone"] != "b" {
		t.Fatalf("head summary after the update: %+v", h.Grays[0])
	}
	got := mustGray(ctx, t, st, ref, g.ID)
	if got.Version != 2 || got.Selector.Percent != 25.5 || len(got.Selector.Instances) != 0 {
		t.Fatalf("Gray after the update = %+v", got)
	}
	wantChanges(t, "changes after a selector update", got.Changes, newGray(2).Changes)
	wantUnchanged(ctx, t, st, ref, 2, main)

	// Compare-and-set on the version.
	_, err = st.UpdateGray(ctx, ref, g.ID, 1, func(x *configsvc.Gray) error { x.Selector.Percent = 50; return nil })
	wantErr(t, "UpdateGray at a stale version", err, configsvc.ErrConflict)
	boom := errors.New("refused by fn")
	_, err = st.UpdateGray(ctx, ref, g.ID, 2, func(*configsvc.Gray) error { return boom })
	if !errors.Is(err, boom) {
		t.Fatalf("fn's error = %v, want it passed on", err)
	}
	_, err = st.UpdateGray(ctx, ref, g.ID, 2, func(x *configsvc.Gray) error { x.Changes[0].Content = []byte("sneaky"); return nil })
	wantErr(t, "UpdateGray changing the content", err, configsvc.ErrInvalid)
	_, err = st.UpdateGray(ctx, ref, g.ID, 2, func(x *configsvc.Gray) error { x.Selector.Percent = 101; return nil })
	wantErr(t, "UpdateGray to a bad selector", err, configsvc.ErrInvalid)
	_, err = st.UpdateGray(ctx, ref, configsvc.NewGrayID(), 1, func(*configsvc.Gray) error { return nil })
	wantErr(t, "UpdateGray of an unknown gray", err, configsvc.ErrNotFound)
	if got := mustGray(ctx, t, st, ref, g.ID); got.Version != 2 || got.Selector.Percent != 25.5 {
		t.Fatalf("refused updates changed the gray: %+v", got)
	}
	wantHeadGrays(ctx, t, st, ref, up)

	// A rollout is stored on the gray with its state.
	since := time.Now().UTC().Truncate(time.Millisecond)
	up, err = st.UpdateGray(ctx, ref, g.ID, 2, func(x *configsvc.Gray) error {
		x.Rollout = &configsvc.Rollout{Steps: []configsvc.RolloutStep{{Percent: 5, Bake: configsvc.Duration(time.Minute)}, {Percent: 100}},
			MaxErrorRate: 0.02, ApplyTimeout: configsvc.Duration(time.Minute),
			State: configsvc.RolloutState{State: configsvc.RolloutApplying, Percent: 5, Since: since}}
		x.Selector.Percent = 5
		return nil
	})
	if err != nil {
		t.Fatalf("UpdateGray with a rollout: %v", err)
	}
	got = mustGray(ctx, t, st, ref, g.ID)
	if got.Version != 3 || got.Rollout == nil || !got.Rollout.Active() || len(got.Rollout.Steps) != 2 ||
		time.Duration(got.Rollout.Steps[0].Bake) != time.Minute || !got.Rollout.State.Since.Equal(since) {
		t.Fatalf("Gray with a rollout = %+v (rollout %+v)", got, got.Rollout)
	}
	wantHeadGrays(ctx, t, st, ref, up)
}

func (s *suite) testGrayAbandon(t *testing.T) {
	st, ctx := s.open(t)
	ref := configsvc.Service("orders")
	main := grayBase(ctx, t, st, ref)
	g := mustCreateGray(ctx, t, st, ref, newGray(2))
	other := mustCreateGray(ctx, t, st, ref, configsvc.Gray{BaseRevision: 2, Changes: []configsvc.Change{put("b.json", "{}")}})
	_, _, err := st.EndGray(ctx, ref, g.ID, 7, configsvc.GrayEnd{State: configsvc.GrayAbandoned})
	wantErr(t, "EndGray at a stale version", err, configsvc.ErrConflict)
	ended, rev, err := st.EndGray(ctx, ref, g.ID, 1, configsvc.GrayEnd{State: configsvc.GrayAbandoned, Reason: "pool too big"})
	if err != nil || rev != nil || ended.State != configsvc.GrayAbandoned || ended.Version != 2 || ended.Ended.IsZero() || ended.EndReason != "pool too big" {
		t.Fatalf("abandon = %+v, %v, %v", ended, rev, err)
	}
	wantUnchanged(ctx, t, st, ref, 2, main)
	wantHeadGrays(ctx, t, st, ref, other)
	got := mustGray(ctx, t, st, ref, g.ID)
	if got.State != configsvc.GrayAbandoned || got.EndReason != "pool too big" || got.MainChanged != nil {
		t.Fatalf("an abandoned gray reads %+v", got)
	}
	wantChanges(t, "an abandoned gray's changes", got.Changes, newGray(2).Changes)
	if ids := grayIDs(mustGrays(ctx, t, st, ref)); !slices.Equal(ids, []string{other.ID + ":active", g.ID + ":abandoned"}) {
		t.Fatalf("Grays = %v, want the active one first, then the abandoned one", ids)
	}
	// An ended gray never changes again.
	_, err = st.UpdateGray(ctx, ref, g.ID, 2, func(x *configsvc.Gray) error { x.Selector.Percent = 1; return nil })
	if !errors.Is(err, configsvc.ErrConflict) || !strings.Contains(err.Error(), "abandoned") {
		t.Fatalf("UpdateGray of an abandoned gray = %v, want ErrConflict saying it is abandoned", err)
	}
	_, _, err = st.EndGray(ctx, ref, g.ID, 2, configsvc.GrayEnd{State: configsvc.GrayPromoted, Promote: &configsvc.Changeset{Base: 2}})
	if !errors.Is(err, configsvc.ErrConflict) || !strings.Contains(err.Error(), "abandoned") {
		t.Fatalf("promoting an abandoned gray = %v, want ErrConflict saying it is abandoned", err)
	}
	wantUnchanged(ctx, t, st, ref, 2, main)
}

func (s *suite) testGrayPromote(t *testing.T) {
	for _, ref := range []configsvc.Ref{configsvc.Service("orders"), configsvc.Group("redis-common")} {
		t.Run(ref.Kind.String(), func(t *testing.T) {
			st, ctx := s.open(t)
			main := grayBase(ctx, t, st, ref)
			g := mustCreateGray(ctx, t, st, ref, newGray(2))
			other := mustCreateGray(ctx, t, st, ref, configsvc.Gray{BaseRevision: 2, Changes: []configsvc.Change{put("b.json", "{}")}})

			// On a base that is not the head: nothing happens.
			_, _, err := st.EndGray(ctx, ref, g.ID, 1, configsvc.GrayEnd{State: configsvc.GrayPromoted, Promote: &configsvc.Changeset{Base: 1}})
			wantErr(t, "promote on a stale base", err, configsvc.ErrConflict)
			wantUnchanged(ctx, t, st, ref, 2, main)
			wantHeadGrays(ctx, t, st, ref, g, other)

			ended, rev, err := st.EndGray(ctx, ref, g.ID, 1, configsvc.GrayEnd{State: configsvc.GrayPromoted, Reason: "looks good",
				Promote: &configsvc.Changeset{Base: 2, Author: "bob", Message: "ship the bigger pool"}})
			if err != nil {
				t.Fatalf("promote: %v", err)
			}
			if rev == nil || rev.Number != 3 || rev.Author != "bob" || rev.Message != "ship the bigger pool" || rev.Time.IsZero() {
				t.Fatalf("promote revision = %+v", rev)
			}
			if ended.State != configsvc.GrayPromoted || ended.EndedRevision != 3 || ended.Version != 2 || ended.EndReason != "looks good" {
				t.Fatalf("promoted gray = %+v", ended)
			}
			// Main is main + the gray: a.yaml written, c.txt deleted, new.txt added.
			want := files("a.yaml", "pool: 50\n", "b.json", `{"v":2}`, "new.txt", "added")
			wantSnapshot(ctx, t, st, ref, 0, want)
			wantSnapshot(ctx, t, st, ref, 2, main)
			r3, err := st.Revision(ctx, ref, 3)
			if err != nil {
				t.Fatalf("Revision 3: %v", err)
			}
			wantChanges(t, "the promote's revision", r3.Changes, newGray(2).Changes)
			h := wantHeadGrays(ctx, t, st, ref, other)
			if h.Revision != 3 || h.Author != "bob" {
				t.Fatalf("head after the promote: revision %d author %q", h.Revision, h.Author)
			}
			if got := mustGray(ctx, t, st, ref, g.ID); got.State != configsvc.GrayPromoted || got.EndedRevision != 3 {
				t.Fatalf("Gray after the promote = %+v", got)
			}
			// A publish after it builds on it.
			mustPublish(ctx, t, st, ref, 3, put("d.txt", "d"))
			wantHeadGrays(ctx, t, st, ref, other)

			// Without a message the revision names the gray.
			_, rev, err = st.EndGray(ctx, ref, other.ID, 1, configsvc.GrayEnd{State: configsvc.GrayPromoted, Promote: &configsvc.Changeset{Base: 4}})
			if err != nil || !strings.Contains(rev.Message, other.ID) {
				t.Fatalf("promote without a message = %+v, %v; want a message naming %s", rev, err, other.ID)
			}
		})
	}
}

// testGrayPromoteRace promotes a gray while another publish, and another
// end of the same gray, race it: exactly one of each pair wins, and the
// store is never half-way (a promoted gray without its revision, or a
// revision with the gray still active).
func (s *suite) testGrayPromoteRace(t *testing.T) {
	st, ctx := s.open(t)
	ref := configsvc.Service("orders")
	grayBase(ctx, t, st, ref)
	for round := range 4 {
		h := mustHead(ctx, t, st, ref)
		g := mustCreateGray(ctx, t, st, ref, configsvc.Gray{BaseRevision: h.Revision, Changes: []configsvc.Change{put("a.yaml", fmt.Sprintf("round: %d\n", round))}})
		var wg sync.WaitGroup
		var promoteErr, publishErr, abandonErr error
		start := make(chan struct{})
		wg.Go(func() {
			<-start
			_, _, promoteErr = st.EndGray(ctx, ref, g.ID, 1, configsvc.GrayEnd{State: configsvc.GrayPromoted, Promote: &configsvc.Changeset{Base: h.Revision}})
		})
		wg.Go(func() {
			<-start
			_, publishErr = st.Publish(ctx, ref, configsvc.Changeset{Base: h.Revision, Changes: []configsvc.Change{put("b.json", fmt.Sprintf(`{"round":%d}`, round))}})
		})
		if round%2 == 1 {
			wg.Go(func() {
				<-start
				_, _, abandonErr = st.EndGray(ctx, ref, g.ID, 1, configsvc.GrayEnd{State: configsvc.GrayAbandoned})
			})
		}
		close(start)
		wg.Wait()
		for _, err := range []error{promoteErr, publishErr, abandonErr} {
			if err != nil && !errors.Is(err, configsvc.ErrConflict) {
				t.Fatalf("round %d: %v, want success or ErrConflict", round, err)
			}
		}
		if (promoteErr == nil) == (publishErr == nil) {
			t.Fatalf("round %d: promote %v, publish %v: want exactly one to win base %d", round, promoteErr, publishErr, h.Revision)
		}
		if round%2 == 1 && promoteErr == nil && abandonErr == nil {
			t.Fatalf("round %d: both the promote and the abandon of one gray succeeded", round)
		}
		now := mustHead(ctx, t, st, ref)
		got := mustGray(ctx, t, st, ref, g.ID)
		if now.Revision != h.Revision+1 {
			t.Fatalf("round %d: head %d, want %d (one winner)", round, now.Revision, h.Revision+1)
		}
		switch got.State {
		case configsvc.GrayPromoted:
			content, _, err := st.File(ctx, ref, "a.yaml", got.EndedRevision)
			if err != nil || string(content) != fmt.Sprintf("round: %d\n", round) || got.EndedRevision != now.Revision || len(now.Grays) != 0 {
				t.Fatalf("round %d: promoted to %d but a.yaml there = %q, %v; head %d with grays %v", round, got.EndedRevision, content, err, now.Revision, now.Grays)
			}
		case configsvc.GrayActive, configsvc.GrayAbandoned:
			if promoteErr == nil {
				t.Fatalf("round %d: the promote succeeded but the gray is %s", round, got.State)
			}
			if len(now.Grays) != map[bool]int{true: 1, false: 0}[got.State == configsvc.GrayActive] {
				t.Fatalf("round %d: gray %s, head grays %v", round, got.State, showSummaries(now.Grays))
			}
			if got.State == configsvc.GrayActive {
				if _, _, err := st.EndGray(ctx, ref, g.ID, got.Version, configsvc.GrayEnd{State: configsvc.GrayAbandoned}); err != nil {
					t.Fatalf("round %d: abandon after the race: %v", round, err)
				}
			}
		}
	}
}

func (s *suite) testGrayMainMoves(t *testing.T) {
	st, ctx := s.open(t)
	ref := configsvc.Service("orders")
	grayBase(ctx, t, st, ref)
	g := mustCreateGray(ctx, t, st, ref, newGray(2)) // a.yaml, c.txt (delete), new.txt
	// Main moves: b.json (not the gray's), then a.yaml, then new.txt
	// appears in main too.
	mustPublish(ctx, t, st, ref, 2, put("b.json", `{"v":3}`))
	if got := mustGray(ctx, t, st, ref, g.ID); len(got.MainChanged) != 0 {
		t.Fatalf("MainChanged after main changed another file = %v, want none", got.MainChanged)
	}
	mustPublish(ctx, t, st, ref, 3, put("a.yaml", "pool: 12\n"))
	mustPublish(ctx, t, st, ref, 4, put("new.txt", "main's"))
	// Publishing keeps the gray on the head.
	wantHeadGrays(ctx, t, st, ref, g)
	got := mustGray(ctx, t, st, ref, g.ID)
	if !slices.Equal(got.MainChanged, []string{"a.yaml", "new.txt"}) {
		t.Fatalf("MainChanged = %v, want [a.yaml new.txt]", got.MainChanged)
	}
	if list := mustGrays(ctx, t, st, ref); !slices.Equal(list[0].MainChanged, []string{"a.yaml", "new.txt"}) {
		t.Fatalf("Grays()[0].MainChanged = %v, want [a.yaml new.txt]", list[0].MainChanged)
	}
	// Main deletes c.txt itself: the promote leaves that deletion out.
	mustPublish(ctx, t, st, ref, 5, del("c.txt"))
	if got := mustGray(ctx, t, st, ref, g.ID); !slices.Equal(got.MainChanged, []string{"a.yaml", "c.txt", "new.txt"}) {
		t.Fatalf("MainChanged after main deleted c.txt = %v", got.MainChanged)
	}
	_, rev, err := st.EndGray(ctx, ref, g.ID, 1, configsvc.GrayEnd{State: configsvc.GrayPromoted, Promote: &configsvc.Changeset{Base: 6}})
	if err != nil {
		t.Fatalf("promote on a moved main: %v", err)
	}
	if rev.Number != 7 || len(rev.Changes) != 2 {
		t.Fatalf("promote revision %d with %v, want 7 writing a.yaml and new.txt", rev.Number, rev.Changes)
	}
	wantSnapshot(ctx, t, st, ref, 0, files("a.yaml", "pool: 50\n", "b.json", `{"v":3}`, "new.txt", "added"))
}

// nextEvent returns the next watch event that is not a transient error.
func (s *suite) nextEvent(t *testing.T, ch <-chan configsvc.Event) configsvc.Event {
	t.Helper()
	ev, ok := s.next(t, ch)
	if !ok {
		t.Fatal("watch channel closed, want an event")
	}
	if ev.Err != nil {
		t.Fatalf("watch event error %v", ev.Err)
	}
	return ev
}

// wantGraysEvent reads events until a GraysChanged one carries exactly
// want (id and version, in id order); GraysChanged events with other sets
// before it are allowed (changes may be coalesced), revisions are not.
func (s *suite) wantGraysEvent(t *testing.T, ch <-chan configsvc.Event, want ...configsvc.Gray) {
	t.Helper()
	var exp []configsvc.GraySummary
	for _, g := range want {
		exp = configsvc.WithGraySummary(exp, g.Summary())
	}
	deadline := time.Now().Add(s.opts.Timeout)
	for time.Now().Before(deadline) {
		ev := s.nextEvent(t, ch)
		if !ev.GraysChanged {
			t.Fatalf("watch event %+v while waiting for grays %s", ev, showSummaries(exp))
		}
		if configsvc.SameGrays(ev.Grays, exp) {
			for i := range exp {
				if !slices.Equal(ev.Grays[i].Files, exp[i].Files) || ev.Grays[i].Selector.Percent != exp[i].Selector.Percent {
					t.Fatalf("GraysChanged summary %+v, want %+v", ev.Grays[i], exp[i])
				}
			}
			return
		}
	}
	t.Fatalf("no GraysChanged event with %s within %v", showSummaries(exp), s.opts.Timeout)
}

func (s *suite) testGrayWatch(t *testing.T) {
	for _, ref := range []configsvc.Ref{configsvc.Service("orders"), configsvc.Group("redis-common")} {
		t.Run(ref.Kind.String(), func(t *testing.T) {
			st, ctx := s.open(t)
			grayBase(ctx, t, st, ref)
			ch := st.Watch(ctx, ref, 2)
			g := mustCreateGray(ctx, t, st, ref, newGray(2))
			s.wantGraysEvent(t, ch, g)
			up, err := st.UpdateGray(ctx, ref, g.ID, 1, func(x *configsvc.Gray) error { x.Selector.Percent = 50; return nil })
			if err != nil {
				t.Fatal(err)
			}
			s.wantGraysEvent(t, ch, up)
			// A publish to main is a revision event; the gray stays.
			c := put("b.json", `{"v":3}`)
			mustPublish(ctx, t, st, ref, 2, c)
			if ev := s.nextEvent(t, ch); ev.Revision == nil || ev.Revision.Number != 3 {
				t.Fatalf("after a publish the watch sent %+v, want revision 3", ev)
			}
			other := mustCreateGray(ctx, t, st, ref, configsvc.Gray{BaseRevision: 3, Changes: []configsvc.Change{put("b.json", "{}")}})
			s.wantGraysEvent(t, ch, up, other)
			// A promote: its revision first, then the set without the gray,
			// so a watcher never falls back to the old main in between.
			_, _, err = st.EndGray(ctx, ref, g.ID, 2, configsvc.GrayEnd{State: configsvc.GrayPromoted, Promote: &configsvc.Changeset{Base: 3}})
			if err != nil {
				t.Fatal(err)
			}
			ev := s.nextEvent(t, ch)
			if ev.Revision == nil || ev.Revision.Number != 4 {
				t.Fatalf("after a promote the watch sent %+v first, want revision 4", ev)
			}
			wantChanges(t, "watched promote", ev.Revision.Changes, newGray(2).Changes)
			s.wantGraysEvent(t, ch, other)
			if _, _, err := st.EndGray(ctx, ref, other.ID, 1, configsvc.GrayEnd{State: configsvc.GrayAbandoned}); err != nil {
				t.Fatal(err)
			}
			s.wantGraysEvent(t, ch)
			// A watch opened later starts from the head's set: no event
			// for grays it already knows.
			later := st.Watch(ctx, ref, 4)
			mustPublish(ctx, t, st, ref, 4, put("z.txt", "z"))
			if ev := s.nextEvent(t, later); ev.Revision == nil || ev.Revision.Number != 5 {
				t.Fatalf("a new watch sent %+v, want revision 5", ev)
			}
		})
	}
}

func (s *suite) testGrayDeleteRef(t *testing.T) {
	st, ctx := s.open(t)
	ref := configsvc.Service("orders")
	grayBase(ctx, t, st, ref)
	g := mustCreateGray(ctx, t, st, ref, newGray(2))
	ended := mustCreateGray(ctx, t, st, ref, configsvc.Gray{BaseRevision: 2, Changes: []configsvc.Change{put("b.json", "{}")}})
	if _, _, err := st.EndGray(ctx, ref, ended.ID, 1, configsvc.GrayEnd{State: configsvc.GrayAbandoned}); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, ref); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	_, err := st.Gray(ctx, ref, g.ID)
	wantErr(t, "Gray of a deleted service", err, configsvc.ErrNotFound)
	_, err = st.Grays(ctx, ref)
	wantErr(t, "Grays of a deleted service", err, configsvc.ErrNotFound)
	mustCreate(ctx, t, st, ref)
	if list := mustGrays(ctx, t, st, ref); len(list) != 0 {
		t.Fatalf("a service created again lists the old grays %v", grayIDs(list))
	}
	_, err = st.Gray(ctx, ref, g.ID)
	wantErr(t, "Gray of the old service in the new one", err, configsvc.ErrNotFound)
	if h := mustHead(ctx, t, st, ref); len(h.Grays) != 0 {
		t.Fatalf("a service created again has head grays %v", h.Grays)
	}
	mustCreateGray(ctx, t, st, ref, configsvc.Gray{BaseRevision: 0, Changes: []configsvc.Change{put("a.yaml", "fresh: true\n")}})
}

func (s *suite) testGrayHistory(t *testing.T) {
	st, ctx := s.open(t)
	ref := configsvc.Service("orders")
	grayBase(ctx, t, st, ref)
	active := mustCreateGray(ctx, t, st, ref, configsvc.Gray{BaseRevision: 2, Changes: []configsvc.Change{put("b.json", "{}")}})
	var ended []string
	for i := range configsvc.MaxEndedGrays + 2 {
		g := mustCreateGray(ctx, t, st, ref, configsvc.Gray{BaseRevision: 2, Changes: []configsvc.Change{put("a.yaml", fmt.Sprintf("n: %d\n", i))}})
		if _, _, err := st.EndGray(ctx, ref, g.ID, 1, configsvc.GrayEnd{State: configsvc.GrayAbandoned}); err != nil {
			t.Fatalf("abandon %d: %v", i, err)
		}
		ended = append(ended, g.ID)
	}
	list := mustGrays(ctx, t, st, ref)
	if len(list) != configsvc.MaxEndedGrays+1 || list[0].ID != active.ID {
		t.Fatalf("Grays lists %d (first %s), want the active one and the newest %d ended", len(list), list[0].ID, configsvc.MaxEndedGrays)
	}
	for i, g := range list[1:] {
		if want := ended[len(ended)-1-i]; g.ID != want {
			t.Fatalf("Grays()[%d] = %s, want %s: ended grays newest first", i+1, g.ID, want)
		}
	}
	for _, id := range ended[:2] {
		_, err := st.Gray(ctx, ref, id)
		wantErr(t, "Gray of an ended gray dropped from history", err, configsvc.ErrNotFound)
	}
	wantHeadGrays(ctx, t, st, ref, active)
}

// testGrayLimits creates and promotes a gray of exactly the changeset
// limit: it fits every store's atomic step (ZooKeeper's transaction
// limit) with the head and the revision.
func (s *suite) testGrayLimits(t *testing.T) {
	st, ctx := s.open(t)
	ref := configsvc.Service("orders")
	grayBase(ctx, t, st, ref)
	one := bytes.Repeat([]byte("o"), configsvc.MaxFileSize)
	two := bytes.Repeat([]byte("t"), configsvc.MaxChangesetSize-configsvc.MaxFileSize)
	g := mustCreateGray(ctx, t, st, ref, configsvc.Gray{BaseRevision: 2, Changes: []configsvc.Change{{File: "one.txt", Content: one}, {File: "two.txt", Content: two}}})
	got := mustGray(ctx, t, st, ref, g.ID)
	wantChanges(t, "a gray at the limit", got.Changes, []configsvc.Change{{File: "one.txt", Content: one}, {File: "two.txt", Content: two}})
	_, rev, err := st.EndGray(ctx, ref, g.ID, 1, configsvc.GrayEnd{State: configsvc.GrayPromoted, Promote: &configsvc.Changeset{Base: 2}})
	if err != nil {
		t.Fatalf("promote of a gray at the changeset limit: %v", err)
	}
	content, _, err := st.File(ctx, ref, "two.txt", rev.Number)
	if err != nil || !bytes.Equal(content, two) {
		t.Fatalf("two.txt after the promote: %d bytes, %v", len(content), err)
	}

	// At most MaxActiveGrays active grays per service.
	for i := range configsvc.MaxActiveGrays {
		mustCreateGray(ctx, t, st, ref, configsvc.Gray{BaseRevision: 3, Changes: []configsvc.Change{put(fmt.Sprintf("f%d.txt", i), "x")}})
	}
	_, err = st.CreateGray(ctx, ref, configsvc.Gray{BaseRevision: 3, Changes: []configsvc.Change{put("one-more.txt", "x")}})
	var ce *configsvc.CountError
	if !errors.Is(err, configsvc.ErrTooMany) || !errors.As(err, &ce) || ce.Limit != configsvc.MaxActiveGrays {
		t.Fatalf("gray %d = %v, want a *CountError over %d", configsvc.MaxActiveGrays+1, err, configsvc.MaxActiveGrays)
	}
	if h := mustHead(ctx, t, st, ref); len(h.Grays) != configsvc.MaxActiveGrays {
		t.Fatalf("head carries %d grays, want %d", len(h.Grays), configsvc.MaxActiveGrays)
	}
}

// testGrayInstanceReports registers an instance with its gray reports
// and reads them back.
func (s *suite) testGrayInstanceReports(t *testing.T) {
	st, ctx := s.open(t)
	mustCreate(ctx, t, st, configsvc.Service("orders"))
	in := instance("orders", "orders-1")
	in.Grays = map[string]configsvc.GrayStatus{configsvc.NewGrayID(): {Status: configsvc.GrayApplied, Version: 3}}
	l := mustRegister(ctx, t, st, in)
	wantInstances(ctx, t, st, "orders", in)
	in.Grays[configsvc.NewGrayID()] = configsvc.GrayStatus{Status: configsvc.GrayRejected, Reason: "a.yaml: bad pool", Version: 1}
	if err := l.Update(ctx, in); err != nil {
		t.Fatalf("Update: %v", err)
	}
	wantInstances(ctx, t, st, "orders", in)
	bad := in
	bad.Grays = map[string]configsvc.GrayStatus{"not-a-gray": {Status: configsvc.GrayApplied}}
	wantErr(t, "Update with a malformed gray report", l.Update(ctx, bad), configsvc.ErrInvalid)
}

func (s *suite) testGrayValidating(t *testing.T) {
	setup := func(t *testing.T, extra configsvc.Validator) (configsvc.Store, *configsvc.ValidatingStore, context.Context, configsvc.Ref, map[string][]byte) {
		t.Helper()
		st, ctx := s.open(t)
		ref := configsvc.Service("orders")
		main := grayBase(ctx, t, st, ref)
		return st, configsvc.Validating(st, configsvc.Validators(format.Validator{}, extra)), ctx, ref, main
	}

	t.Run("ContentRefused", func(t *testing.T) {
		st, vs, ctx, ref, main := setup(t, nil)
		bad := configsvc.Gray{BaseRevision: 2, Changes: []configsvc.Change{put("b.json", "{\n  \"v\": ]\n}")}}
		if err := vs.CheckGray(ctx, ref, bad); !errors.As(err, new(*configsvc.ContentError)) {
			t.Fatalf("CheckGray of bad JSON = %v, want a *ContentError", err)
		}
		_, err := vs.CreateGray(ctx, ref, bad)
		var pe *configsvc.ParseError
		if !errors.As(err, new(*configsvc.ContentError)) || !errors.As(err, &pe) || pe.File != "b.json" || pe.Line != 2 {
			t.Fatalf("CreateGray of bad JSON = %v, want a *ContentError with the parse error at b.json:2", err)
		}
		if list := mustGrays(ctx, t, st, ref); len(list) != 0 {
			t.Fatalf("a refused gray was written: %v", grayIDs(list))
		}
		wantUnchanged(ctx, t, st, ref, 2, main)
		if _, err := vs.CreateGray(ctx, ref, configsvc.Gray{BaseRevision: 2, Changes: []configsvc.Change{put("b.json", `{"v":9}`)}}); err != nil {
			t.Fatalf("CreateGray of valid JSON: %v", err)
		}
	})

	// The Validator sees the tree main + the gray: here it requires that
	// c.txt exists, which a gray deleting it would break.
	t.Run("ValidatorSeesMainPlusGray", func(t *testing.T) {
		needC := configsvc.ValidatorFunc(func(ctx context.Context, r configsvc.Reader, ref configsvc.Ref, cs configsvc.Changeset) error {
			h, err := r.Head(ctx, ref)
			if err != nil {
				return err
			}
			_, inMain := h.Files["c.txt"]
			for _, c := range cs.Changes {
				if c.File == "c.txt" {
					inMain = !c.Delete
				}
			}
			if !inMain {
				return &configsvc.FieldError{Field: "c.txt", Msg: "is required"}
			}
			return nil
		})
		st, vs, ctx, ref, _ := setup(t, needC)
		_, err := vs.CreateGray(ctx, ref, newGray(2)) // deletes c.txt
		if !errors.As(err, new(*configsvc.ContentError)) || !strings.Contains(err.Error(), "c.txt") {
			t.Fatalf("a gray deleting a required file = %v, want a *ContentError on c.txt", err)
		}
		// Created past the validation, its promote is validated as a publish.
		g := mustCreateGray(ctx, t, st, ref, newGray(2))
		_, _, err = vs.EndGray(ctx, ref, g.ID, 1, configsvc.GrayEnd{State: configsvc.GrayPromoted, Promote: &configsvc.Changeset{}})
		if !errors.As(err, new(*configsvc.ContentError)) {
			t.Fatalf("promote of a gray the validator refuses = %v, want a *ContentError", err)
		}
		if got := mustGray(ctx, t, st, ref, g.ID); got.State != configsvc.GrayActive {
			t.Fatalf("a refused promote left the gray %s", got.State)
		}
		wantHeadGrays(ctx, t, st, ref, g)
		if _, err := vs.CheckPromote(ctx, ref, g.ID, 1, configsvc.GrayEnd{}); !errors.As(err, new(*configsvc.ContentError)) {
			t.Fatalf("CheckPromote = %v, want a *ContentError", err)
		}
		// Abandoning is not validated.
		if _, _, err := vs.EndGray(ctx, ref, g.ID, 1, configsvc.GrayEnd{State: configsvc.GrayAbandoned}); err != nil {
			t.Fatalf("abandon through the validating store: %v", err)
		}
	})

	// Main moves between the validation of a promote and its write: the
	// promote is validated again on the new head and lands on it.
	t.Run("PromoteRevalidatedWhenMainMoves", func(t *testing.T) {
		var calls atomic.Int32
		var st configsvc.Store
		var ref configsvc.Ref
		sneak := configsvc.ValidatorFunc(func(ctx context.Context, _ configsvc.Reader, _ configsvc.Ref, cs configsvc.Changeset) error {
			if calls.Add(1) == 2 { // the first check of the promote
				if _, err := st.Publish(ctx, ref, configsvc.Changeset{Base: cs.Base, Changes: []configsvc.Change{put("b.json", `{"v":"sneaked"}`)}}); err != nil {
					return err
				}
			}
			return nil
		})
		var vs *configsvc.ValidatingStore
		var ctx context.Context
		st, vs, ctx, ref, _ = setup(t, sneak)
		g, err := vs.CreateGray(ctx, ref, newGray(2)) // call 1
		if err != nil {
			t.Fatal(err)
		}
		_, rev, err := vs.EndGray(ctx, ref, g.ID, 1, configsvc.GrayEnd{State: configsvc.GrayPromoted, Promote: &configsvc.Changeset{Author: "bob"}})
		if err != nil || rev.Number != 4 || calls.Load() != 3 {
			t.Fatalf("promote while main moved = %+v, %v after %d validations; want revision 4 after 3", rev, err, calls.Load())
		}
		wantSnapshot(ctx, t, st, ref, 0, files("a.yaml", "pool: 50\n", "b.json", `{"v":"sneaked"}`, "new.txt", "added"))
	})
}
