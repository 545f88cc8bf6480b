package storetest

import (
	"errors"
	"fmt"
	"testing"

	"github.com/sluicehq/sluice/configsvc"
)

// retention is the history kept by the store the retention subtests open.
const retention = 5

// testRetention publishes 3×retention+1 revisions on a store keeping
// retention revisions. The newest retention revisions must reconstruct
// exactly (including a file last changed in a pruned revision); revisions at
// least 2×retention behind the head must report ErrCompacted (a backend may
// prune lazily, so revisions in between may be either, but never wrong).
func (s *suite) testRetention(t *testing.T) {
	if s.opts.OpenWithRetention == nil {
		t.Skip("storetest: Options.OpenWithRetention not set; retention not checked")
	}
	const head = 3*retention + 1
	st := s.opts.OpenWithRetention(t, retention)
	ctx := s.ctx(t)
	ref := configsvc.Service("orders")
	mustCreate(ctx, t, st, ref)
	want := make([]map[string][]byte, head+1)
	want[0] = files()
	for n := int64(1); n <= head; n++ {
		changes := []configsvc.Change{put("a.txt", fmt.Sprint(n))}
		if n == 1 {
			changes = append(changes, put("keep.yaml", "kept: true\n"))
		}
		if n == 2 {
			changes = append(changes, put("gone.txt", "deleted at 3"))
		}
		if n == 3 {
			changes = append(changes, del("gone.txt"))
		}
		mustPublish(ctx, t, st, ref, n-1, changes...)
		want[n] = files("a.txt", fmt.Sprint(n), "keep.yaml", "kept: true\n")
		if n == 2 {
			want[n]["gone.txt"] = []byte("deleted at 3")
		}
	}
	retained := int64(head - retention + 1)
	pruned := int64(head - 2*retention)

	t.Run("RetainedReconstruct", func(t *testing.T) {
		for n := retained; n <= head; n++ {
			wantSnapshot(ctx, t, st, ref, n, want[n])
			r, err := st.Revision(ctx, ref, n)
			if err != nil || r.Number != n {
				t.Fatalf("Revision(%d) = %d, %v", n, r.Number, err)
			}
			content, meta, err := st.File(ctx, ref, "keep.yaml", n)
			if err != nil || string(content) != "kept: true\n" || meta.Revision != 1 {
				t.Fatalf("File(keep.yaml, %d) = %q (revision %d), %v; want the content of revision 1", n, content, meta.Revision, err)
			}
		}
	})

	t.Run("PrunedCompacted", func(t *testing.T) {
		for n := int64(1); n <= pruned; n++ {
			_, err := st.Snapshot(ctx, ref, n)
			wantErr(t, fmt.Sprintf("Snapshot(%d)", n), err, configsvc.ErrCompacted)
			_, _, err = st.File(ctx, ref, "a.txt", n)
			wantErr(t, fmt.Sprintf("File(a.txt, %d)", n), err, configsvc.ErrCompacted)
			_, err = st.Revision(ctx, ref, n)
			wantErr(t, fmt.Sprintf("Revision(%d)", n), err, configsvc.ErrCompacted)
		}
	})

	t.Run("InBetweenNeverWrong", func(t *testing.T) {
		for n := pruned + 1; n < retained; n++ {
			snap, err := st.Snapshot(ctx, ref, n)
			switch {
			case errors.Is(err, configsvc.ErrCompacted):
			case err != nil:
				t.Fatalf("Snapshot(%d): %v", n, err)
			case !equalFiles(snap.Files, want[n]):
				t.Fatalf("Snapshot(%d).Files = %s, want %s", n, showFiles(snap.Files), showFiles(want[n]))
			}
		}
	})

	t.Run("RevisionsListsRetained", func(t *testing.T) {
		revs, err := st.Revisions(ctx, ref, 0, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if int64(len(revs)) < retention || int64(len(revs)) > 2*retention {
			t.Fatalf("Revisions lists %d revisions, want between %d and %d", len(revs), retention, 2*retention)
		}
		for i, r := range revs {
			if r.Number != head-int64(i) {
				t.Fatalf("Revisions[%d] = %d, want %d", i, r.Number, head-int64(i))
			}
		}
	})

	t.Run("WatchFromPruned", func(t *testing.T) {
		s.wantErrEventThenClose(t, st.Watch(ctx, ref, 0), configsvc.ErrCompacted)
	})

	t.Run("WatchFromRetained", func(t *testing.T) {
		ch := st.Watch(ctx, ref, retained-1)
		s.wantRevisions(t, ch, retained, head, nil)
		c := put("a.txt", "live")
		mustPublish(ctx, t, st, ref, head, c)
		s.wantRevisions(t, ch, head+1, head+1, map[int64][]configsvc.Change{head + 1: {c}})
	})

	t.Run("RollbackToRetained", func(t *testing.T) {
		h := mustHead(ctx, t, st, ref)
		if _, err := configsvc.Rollback(ctx, st, ref, configsvc.RollbackRequest{To: head}); err != nil {
			t.Fatalf("Rollback to %d: %v", head, err)
		}
		wantSnapshot(ctx, t, st, ref, h.Revision+1, want[head])
	})
}
