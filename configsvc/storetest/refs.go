package storetest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
)

func (s *suite) testRefs(t *testing.T) {
	t.Run("CreateAndHead", func(t *testing.T) {
		for _, ref := range []configsvc.Ref{configsvc.Service("orders"), configsvc.Group("redis-common")} {
			t.Run(ref.Kind.String(), func(t *testing.T) {
				st, ctx := s.open(t)
				before := time.Now().Add(-time.Minute)
				mustCreate(ctx, t, st, ref)
				h := mustHead(ctx, t, st, ref)
				if h.Revision != 0 || len(h.Files) != 0 || len(h.Links) != 0 {
					t.Fatalf("Head(%s) of a new ref = revision %d, %d files, links %v; want revision 0, empty", ref, h.Revision, len(h.Files), h.Links)
				}
				if h.Ref != ref {
					t.Fatalf("Head(%s).Ref = %v", ref, h.Ref)
				}
				if h.Updated.Before(before) || h.Updated.After(time.Now().Add(time.Minute)) {
					t.Fatalf("Head(%s).Updated = %v, want the creation time", ref, h.Updated)
				}
				snap := mustSnapshot(ctx, t, st, ref, 0)
				if snap.Revision != 0 || len(snap.Files) != 0 {
					t.Fatalf("Snapshot(%s, 0) of a new ref = revision %d with %d files", ref, snap.Revision, len(snap.Files))
				}
				revs, err := st.Revisions(ctx, ref, 0, 0)
				if err != nil || len(revs) != 0 {
					t.Fatalf("Revisions(%s) of a new ref = %v, %v; want none", ref, revs, err)
				}
			})
		}
	})

	t.Run("CreateDuplicate", func(t *testing.T) {
		st, ctx := s.open(t)
		for _, ref := range []configsvc.Ref{configsvc.Service("orders"), configsvc.Group("redis-common")} {
			mustCreate(ctx, t, st, ref)
			wantErr(t, "second Create("+ref.String()+")", st.Create(ctx, ref), configsvc.ErrConflict)
		}
	})

	t.Run("ServiceAndGroupNamespacesAreSeparate", func(t *testing.T) {
		st, ctx := s.open(t)
		mustCreate(ctx, t, st, configsvc.Service("shared"))
		mustCreate(ctx, t, st, configsvc.Group("shared"))
		mustPublish(ctx, t, st, configsvc.Service("shared"), 0, put("a.txt", "service"))
		wantSnapshot(ctx, t, st, configsvc.Group("shared"), 0, files())
		wantSnapshot(ctx, t, st, configsvc.Service("shared"), 0, files("a.txt", "service"))
	})

	t.Run("InvalidRef", func(t *testing.T) {
		st, ctx := s.open(t)
		for _, tc := range []struct {
			name string
			ref  configsvc.Ref
		}{
			{"empty", configsvc.Service("")},
			{"upper", configsvc.Service("Orders")},
			{"leading-dash", configsvc.Service("-orders")},
			{"trailing-dash", configsvc.Group("orders-")},
			{"slash", configsvc.Service("a/b")},
			{"dotdot", configsvc.Group("..")},
			{"too-long", configsvc.Service(string(make64('a')))},
			{"no-kind", configsvc.Ref{Name: "orders"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				wantErr(t, "Create", st.Create(ctx, tc.ref), configsvc.ErrInvalid)
			})
		}
		names, err := st.List(ctx, configsvc.KindService)
		if err != nil || len(names) != 0 {
			t.Fatalf("List after refused creates = %v, %v; want none", names, err)
		}
	})

	t.Run("List", func(t *testing.T) {
		st, ctx := s.open(t)
		for _, kind := range []configsvc.Kind{configsvc.KindService, configsvc.KindGroup} {
			names, err := st.List(ctx, kind)
			if err != nil || len(names) != 0 {
				t.Fatalf("List(%s) of an empty store = %v, %v", kind, names, err)
			}
		}
		for _, n := range []string{"payments", "orders", "a1", "zeta"} {
			mustCreate(ctx, t, st, configsvc.Service(n))
		}
		for _, n := range []string{"redis-common", "kafka"} {
			mustCreate(ctx, t, st, configsvc.Group(n))
		}
		for _, tc := range []struct {
			kind configsvc.Kind
			want []string
		}{
			{configsvc.KindService, []string{"a1", "orders", "payments", "zeta"}},
			{configsvc.KindGroup, []string{"kafka", "redis-common"}},
		} {
			got, err := st.List(ctx, tc.kind)
			if err != nil || !slices.Equal(got, tc.want) {
				t.Fatalf("List(%s) = %v, %v; want %v", tc.kind, got, err, tc.want)
			}
		}
	})

	t.Run("Delete", func(t *testing.T) {
		for _, ref := range []configsvc.Ref{configsvc.Service("orders"), configsvc.Group("redis-common")} {
			t.Run(ref.Kind.String(), func(t *testing.T) {
				st, ctx := s.open(t)
				mustCreate(ctx, t, st, ref)
				r1 := mustPublish(ctx, t, st, ref, 0, put("a.json", `{"v":1}`))
				mustPublish(ctx, t, st, ref, r1.Number, put("a.json", `{"v":2}`))
				if err := st.Delete(ctx, ref); err != nil {
					t.Fatalf("Delete(%s): %v", ref, err)
				}
				_, err := st.Head(ctx, ref)
				wantErr(t, "Head after Delete", err, configsvc.ErrNotFound)
				_, _, err = st.File(ctx, ref, "a.json", 1)
				wantErr(t, "File after Delete", err, configsvc.ErrNotFound)
				names, err := st.List(ctx, ref.Kind)
				if err != nil || len(names) != 0 {
					t.Fatalf("List after Delete = %v, %v", names, err)
				}
				wantErr(t, "second Delete", st.Delete(ctx, ref), configsvc.ErrNotFound)

				// A re-created ref starts afresh: no history survives.
				mustCreate(ctx, t, st, ref)
				if h := mustHead(ctx, t, st, ref); h.Revision != 0 || len(h.Files) != 0 {
					t.Fatalf("re-created %s: head revision %d with %d files, want 0 and none", ref, h.Revision, len(h.Files))
				}
				_, err = st.Revision(ctx, ref, 1)
				wantErr(t, "Revision 1 of a re-created ref", err, configsvc.ErrNotFound)
				revs, err := st.Revisions(ctx, ref, 0, 0)
				if err != nil || len(revs) != 0 {
					t.Fatalf("Revisions of a re-created ref = %v, %v; want none", revs, err)
				}
				mustPublish(ctx, t, st, ref, 0, put("b.txt", "new"))
				wantSnapshot(ctx, t, st, ref, 0, files("b.txt", "new"))
			})
		}
	})

	t.Run("InterruptedDelete", func(t *testing.T) {
		// A Delete that stopped half way leaves nothing that passes for a
		// live service, and deleting again finishes it.
		if s.opts.InterruptDelete == nil {
			t.Skip("storetest: Options.InterruptDelete not set")
		}
		st, ctx := s.open(t)
		ref := configsvc.Service("orders")
		mustCreate(ctx, t, st, ref)
		mustCreate(ctx, t, st, configsvc.Service("payments"))
		mustPublish(ctx, t, st, ref, 0, put("a.json", `{"v":1}`))
		s.opts.InterruptDelete(t, st, ref)
		names, err := st.List(ctx, configsvc.KindService)
		if err != nil || !slices.Equal(names, []string{"payments"}) {
			t.Fatalf("List after an interrupted Delete = %v, %v; want [payments]", names, err)
		}
		_, err = st.Head(ctx, ref)
		wantErr(t, "Head after an interrupted Delete", err, configsvc.ErrNotFound)
		_, _, err = st.File(ctx, ref, "a.json", 0)
		wantErr(t, "File after an interrupted Delete", err, configsvc.ErrNotFound)
		_, err = st.Register(ctx, instance("orders", "i-1"))
		wantErr(t, "Register after an interrupted Delete", err, configsvc.ErrNotFound)
		s.wantErrEventThenClose(t, st.Watch(ctx, ref, 0), configsvc.ErrNotFound)
		if err := st.Delete(ctx, ref); err != nil && !errors.Is(err, configsvc.ErrNotFound) {
			t.Fatalf("Delete to finish an interrupted Delete: %v", err)
		}
		wantErr(t, "Delete once finished", st.Delete(ctx, ref), configsvc.ErrNotFound)
		mustCreate(ctx, t, st, ref)
		if h := mustHead(ctx, t, st, ref); h.Revision != 0 || len(h.Files) != 0 {
			t.Fatalf("created after an interrupted Delete: revision %d with %d files, want a fresh service", h.Revision, len(h.Files))
		}
		names, err = st.List(ctx, configsvc.KindService)
		if err != nil || !slices.Equal(names, []string{"orders", "payments"}) {
			t.Fatalf("List = %v, %v; want [orders payments]", names, err)
		}
	})

	t.Run("NotFound", func(t *testing.T) {
		st, ctx := s.open(t)
		ref := configsvc.Service("ghost")
		for _, tc := range []struct {
			name string
			call func() error
		}{
			{"Delete", func() error { return st.Delete(ctx, ref) }},
			{"Head", func() error { _, err := st.Head(ctx, ref); return err }},
			{"Publish", func() error {
				_, err := st.Publish(ctx, ref, configsvc.Changeset{Changes: []configsvc.Change{put("a.txt", "x")}})
				return err
			}},
			{"File", func() error { _, _, err := st.File(ctx, ref, "a.txt", 0); return err }},
			{"Snapshot", func() error { _, err := st.Snapshot(ctx, ref, 0); return err }},
			{"Revisions", func() error { _, err := st.Revisions(ctx, ref, 0, 0); return err }},
			{"Revision", func() error { _, err := st.Revision(ctx, ref, 1); return err }},
			{"GroupHead", func() error { _, err := st.Head(ctx, configsvc.Group("ghost")); return err }},
		} {
			t.Run(tc.name, func(t *testing.T) {
				wantErr(t, tc.name, tc.call(), configsvc.ErrNotFound)
			})
		}
	})

	t.Run("Ping", func(t *testing.T) {
		st, ctx := s.open(t)
		if err := st.Ping(ctx); err != nil {
			t.Fatalf("Ping: %v", err)
		}
	})
}

func make64(c byte) []byte {
	b := make([]byte, 64)
	for i := range b {
		b[i] = c
	}
	return b
}
