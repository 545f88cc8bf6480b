package storetest

import (
	"testing"

	"github.com/sluicehq/sluice/configsvc"
)

func (s *suite) testRollback(t *testing.T) {
	t.Run("WholeService", func(t *testing.T) {
		st, ref, want := history(t, s)
		ctx := s.ctx(t)
		rev, err := configsvc.Rollback(ctx, st, ref, configsvc.RollbackRequest{To: 1, Author: "bob"})
		if err != nil {
			t.Fatalf("Rollback to 1: %v", err)
		}
		if rev.Number != 6 || rev.RollbackOf != 1 || rev.Author != "bob" || rev.Message != "rollback to revision 1" {
			t.Fatalf("Rollback returned %+v, want revision 6 rolling back to 1 by bob", rev)
		}
		wantSnapshot(ctx, t, st, ref, 0, want[1])
		wantSnapshot(ctx, t, st, ref, 6, want[1])
		got, err := st.Revision(ctx, ref, 6)
		if err != nil || got.RollbackOf != 1 {
			t.Fatalf("Revision(6) = %+v, %v; want RollbackOf 1", got, err)
		}
		// History is kept.
		for n := int64(1); n <= 5; n++ {
			wantSnapshot(ctx, t, st, ref, n, want[n])
		}
	})

	t.Run("ChosenFiles", func(t *testing.T) {
		st, ref, want := history(t, s)
		ctx := s.ctx(t)
		// Restore a.json and b.yaml as of revision 2, and c.txt (absent at 1)
		// as of revision 1, i.e. delete it.
		if _, err := configsvc.Rollback(ctx, st, ref, configsvc.RollbackRequest{To: 2, Files: []string{"a.json", "b.yaml"}, Base: 5}); err != nil {
			t.Fatalf("Rollback a.json,b.yaml to 2: %v", err)
		}
		exp := files("a.json", `{"v":2}`, "b.yaml", "v: 1\n", "c.txt", "two")
		wantSnapshot(ctx, t, st, ref, 6, exp)
		if _, err := configsvc.Rollback(ctx, st, ref, configsvc.RollbackRequest{To: 1, Files: []string{"c.txt"}}); err != nil {
			t.Fatalf("Rollback c.txt to 1: %v", err)
		}
		wantSnapshot(ctx, t, st, ref, 0, files("a.json", `{"v":2}`, "b.yaml", "v: 1\n"))
		h := mustHead(ctx, t, st, ref)
		if h.Revision != 7 || h.Files["a.json"].Revision != 6 || h.Files["b.yaml"].Revision != 6 {
			t.Fatalf("Head after rollbacks = %+v", h)
		}
		for n := int64(1); n <= 5; n++ {
			wantSnapshot(ctx, t, st, ref, n, want[n])
		}
	})

	t.Run("Refused", func(t *testing.T) {
		st, ref, want := history(t, s)
		ctx := s.ctx(t)
		for _, tc := range []struct {
			name   string
			req    configsvc.RollbackRequest
			target error
		}{
			{"NothingToChange", configsvc.RollbackRequest{To: 5}, configsvc.ErrInvalid},
			{"StaleBase", configsvc.RollbackRequest{To: 1, Base: 4}, configsvc.ErrConflict},
			{"FutureRevision", configsvc.RollbackRequest{To: 9}, configsvc.ErrNotFound},
			{"UnknownFile", configsvc.RollbackRequest{To: 1, Files: []string{"nope.txt"}}, configsvc.ErrNotFound},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := configsvc.Rollback(ctx, st, ref, tc.req)
				wantErr(t, "Rollback", err, tc.target)
				wantUnchanged(ctx, t, st, ref, 5, want[5])
			})
		}
	})
}
