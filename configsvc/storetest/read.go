package storetest

import (
	"fmt"
	"slices"
	"testing"

	"github.com/sluicehq/sluice/configsvc"
)

// history publishes a small history on ref and returns the expected file
// content at each revision (index = revision number).
//
//	1: a.json=1 b.yaml=1
//	2: a.json=2 c.txt=2
//	3: delete b.yaml
//	4: b.yaml=4 (re-created)
//	5: a.json=5
func history(t *testing.T, s *suite) (configsvc.Store, configsvc.Ref, []map[string][]byte) {
	t.Helper()
	st, ctx := s.open(t)
	ref := configsvc.Service("orders")
	mustCreate(ctx, t, st, ref)
	mustPublish(ctx, t, st, ref, 0, put("a.json", `{"v":1}`), put("b.yaml", "v: 1\n"))
	mustPublish(ctx, t, st, ref, 1, put("a.json", `{"v":2}`), put("c.txt", "two"))
	mustPublish(ctx, t, st, ref, 2, del("b.yaml"))
	mustPublish(ctx, t, st, ref, 3, put("b.yaml", "v: 4\n"))
	mustPublish(ctx, t, st, ref, 4, put("a.json", `{"v":5}`))
	return st, ref, []map[string][]byte{
		0: files(),
		1: files("a.json", `{"v":1}`, "b.yaml", "v: 1\n"),
		2: files("a.json", `{"v":2}`, "b.yaml", "v: 1\n", "c.txt", "two"),
		3: files("a.json", `{"v":2}`, "c.txt", "two"),
		4: files("a.json", `{"v":2}`, "c.txt", "two", "b.yaml", "v: 4\n"),
		5: files("a.json", `{"v":5}`, "c.txt", "two", "b.yaml", "v: 4\n"),
	}
}

func (s *suite) testRead(t *testing.T) {
	st, ref, want := history(t, s)
	ctx := s.ctx(t)
	// lastChanged[rev][file] is the revision that last changed file as of rev.
	lastChanged := []map[string]int64{
		1: {"a.json": 1, "b.yaml": 1},
		2: {"a.json": 2, "b.yaml": 1, "c.txt": 2},
		3: {"a.json": 2, "c.txt": 2},
		4: {"a.json": 2, "c.txt": 2, "b.yaml": 4},
		5: {"a.json": 5, "c.txt": 2, "b.yaml": 4},
	}

	t.Run("Snapshot", func(t *testing.T) {
		for rev := int64(1); rev <= 5; rev++ {
			t.Run(fmt.Sprint(rev), func(t *testing.T) {
				snap := mustSnapshot(ctx, t, st, ref, rev)
				if snap.Revision != rev || snap.Ref != ref {
					t.Fatalf("Snapshot(%d) = %s at revision %d", rev, snap.Ref, snap.Revision)
				}
				if !equalFiles(snap.Files, want[rev]) {
					t.Fatalf("Snapshot(%d).Files = %s, want %s", rev, showFiles(snap.Files), showFiles(want[rev]))
				}
			})
		}
		t.Run("Head", func(t *testing.T) {
			snap := mustSnapshot(ctx, t, st, ref, 0)
			if snap.Revision != 5 || !equalFiles(snap.Files, want[5]) {
				t.Fatalf("Snapshot(0) = revision %d %s, want revision 5 %s", snap.Revision, showFiles(snap.Files), showFiles(want[5]))
			}
		})
		t.Run("PastHead", func(t *testing.T) {
			_, err := st.Snapshot(ctx, ref, 6)
			wantErr(t, "Snapshot(6)", err, configsvc.ErrNotFound)
		})
	})

	t.Run("File", func(t *testing.T) {
		for rev := int64(0); rev <= 5; rev++ {
			at := rev
			if at == 0 {
				at = 5
			}
			for _, name := range []string{"a.json", "b.yaml", "c.txt"} {
				t.Run(fmt.Sprintf("%s@%d", name, rev), func(t *testing.T) {
					content, meta, err := st.File(ctx, ref, name, rev)
					w, exists := want[at][name]
					if !exists {
						wantErr(t, "File", err, configsvc.ErrNotFound)
						return
					}
					if err != nil {
						t.Fatalf("File(%s, %d): %v", name, rev, err)
					}
					if string(content) != string(w) {
						t.Fatalf("File(%s, %d) = %q, want %q", name, rev, content, w)
					}
					wm := configsvc.FileMeta{Name: name, Revision: lastChanged[at][name], SHA256: configsvc.Checksum(w), Size: int64(len(w)), Format: configsvc.FormatOf(name)}
					if meta != wm {
						t.Fatalf("File(%s, %d) meta = %+v, want %+v", name, rev, meta, wm)
					}
				})
			}
		}
		t.Run("PastHead", func(t *testing.T) {
			_, _, err := st.File(ctx, ref, "a.json", 6)
			wantErr(t, "File(a.json, 6)", err, configsvc.ErrNotFound)
		})
		t.Run("NeverExisted", func(t *testing.T) {
			_, _, err := st.File(ctx, ref, "nope.txt", 0)
			wantErr(t, "File(nope.txt)", err, configsvc.ErrNotFound)
		})
	})

	t.Run("HeadManifest", func(t *testing.T) {
		h := mustHead(ctx, t, st, ref)
		if h.Revision != 5 || len(h.Files) != len(want[5]) {
			t.Fatalf("Head = revision %d with %d files, want 5 with %d", h.Revision, len(h.Files), len(want[5]))
		}
		for name, content := range want[5] {
			m := h.Files[name]
			if m.Revision != lastChanged[5][name] || m.SHA256 != configsvc.Checksum(content) || m.Size != int64(len(content)) {
				t.Fatalf("Head.Files[%s] = %+v", name, m)
			}
		}
	})
}

