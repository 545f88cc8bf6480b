package storetest

import (
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
)

func (s *suite) testPublish(t *testing.T) {
	t.Run("SingleFile", func(t *testing.T) {
		for _, ref := range []configsvc.Ref{configsvc.Service("orders"), configsvc.Group("redis-common")} {
			t.Run(ref.Kind.String(), func(t *testing.T) {
				st, ctx := s.open(t)
				mustCreate(ctx, t, st, ref)
				before := time.Now().Add(-2 * time.Second)
				content := "addr: redis:6379\npool: 10\n"
				rev, err := st.Publish(ctx, ref, configsvc.Changeset{
					Base: 0, Author: "alice", Message: "first",
					Changes: []configsvc.Change{put("redis.yaml", content)},
				})
				after := time.Now().Add(2 * time.Second)
				if err != nil {
					t.Fatalf("Publish: %v", err)
				}
				if rev.Number != 1 || rev.Author != "alice" || rev.Message != "first" || rev.RollbackOf != 0 {
					t.Fatalf("Publish returned %+v, want revision 1 by alice, message first", rev)
				}
				if rev.Time.Location() != time.UTC || rev.Time.Before(before) || rev.Time.After(after) {
					t.Fatalf("revision time %v, want the publish time in UTC", rev.Time)
				}
				if len(rev.Changes) != 1 || rev.Changes[0].File != "redis.yaml" || rev.Changes[0].Delete || rev.Changes[0].Content != nil {
					t.Fatalf("Publish returned changes %+v, want [redis.yaml] without content", rev.Changes)
				}

				h := mustHead(ctx, t, st, ref)
				if h.Revision != 1 || h.Author != "alice" {
					t.Fatalf("Head = revision %d by %q, want 1 by alice", h.Revision, h.Author)
				}
				if d := h.Updated.Sub(rev.Time); d < -time.Second || d > time.Second {
					t.Fatalf("Head.Updated = %v, want the revision time %v", h.Updated, rev.Time)
				}
				want := configsvc.FileMeta{Name: "redis.yaml", Revision: 1, SHA256: configsvc.Checksum([]byte(content)), Size: int64(len(content)), Format: configsvc.FormatYAML}
				if len(h.Files) != 1 || h.Files["redis.yaml"] != want {
					t.Fatalf("Head.Files = %+v, want {redis.yaml: %+v}", h.Files, want)
				}
				wantSnapshot(ctx, t, st, ref, 0, files("redis.yaml", content))
			})
		}
	})

	t.Run("MultiFile", func(t *testing.T) {
		st, ctx := s.open(t)
		ref := configsvc.Service("orders")
		mustCreate(ctx, t, st, ref)
		mustPublish(ctx, t, st, ref, 0,
			put("db.yaml", "host: db\n"),
			put("features.json", `{"beta": true}`),
			put("limits.toml", "rps = 100\n"),
			put("app.properties", "a.b=c\n"),
			put("notes.txt", "hello"),
			put("local.env", "A=1\n"),
		)
		rev2 := mustPublish(ctx, t, st, ref, 1,
			put("db.yaml", "host: db2\n"),
			del("notes.txt"),
			put("new.json", `[]`),
		)
		if got := rev2.Files(); len(got) != 3 {
			t.Fatalf("revision 2 changed %v, want 3 files", got)
		}
		h := mustHead(ctx, t, st, ref)
		wantMeta := map[string]struct {
			rev    int64
			format configsvc.Format
		}{
			"db.yaml":        {2, configsvc.FormatYAML},
			"features.json":  {1, configsvc.FormatJSON},
			"limits.toml":    {1, configsvc.FormatTOML},
			"app.properties": {1, configsvc.FormatProperties},
			"local.env":      {1, configsvc.FormatEnv},
			"new.json":       {2, configsvc.FormatJSON},
		}
		if len(h.Files) != len(wantMeta) {
			t.Fatalf("Head.Files has %d files, want %d: %+v", len(h.Files), len(wantMeta), h.Files)
		}
		for name, w := range wantMeta {
			m, ok := h.Files[name]
			if !ok || m.Name != name || m.Revision != w.rev || m.Format != w.format {
				t.Fatalf("Head.Files[%s] = %+v, want revision %d format %s", name, m, w.rev, w.format)
			}
		}
		wantSnapshot(ctx, t, st, ref, 0, files(
			"db.yaml", "host: db2\n", "features.json", `{"beta": true}`, "limits.toml", "rps = 100\n",
			"app.properties", "a.b=c\n", "local.env", "A=1\n", "new.json", `[]`))
		wantSnapshot(ctx, t, st, ref, 1, files(
			"db.yaml", "host: db\n", "features.json", `{"beta": true}`, "limits.toml", "rps = 100\n",
			"app.properties", "a.b=c\n", "notes.txt", "hello", "local.env", "A=1\n"))
	})

	// Content is validated once, by the configsvc.ValidatingStore in front
	// of the store (see testValidating); the store itself writes content
	// that does not parse, so that no publish pays for a second validation.
	t.Run("ContentNotValidated", func(t *testing.T) {
		st, ctx := s.open(t)
		ref := configsvc.Service("orders")
		mustCreate(ctx, t, st, ref)
		ch := st.Watch(ctx, ref, 0)
		changes := []configsvc.Change{put("bad.json", "{"), put("bad.yaml", "a: [1\n"), {File: "bin.txt", Content: []byte{'o', 'k', 0xff, 0xfe}}}
		mustPublish(ctx, t, st, ref, 0, changes...)
		wantSnapshot(ctx, t, st, ref, 0, files("bad.json", "{", "bad.yaml", "a: [1\n", "bin.txt", "ok\xff\xfe"))
		// Whatever the bytes, a watch delivers them unchanged.
		s.wantRevisions(t, ch, 1, 1, map[int64][]configsvc.Change{1: changes})
	})

	t.Run("Refused", func(t *testing.T) {
		st, ctx := s.open(t)
		ref := configsvc.Service("orders")
		mustCreate(ctx, t, st, ref)
		mustPublish(ctx, t, st, ref, 0, put("a.json", `{"v":1}`), put("b.yaml", "v: 1\n"))
		mustPublish(ctx, t, st, ref, 1, put("a.json", `{"v":2}`))
		state := files("a.json", `{"v":2}`, "b.yaml", "v: 1\n")

		for _, tc := range []struct {
			name   string
			cs     configsvc.Changeset
			target error
		}{
			{name: "StaleBase", cs: configsvc.Changeset{Base: 1, Changes: []configsvc.Change{put("a.json", `{"v":3}`)}}, target: configsvc.ErrConflict},
			{name: "BaseZero", cs: configsvc.Changeset{Base: 0, Changes: []configsvc.Change{put("c.json", `{}`)}}, target: configsvc.ErrConflict},
			{name: "FutureBase", cs: configsvc.Changeset{Base: 7, Changes: []configsvc.Change{put("a.json", `{"v":3}`)}}, target: configsvc.ErrConflict},
			{name: "Empty", cs: configsvc.Changeset{Base: 2}, target: configsvc.ErrInvalid},
			{name: "BadFileName", cs: configsvc.Changeset{Base: 2, Changes: []configsvc.Change{put("../x.txt", "x")}}, target: configsvc.ErrInvalid},
			{name: "SameFileTwice", cs: configsvc.Changeset{Base: 2, Changes: []configsvc.Change{put("c.txt", "1"), put("c.txt", "2")}}, target: configsvc.ErrInvalid},
			{name: "DeleteMissingFile", cs: configsvc.Changeset{Base: 2, Changes: []configsvc.Change{put("c.txt", "ok"), del("missing.txt")}}, target: configsvc.ErrInvalid},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := st.Publish(ctx, ref, tc.cs)
				wantErr(t, "Publish", err, tc.target)
				wantUnchanged(ctx, t, st, ref, 2, state)
			})
		}
	})
}
