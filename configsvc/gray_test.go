package configsvc_test

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
)

func inst(id string, labels map[string]string) configsvc.Instance {
	return configsvc.Instance{Service: "orders", ID: id, Labels: labels}
}

func TestSelectorMatches(t *testing.T) {
	const gray = "g-0123456789ab"
	zoneB := map[string]string{"zone": "b"}
	canaryA := map[string]string{"zone": "a", "canary": "true"}
	for _, tc := range []struct {
		name string
		sel  configsvc.Selector
		in   configsvc.Instance
		want bool
	}{
		{"zero selector matches nobody", configsvc.Selector{}, inst("orders-1", zoneB), false},
		{"id listed", configsvc.Selector{Instances: []string{"orders-2", "orders-1"}}, inst("orders-1", nil), true},
		{"id not listed", configsvc.Selector{Instances: []string{"orders-2"}}, inst("orders-1", nil), false},
		{"one map, all its labels", configsvc.Selector{Labels: []map[string]string{canaryA}}, inst("x", map[string]string{"zone": "a", "canary": "true", "extra": "1"}), true},
		{"one map, a label missing (AND)", configsvc.Selector{Labels: []map[string]string{canaryA}}, inst("x", map[string]string{"zone": "a"}), false},
		{"one map, a label differs", configsvc.Selector{Labels: []map[string]string{canaryA}}, inst("x", map[string]string{"zone": "a", "canary": "false"}), false},
		{"second map matches (OR)", configsvc.Selector{Labels: []map[string]string{canaryA, zoneB}}, inst("x", map[string]string{"zone": "b"}), true},
		{"no map matches", configsvc.Selector{Labels: []map[string]string{canaryA, zoneB}}, inst("x", map[string]string{"zone": "c"}), false},
		{"no labels at all", configsvc.Selector{Labels: []map[string]string{zoneB}}, inst("x", nil), false},
		{"percent 100 matches everyone", configsvc.Selector{Percent: 100}, inst("anything", nil), true},
		{"any part: id although labels miss", configsvc.Selector{Instances: []string{"x"}, Labels: []map[string]string{zoneB}}, inst("x", nil), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.sel.Matches(gray, tc.in); got != tc.want {
				t.Fatalf("Matches(%+v) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

// TestGrayBucketIsTheDocumentedHash recomputes the bucket from its
// definition: the first 8 bytes of SHA-256(gray "\x00" instance), big
// endian, modulo 10000.
func TestGrayBucketIsTheDocumentedHash(t *testing.T) {
	for i := range 200 {
		gray, id := fmt.Sprintf("g-%012x", i*7919), fmt.Sprintf("orders-%d", i)
		sum := sha256.Sum256([]byte(gray + "\x00" + id))
		want := int(binary.BigEndian.Uint64(sum[:8]) % 10000)
		if got := configsvc.GrayBucket(gray, id); got != want {
			t.Fatalf("GrayBucket(%s, %s) = %d, want %d", gray, id, got, want)
		}
		in := configsvc.Selector{Percent: float64(want+1) / 100}.Matches(gray, inst(id, nil))
		out := configsvc.Selector{Percent: float64(want) / 100}.Matches(gray, inst(id, nil))
		if !in || out && want > 0 {
			t.Fatalf("bucket %d: in at %.2f %% = %v (want true), in at %.2f %% = %v (want false)", want, float64(want+1)/100, in, float64(want)/100, out)
		}
	}
}

func TestSelectorStickyPercent(t *testing.T) {
	const gray = "g-a1b2c3d4e5f6"
	ids := make([]configsvc.Instance, 100000)
	for i := range ids {
		ids[i] = inst(fmt.Sprintf("orders-%d", i), nil)
	}
	members := func(p float64) []bool {
		out := make([]bool, len(ids))
		sel := configsvc.Selector{Percent: p}
		for i, in := range ids {
			out[i] = sel.Matches(gray, in)
		}
		return out
	}

	t.Run("UniformWithin2Percent", func(t *testing.T) {
		for _, p := range []float64{1, 5, 10, 25, 33.33, 50, 75, 99.99} {
			n := 0
			for _, in := range members(p) {
				if in {
					n++
				}
			}
			got := 100 * float64(n) / float64(len(ids))
			if math.Abs(got-p) > 2 {
				t.Errorf("percent %.2f put %.2f %% of %d ids in the cohort, want within 2 points", p, got, len(ids))
			}
		}
	})

	t.Run("MonotonicRaisingAndLowering", func(t *testing.T) {
		steps := []float64{0, 0.01, 1, 5, 12.5, 25, 50, 99.99, 100}
		prev := members(steps[0])
		for _, p := range steps[1:] {
			cur := members(p)
			for i := range ids {
				if prev[i] && !cur[i] {
					t.Fatalf("raising the percent to %.2f removed %s", p, ids[i].ID)
				}
			}
			prev = cur
		}
		// Lowering, read the other way: whoever is in at the lower percent
		// was in at the higher one, so lowering only removes.
		for i := len(steps) - 1; i > 0; i-- {
			hi, lo := members(steps[i]), members(steps[i-1])
			for j := range ids {
				if lo[j] && !hi[j] {
					t.Fatalf("lowering %.2f → %.2f added %s", steps[i], steps[i-1], ids[j].ID)
				}
			}
		}
	})

	t.Run("StableAcrossCalls", func(t *testing.T) {
		a, b := members(37.5), members(37.5)
		if !slices.Equal(a, b) {
			t.Fatal("the same selector placed an instance differently on a second call")
		}
	})

	t.Run("DependsOnTheGray", func(t *testing.T) {
		sel := configsvc.Selector{Percent: 50}
		same := 0
		for _, in := range ids[:10000] {
			if sel.Matches(gray, in) == sel.Matches("g-000000000000", in) {
				same++
			}
		}
		if same > 5400 || same < 4600 {
			t.Fatalf("two grays at 50 %% agree on %d of 10000 instances; want about half (independent cohorts)", same)
		}
	})
}

func TestSelectorValidate(t *testing.T) {
	ids := func(n int) []string {
		out := make([]string, n)
		for i := range out {
			out[i] = fmt.Sprintf("i-%d", i)
		}
		return out
	}
	maps := func(n int) []map[string]string {
		out := make([]map[string]string, n)
		for i := range out {
			out[i] = map[string]string{"k": fmt.Sprint(i)}
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		sel    configsvc.Selector
		target error
		field  string
	}{
		{name: "zero", sel: configsvc.Selector{}},
		{name: "full", sel: configsvc.Selector{Instances: ids(configsvc.MaxGrayInstances), Percent: 12.34}},
		{name: "percent two decimals", sel: configsvc.Selector{Percent: 0.01}},
		{name: "percent three decimals", sel: configsvc.Selector{Percent: 1.005}, target: configsvc.ErrInvalid, field: "selector.percent"},
		{name: "percent over 100", sel: configsvc.Selector{Percent: 100.01}, target: configsvc.ErrInvalid, field: "selector.percent"},
		{name: "percent negative", sel: configsvc.Selector{Percent: -1}, target: configsvc.ErrInvalid, field: "selector.percent"},
		{name: "percent NaN", sel: configsvc.Selector{Percent: math.NaN()}, target: configsvc.ErrInvalid, field: "selector.percent"},
		{name: "too many ids", sel: configsvc.Selector{Instances: ids(configsvc.MaxGrayInstances + 1)}, target: configsvc.ErrTooLarge},
		{name: "bad id", sel: configsvc.Selector{Instances: []string{"ok", "../x"}}, target: configsvc.ErrInvalid, field: "selector.instances[1]"},
		{name: "id twice", sel: configsvc.Selector{Instances: []string{"a", "a"}}, target: configsvc.ErrInvalid, field: "selector.instances[1]"},
		{name: "empty label map", sel: configsvc.Selector{Labels: []map[string]string{{"a": "1"}, {}}}, target: configsvc.ErrInvalid, field: "selector.labels[1]"},
		{name: "too many label maps", sel: configsvc.Selector{Labels: maps(configsvc.MaxGrayLabelMaps + 1)}, target: configsvc.ErrTooLarge},
		{name: "empty label key", sel: configsvc.Selector{Labels: []map[string]string{{"": "1"}}}, target: configsvc.ErrInvalid, field: "selector.labels[0]"},
		{name: "long label value", sel: configsvc.Selector{Labels: []map[string]string{{"k": strings.Repeat("v", configsvc.MaxGrayLabelLen+1)}}}, target: configsvc.ErrInvalid, field: "selector.labels[0].k"},
		{name: "encoded too large", sel: configsvc.Selector{Instances: func() []string {
			out := make([]string, configsvc.MaxGrayInstances)
			for i := range out {
				out[i] = fmt.Sprintf("%s-%d", strings.Repeat("x", 100), i)
			}
			return out
		}()}, target: configsvc.ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.sel.Validate()
			if tc.target == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, tc.target) {
				t.Fatalf("Validate() = %v, want %v", err, tc.target)
			}
			var fe *configsvc.FieldError
			if tc.field != "" && (!errors.As(err, &fe) || fe.Field != tc.field) {
				t.Fatalf("Validate() = %v, want a *FieldError on %s", err, tc.field)
			}
		})
	}
}

func TestGrayID(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		id := configsvc.NewGrayID()
		if err := configsvc.ValidateGrayID(id); err != nil {
			t.Fatalf("NewGrayID() = %q, which ValidateGrayID refuses: %v", id, err)
		}
		if seen[id] {
			t.Fatalf("NewGrayID() repeated %q", id)
		}
		seen[id] = true
	}
	for _, bad := range []string{"", "g-", "g-0123456789a", "g-0123456789abc", "g-0123456789AB", "x-0123456789ab", "g-012345678/ab"} {
		if err := configsvc.ValidateGrayID(bad); !errors.Is(err, configsvc.ErrInvalid) {
			t.Errorf("ValidateGrayID(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}

// grayHead is a head at revision 7 with a.yaml (written by 3) and
// b.json (by 7), and an active gray on c.txt.
func grayHead() configsvc.Head {
	return configsvc.Head{Ref: configsvc.Service("orders"), Revision: 7, Files: map[string]configsvc.FileMeta{
		"a.yaml": {Name: "a.yaml", Revision: 3}, "b.json": {Name: "b.json", Revision: 7},
	}, Grays: []configsvc.GraySummary{{ID: "g-cccccccccccc", Files: []string{"c.txt"}, Version: 2}}}
}

func TestNewGray(t *testing.T) {
	now := time.Date(2026, 11, 27, 10, 0, 0, 0, time.FixedZone("x", 3600))
	ref := configsvc.Service("orders")
	g := configsvc.Gray{Name: "bigger pool", Author: "alice", BaseRevision: 7, Selector: configsvc.Selector{Percent: 10},
		Changes: []configsvc.Change{{File: "a.yaml", Content: []byte("pool: 50\n")}, {File: "b.json", Delete: true}, {File: "new.txt", Content: []byte("n")}}}

	got, sums, err := configsvc.NewGray(ref, g, grayHead(), now)
	if err != nil {
		t.Fatalf("NewGray: %v", err)
	}
	if configsvc.ValidateGrayID(got.ID) != nil || got.State != configsvc.GrayActive || got.Version != 1 || got.Ref != ref {
		t.Fatalf("NewGray = id %q state %q version %d ref %v", got.ID, got.State, got.Version, got.Ref)
	}
	if !got.Created.Equal(now) || got.Created.Location() != time.UTC || !got.Updated.Equal(now) {
		t.Fatalf("created %v updated %v, want %v in UTC", got.Created, got.Updated, now)
	}
	if want := map[string]int64{"a.yaml": 3, "b.json": 7}; fmt.Sprint(got.BaseFiles) != fmt.Sprint(want) {
		t.Fatalf("BaseFiles = %v, want %v", got.BaseFiles, want)
	}
	if len(sums) != 2 || !slices.IsSortedFunc(sums, func(a, b configsvc.GraySummary) int { return strings.Compare(a.ID, b.ID) }) {
		t.Fatalf("summaries %+v, want the old one and the new one sorted by id", sums)
	}
	if i := slices.IndexFunc(sums, func(s configsvc.GraySummary) bool { return s.ID == got.ID }); i < 0 ||
		!slices.Equal(sums[i].Files, []string{"a.yaml", "b.json", "new.txt"}) || sums[i].Version != 1 || sums[i].Selector.Percent != 10 {
		t.Fatalf("summaries %+v lack the new gray's", sums)
	}

	for _, tc := range []struct {
		name   string
		mod    func(*configsvc.Gray, *configsvc.Head)
		target error
		check  func(t *testing.T, err error)
	}{
		{name: "stale base", mod: func(g *configsvc.Gray, _ *configsvc.Head) { g.BaseRevision = 6 }, target: configsvc.ErrConflict},
		{name: "file held by another gray", mod: func(g *configsvc.Gray, _ *configsvc.Head) {
			g.Changes = append(g.Changes, configsvc.Change{File: "c.txt", Content: []byte("x")})
		}, target: configsvc.ErrConflict, check: func(t *testing.T, err error) {
			var ce *configsvc.GrayConflictError
			if !errors.As(err, &ce) || ce.File != "c.txt" || ce.GrayID != "g-cccccccccccc" || !strings.Contains(err.Error(), "g-cccccccccccc") {
				t.Fatalf("error %v, want a *GrayConflictError naming c.txt and g-cccccccccccc", err)
			}
		}},
		{name: "deleting a missing file", mod: func(g *configsvc.Gray, _ *configsvc.Head) {
			g.Changes = []configsvc.Change{{File: "nope.txt", Delete: true}}
		}, target: configsvc.ErrInvalid},
		{name: "no changes", mod: func(g *configsvc.Gray, _ *configsvc.Head) { g.Changes = nil }, target: configsvc.ErrInvalid},
		{name: "content over the file limit", mod: func(g *configsvc.Gray, _ *configsvc.Head) {
			g.Changes = []configsvc.Change{{File: "big.txt", Content: make([]byte, configsvc.MaxFileSize+1)}}
		}, target: configsvc.ErrTooLarge},
		{name: "bad selector", mod: func(g *configsvc.Gray, _ *configsvc.Head) { g.Selector.Percent = 101 }, target: configsvc.ErrInvalid},
		{name: "name on two lines", mod: func(g *configsvc.Gray, _ *configsvc.Head) { g.Name = "a\nb" }, target: configsvc.ErrInvalid},
		{name: "rollout at creation", mod: func(g *configsvc.Gray, _ *configsvc.Head) { g.Rollout = &configsvc.Rollout{} }, target: configsvc.ErrInvalid},
		{name: "too many active grays", mod: func(_ *configsvc.Gray, h *configsvc.Head) {
			h.Grays = nil
			for i := range configsvc.MaxActiveGrays {
				h.Grays = append(h.Grays, configsvc.GraySummary{ID: fmt.Sprintf("g-%012d", i), Files: []string{fmt.Sprintf("f%d", i)}})
			}
		}, target: configsvc.ErrTooMany},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g2, h := g, grayHead()
			g2.Changes = slices.Clone(g.Changes)
			tc.mod(&g2, &h)
			_, _, err := configsvc.NewGray(ref, g2, h, now)
			if !errors.Is(err, tc.target) {
				t.Fatalf("NewGray = %v, want %v", err, tc.target)
			}
			if tc.check != nil {
				tc.check(t, err)
			}
		})
	}
}

func activeGray(t *testing.T) configsvc.Gray {
	t.Helper()
	g, _, err := configsvc.NewGray(configsvc.Service("orders"), configsvc.Gray{BaseRevision: 7,
		Changes: []configsvc.Change{{File: "a.yaml", Content: []byte("v: 2\n")}, {File: "b.json", Delete: true}}}, grayHead(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func TestUpdatedGray(t *testing.T) {
	g := activeGray(t)
	later := g.Updated.Add(time.Minute)
	up, err := configsvc.UpdatedGray(g, 1, later, func(x *configsvc.Gray) error {
		x.Selector = configsvc.Selector{Percent: 25}
		return nil
	})
	if err != nil || up.Version != 2 || up.Selector.Percent != 25 || !up.Updated.Equal(later) {
		t.Fatalf("UpdatedGray = version %d percent %v updated %v, %v; want 2, 25, %v", up.Version, up.Selector.Percent, up.Updated, err, later)
	}
	if g.Selector.Percent != 0 || g.Version != 1 {
		t.Fatal("UpdatedGray modified the gray it was given")
	}
	// The clock behind the last update does not move Updated back.
	if up2, err := configsvc.UpdatedGray(up, 2, g.Updated, func(*configsvc.Gray) error { return nil }); err != nil || !up2.Updated.Equal(later) {
		t.Fatalf("update with an earlier clock: updated %v, %v; want %v", up2.Updated, err, later)
	}
	_, err = configsvc.UpdatedGray(up, 1, later, func(*configsvc.Gray) error { return nil })
	if !errors.Is(err, configsvc.ErrConflict) || !strings.Contains(err.Error(), "version 2, not 1") {
		t.Fatalf("update at a stale version = %v, want ErrConflict naming both versions", err)
	}
	for field, mod := range map[string]func(*configsvc.Gray){
		"changes":       func(x *configsvc.Gray) { x.Changes[0].Content = []byte("v: 3\n") },
		"state":         func(x *configsvc.Gray) { x.State = configsvc.GrayPromoted },
		"base_revision": func(x *configsvc.Gray) { x.BaseRevision = 1 },
		"id":            func(x *configsvc.Gray) { x.ID = configsvc.NewGrayID() },
	} {
		_, err := configsvc.UpdatedGray(g, 1, later, func(x *configsvc.Gray) error { mod(x); return nil })
		var fe *configsvc.FieldError
		if !errors.As(err, &fe) || fe.Field != field {
			t.Errorf("an update changing %s = %v, want a *FieldError on it", field, err)
		}
	}
	_, err = configsvc.UpdatedGray(g, 1, later, func(x *configsvc.Gray) error {
		x.Rollout = &configsvc.Rollout{Steps: []configsvc.RolloutStep{{Percent: 50}, {Percent: 10}}}
		return nil
	})
	if !errors.Is(err, configsvc.ErrInvalid) {
		t.Fatalf("an update with a descending rollout = %v, want ErrInvalid", err)
	}
	boom := errors.New("boom")
	if _, err := configsvc.UpdatedGray(g, 1, later, func(*configsvc.Gray) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("fn's error = %v, want it passed on", err)
	}
}

func TestEndedGray(t *testing.T) {
	g := activeGray(t)
	g.Rollout = &configsvc.Rollout{Steps: []configsvc.RolloutStep{{Percent: 10}}, State: configsvc.RolloutState{State: configsvc.RolloutBaking, Percent: 10}}
	now := g.Updated.Add(time.Hour)
	ab, err := configsvc.EndedGray(g, 1, configsvc.GrayEnd{State: configsvc.GrayAbandoned, Reason: "bad idea"}, 0, now)
	if err != nil || ab.State != configsvc.GrayAbandoned || ab.Version != 2 || !ab.Ended.Equal(now) || ab.EndReason != "bad idea" {
		t.Fatalf("abandon = %+v, %v", ab, err)
	}
	if ab.Rollout.State.State != configsvc.RolloutAborted || ab.Rollout.State.Reason != "bad idea" || g.Rollout.State.State != configsvc.RolloutBaking {
		t.Fatalf("the rollout of an abandoned gray is %+v (original %+v); want aborted with the reason, original untouched", ab.Rollout.State, g.Rollout.State)
	}
	pr, err := configsvc.EndedGray(g, 1, configsvc.GrayEnd{State: configsvc.GrayPromoted, Promote: &configsvc.Changeset{}}, 9, now)
	if err != nil || pr.State != configsvc.GrayPromoted || pr.EndedRevision != 9 || pr.Rollout.State.State != configsvc.RolloutPromoted {
		t.Fatalf("promote = %+v, %v", pr, err)
	}
	if _, err := configsvc.EndedGray(ab, 2, configsvc.GrayEnd{State: configsvc.GrayAbandoned}, 0, now); !errors.Is(err, configsvc.ErrConflict) || !strings.Contains(err.Error(), "is abandoned") {
		t.Fatalf("ending an ended gray = %v, want ErrConflict saying it is abandoned", err)
	}
	for _, end := range []configsvc.GrayEnd{{State: configsvc.GrayPromoted}, {State: configsvc.GrayAbandoned, Promote: &configsvc.Changeset{}}, {State: configsvc.GrayActive}} {
		if _, err := configsvc.EndedGray(g, 1, end, 0, now); !errors.Is(err, configsvc.ErrInvalid) {
			t.Errorf("EndedGray(%+v) = %v, want ErrInvalid", end, err)
		}
	}
}

func TestPromoteAndMainChanged(t *testing.T) {
	g := activeGray(t) // a.yaml written, b.json deleted; base a.yaml@3, b.json@7
	head := grayHead()
	if got := g.MainChangedIn(head.Files); got != nil {
		t.Fatalf("MainChangedIn(base) = %v, want none", got)
	}
	head.Files["a.yaml"] = configsvc.FileMeta{Name: "a.yaml", Revision: 8}
	delete(head.Files, "b.json")
	if got := g.MainChangedIn(head.Files); !slices.Equal(got, []string{"a.yaml", "b.json"}) {
		t.Fatalf("MainChangedIn after main wrote a.yaml and deleted b.json = %v", got)
	}
	// b.json is gone from main: the promote leaves its deletion out.
	head.Revision = 9
	cs, err := configsvc.PromoteChangeset(&g, head, configsvc.GrayEnd{State: configsvc.GrayPromoted, Promote: &configsvc.Changeset{Author: "bob"}})
	if err != nil || cs.Base != 9 || cs.Author != "bob" || len(cs.Changes) != 1 || cs.Changes[0].File != "a.yaml" || !strings.Contains(cs.Message, g.ID) {
		t.Fatalf("PromoteChangeset = %+v, %v", cs, err)
	}
	onlyDelete := g
	onlyDelete.Changes = []configsvc.Change{{File: "b.json", Delete: true}}
	if _, err := configsvc.PromoteChangeset(&onlyDelete, head, configsvc.GrayEnd{}); !errors.Is(err, configsvc.ErrConflict) {
		t.Fatalf("promoting a deletion main already made = %v, want ErrConflict", err)
	}
}

func TestRolloutValidate(t *testing.T) {
	ok := func() configsvc.Rollout {
		return configsvc.Rollout{Steps: []configsvc.RolloutStep{{Percent: 5, Bake: configsvc.Duration(2 * time.Minute)}, {Percent: 25}, {Percent: 100}},
			MaxErrorRate: 0.02, ApplyTimeout: configsvc.Duration(time.Minute)}
	}
	for _, tc := range []struct {
		name  string
		mod   func(*configsvc.Rollout)
		field string // "" = valid
	}{
		{name: "ok", mod: func(*configsvc.Rollout) {}},
		{name: "no steps", mod: func(r *configsvc.Rollout) { r.Steps = nil }, field: "steps"},
		{name: "descending", mod: func(r *configsvc.Rollout) { r.Steps[1].Percent = 5 }, field: "steps[1].percent"},
		{name: "over 100", mod: func(r *configsvc.Rollout) { r.Steps[2].Percent = 100.5 }, field: "steps[2].percent"},
		{name: "three decimals", mod: func(r *configsvc.Rollout) { r.Steps[0].Percent = 0.001 }, field: "steps[0].percent"},
		{name: "negative bake", mod: func(r *configsvc.Rollout) { r.Steps[0].Bake = -1 }, field: "steps[0].bake"},
		{name: "bake too long", mod: func(r *configsvc.Rollout) { r.Steps[0].Bake = configsvc.Duration(configsvc.MaxRolloutBake + 1) }, field: "steps[0].bake"},
		{name: "negative max_rejected", mod: func(r *configsvc.Rollout) { r.MaxRejected = -1 }, field: "max_rejected"},
		{name: "error rate over 1", mod: func(r *configsvc.Rollout) { r.MaxErrorRate = 1.5 }, field: "max_error_rate"},
		{name: "negative apply timeout", mod: func(r *configsvc.Rollout) { r.ApplyTimeout = -1 }, field: "apply_timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := ok()
			tc.mod(&r)
			err := r.Validate()
			var fe *configsvc.FieldError
			switch {
			case tc.field == "" && err != nil:
				t.Fatalf("Validate() = %v", err)
			case tc.field != "" && (!errors.As(err, &fe) || fe.Field != tc.field):
				t.Fatalf("Validate() = %v, want a *FieldError on %s", err, tc.field)
			}
		})
	}
	many := configsvc.Rollout{}
	for i := range configsvc.MaxRolloutSteps + 1 {
		many.Steps = append(many.Steps, configsvc.RolloutStep{Percent: float64(i)})
	}
	if err := many.Validate(); !errors.Is(err, configsvc.ErrTooLarge) {
		t.Fatalf("%d steps = %v, want ErrTooLarge", len(many.Steps), err)
	}
	if d := (configsvc.Rollout{}).WithDefaults().ApplyTimeout; time.Duration(d) != configsvc.DefaultRolloutApplyTimeout {
		t.Fatalf("WithDefaults().ApplyTimeout = %v", time.Duration(d))
	}
}

func TestDurationJSON(t *testing.T) {
	var st configsvc.RolloutStep
	if err := json.Unmarshal([]byte(`{"percent":5,"bake":"2m30s"}`), &st); err != nil || time.Duration(st.Bake) != 150*time.Second {
		t.Fatalf("decode = %+v, %v", st, err)
	}
	b, _ := json.Marshal(st)
	if string(b) != `{"percent":5,"bake":"2m30s"}` {
		t.Fatalf("encode = %s", b)
	}
	for _, bad := range []string{`{"bake":120}`, `{"bake":"soon"}`} {
		if err := json.Unmarshal([]byte(bad), &st); !errors.Is(err, configsvc.ErrInvalid) {
			t.Errorf("decode %s = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestInstanceValidateGrays(t *testing.T) {
	base := configsvc.Instance{Service: "orders", ID: "orders-1"}
	okInst := base
	okInst.Grays = map[string]configsvc.GrayStatus{"g-0123456789ab": {Status: configsvc.GrayRejected, Reason: "schema", Version: 2}}
	if err := okInst.Validate(); err != nil {
		t.Fatalf("Validate() = %v", err)
	}
	for name, grays := range map[string]map[string]configsvc.GrayStatus{
		"bad id":      {"nope": {Status: configsvc.GrayApplied}},
		"bad status":  {"g-0123456789ab": {Status: "done"}},
		"long reason": {"g-0123456789ab": {Status: configsvc.GrayRejected, Reason: strings.Repeat("r", configsvc.MaxInstanceErrorLen+1)}},
		"too many": func() map[string]configsvc.GrayStatus {
			m := map[string]configsvc.GrayStatus{}
			for i := range configsvc.MaxInstanceGrays + 1 {
				m[fmt.Sprintf("g-%012x", i)] = configsvc.GrayStatus{Status: configsvc.GrayApplied}
			}
			return m
		}(),
	} {
		in := base
		in.Grays = grays
		if err := in.Validate(); err == nil {
			t.Errorf("%s: Validate() accepted %v", name, grays)
		}
	}
}

func TestCohortAndCheckReady(t *testing.T) {
	g := activeGray(t)
	g.Selector = configsvc.Selector{Instances: []string{"a", "b", "c"}}
	instances := []configsvc.Instance{
		{Service: "orders", ID: "c", Grays: map[string]configsvc.GrayStatus{g.ID: {Status: configsvc.GrayRejected, Reason: "bad yaml"}}},
		{Service: "orders", ID: "a", Grays: map[string]configsvc.GrayStatus{g.ID: {Status: configsvc.GrayApplied, Version: 1}}},
		{Service: "orders", ID: "b", Grays: map[string]configsvc.GrayStatus{"g-ffffffffffff": {Status: configsvc.GrayApplied}}},
		{Service: "orders", ID: "outside", Grays: map[string]configsvc.GrayStatus{g.ID: {Status: configsvc.GrayApplied}}},
	}
	cohort := g.Cohort(instances)
	var got []string
	for _, m := range cohort {
		got = append(got, m.ID+"="+string(m.Status))
	}
	if want := []string{"a=applied", "b=pending", "c=rejected"}; !slices.Equal(got, want) {
		t.Fatalf("Cohort = %v, want %v", got, want)
	}
	err := configsvc.CheckReady(g.ID, cohort)
	var nr *configsvc.NotReadyError
	if !errors.As(err, &nr) || !errors.Is(err, configsvc.ErrConflict) || len(nr.Instances) != 2 ||
		!strings.Contains(err.Error(), "1 instance rejected it (c)") || !strings.Contains(err.Error(), "1 instance has not applied it yet (b)") {
		t.Fatalf("CheckReady = %v, want a *NotReadyError naming c (rejected) and b (pending)", err)
	}
	if err := configsvc.CheckReady(g.ID, cohort[:1]); err != nil {
		t.Fatalf("CheckReady(all applied) = %v", err)
	}
	if err := configsvc.CheckReady(g.ID, nil); err != nil {
		t.Fatalf("CheckReady(empty cohort) = %v", err)
	}
}

func TestSortGraysAndEndedBeyond(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var grays []configsvc.Gray
	for i := range configsvc.MaxEndedGrays + 3 {
		grays = append(grays, configsvc.Gray{ID: fmt.Sprintf("g-%012d", i), State: configsvc.GrayAbandoned, Ended: t0.Add(time.Duration(i) * time.Minute)})
	}
	grays = append(grays, configsvc.Gray{ID: "g-active000002", State: configsvc.GrayActive, Created: t0.Add(time.Hour)},
		configsvc.Gray{ID: "g-active000001", State: configsvc.GrayActive, Created: t0})
	drop := configsvc.EndedBeyond(grays)
	if want := []string{"g-000000000002", "g-000000000001", "g-000000000000"}; !slices.Equal(drop, want) {
		t.Fatalf("EndedBeyond = %v, want the three oldest ended %v", drop, want)
	}
	configsvc.SortGrays(grays)
	if grays[0].ID != "g-active000001" || grays[1].ID != "g-active000002" || grays[2].ID != fmt.Sprintf("g-%012d", configsvc.MaxEndedGrays+2) {
		t.Fatalf("SortGrays starts %s, %s, %s; want active oldest first, then the newest ended", grays[0].ID, grays[1].ID, grays[2].ID)
	}
}