func (s *suite) testRevisions(t *testing.T) {
	st, ref, _ := history(t, s)
	ctx := s.ctx(t)
	// Two more so that paging has something to page.
	mustPublish(ctx, t, st, ref, 5, put("d.txt", "6"))
	mustPublish(ctx, t, st, ref, 6, put("d.txt", "7"))

	t.Run("Paging", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			before int64
			limit  int
			want   []int64
		}{
			{"all", 0, 0, []int64{7, 6, 5, 4, 3, 2, 1}},
			{"limit", 0, 3, []int64{7, 6, 5}},
			{"before", 5, 3, []int64{4, 3, 2}},
			{"tail", 2, 3, []int64{1}},
			{"before-first", 1, 3, nil},
			{"before-past-head", 100, 2, []int64{7, 6}},
			{"one", 0, 1, []int64{7}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				revs, err := st.Revisions(ctx, ref, tc.before, tc.limit)
				if err != nil {
					t.Fatalf("Revisions(before %d, limit %d): %v", tc.before, tc.limit, err)
				}
				got := make([]int64, len(revs))
				for i, r := range revs {
					got[i] = r.Number
					for _, c := range r.Changes {
						if c.Content != nil {
							t.Fatalf("Revisions returned content for revision %d file %s", r.Number, c.File)
						}
					}
				}
				if !slices.Equal(got, tc.want) {
					t.Fatalf("Revisions(before %d, limit %d) = %v, want %v", tc.before, tc.limit, got, tc.want)
				}
			})
		}
	})

	t.Run("LimitOutOfRange", func(t *testing.T) {
		for _, limit := range []int{-1, 1001} {
			_, err := st.Revisions(ctx, ref, 0, limit)
			wantErr(t, fmt.Sprintf("Revisions(limit %d)", limit), err, configsvc.ErrInvalid)
		}
		if revs, err := st.Revisions(ctx, ref, 0, 1000); err != nil || len(revs) != 7 {
			t.Fatalf("Revisions(limit 1000) = %d revisions, %v; want 7", len(revs), err)
		}
	})

	t.Run("PageThrough", func(t *testing.T) {
		var seen []int64
		before := int64(0)
		for range 10 {
			revs, err := st.Revisions(ctx, ref, before, 2)
			if err != nil {
				t.Fatalf("Revisions: %v", err)
			}
			if len(revs) == 0 {
				break
			}
			for _, r := range revs {
				seen = append(seen, r.Number)
			}
			before = revs[len(revs)-1].Number
		}
		if !slices.Equal(seen, []int64{7, 6, 5, 4, 3, 2, 1}) {
			t.Fatalf("paging by 2 saw %v", seen)
		}
	})

	t.Run("ListedMetadata", func(t *testing.T) {
		revs, err := st.Revisions(ctx, ref, 4, 1)
		if err != nil || len(revs) != 1 {
			t.Fatalf("Revisions(before 4, limit 1) = %v, %v", revs, err)
		}
		r := revs[0]
		if r.Number != 3 || r.Author != "tester" || r.Message != "revision 3" || r.Time.IsZero() {
			t.Fatalf("listed revision 3 = %+v", r)
		}
		if len(r.Changes) != 1 || r.Changes[0].File != "b.yaml" || !r.Changes[0].Delete {
			t.Fatalf("listed revision 3 changes = %+v, want [delete b.yaml]", r.Changes)
		}
	})

	t.Run("RevisionWithContent", func(t *testing.T) {
		for _, tc := range []struct {
			n    int64
			want []configsvc.Change
		}{
			{1, []configsvc.Change{put("a.json", `{"v":1}`), put("b.yaml", "v: 1\n")}},
			{2, []configsvc.Change{put("a.json", `{"v":2}`), put("c.txt", "two")}},
			{3, []configsvc.Change{del("b.yaml")}},
			{7, []configsvc.Change{put("d.txt", "7")}},
		} {
			t.Run(fmt.Sprint(tc.n), func(t *testing.T) {
				r, err := st.Revision(ctx, ref, tc.n)
				if err != nil {
					t.Fatalf("Revision(%d): %v", tc.n, err)
				}
				if r.Number != tc.n || r.Author != "tester" || r.Message != fmt.Sprintf("revision %d", tc.n) || r.Time.IsZero() {
					t.Fatalf("Revision(%d) = %+v", tc.n, r)
				}
				wantChanges(t, fmt.Sprintf("Revision(%d)", tc.n), r.Changes, tc.want)
			})
		}
		t.Run("PastHead", func(t *testing.T) {
			_, err := st.Revision(ctx, ref, 8)
			wantErr(t, "Revision(8)", err, configsvc.ErrNotFound)
		})
	})

	t.Run("TimesAgree", func(t *testing.T) {
		listed, err := st.Revisions(ctx, ref, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		for i, l := range listed {
			r, err := st.Revision(ctx, ref, l.Number)
			if err != nil {
				t.Fatal(err)
			}
			if !r.Time.Equal(l.Time) {
				t.Fatalf("revision %d: time %v from Revision, %v from Revisions", l.Number, r.Time, l.Time)
			}
			if i > 0 && l.Time.After(listed[i-1].Time) {
				t.Fatalf("revision %d is newer (%v) than revision %d (%v)", l.Number, l.Time, listed[i-1].Number, listed[i-1].Time)
			}
		}
	})
}
