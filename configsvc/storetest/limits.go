package storetest

import (
	"bytes"
	"errors"
	"testing"

	"github.com/sluicehq/sluice/configsvc"
)

func (s *suite) testLimits(t *testing.T) {
	text := func(n int) []byte { return bytes.Repeat([]byte("a"), n) }

	t.Run("Refused", func(t *testing.T) {
		st, ctx := s.open(t)
		ref := configsvc.Service("orders")
		mustCreate(ctx, t, st, ref)
		mustPublish(ctx, t, st, ref, 0, put("a.txt", "v1"))
		for _, tc := range []struct {
			name    string
			changes []configsvc.Change
			limit   int64
			target  error
		}{
			{"FileOverLimit", []configsvc.Change{{File: "big.txt", Content: text(configsvc.MaxFileSize + 1)}}, configsvc.MaxFileSize, configsvc.ErrTooLarge},
			{"ChangesetOverLimit", []configsvc.Change{
				{File: "big1.txt", Content: text(configsvc.MaxFileSize)},
				{File: "big2.txt", Content: text(configsvc.MaxChangesetSize - configsvc.MaxFileSize + 1)},
			}, configsvc.MaxChangesetSize, configsvc.ErrTooLarge},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := st.Publish(ctx, ref, configsvc.Changeset{Base: 1, Changes: tc.changes})
				wantErr(t, "Publish", err, tc.target)
				var le *configsvc.LimitError
				if !errors.As(err, &le) || le.Limit != tc.limit {
					t.Fatalf("error %v, want a *configsvc.LimitError with limit %d", err, tc.limit)
				}
				wantUnchanged(ctx, t, st, ref, 1, files("a.txt", "v1"))
			})
		}
		t.Run("MessageOverLimit", func(t *testing.T) {
			_, err := st.Publish(ctx, ref, configsvc.Changeset{Base: 1, Message: string(text(configsvc.MaxMessageLen + 1)), Changes: []configsvc.Change{put("a.txt", "v2")}})
			wantErr(t, "Publish", err, configsvc.ErrTooLarge)
			wantUnchanged(ctx, t, st, ref, 1, files("a.txt", "v1"))
		})
	})

	// The limits themselves are allowed: a file of exactly MaxFileSize and a
	// changeset of exactly MaxChangesetSize publish and read back intact.
	t.Run("AtLimit", func(t *testing.T) {
		st, ctx := s.open(t)
		ref := configsvc.Service("orders")
		mustCreate(ctx, t, st, ref)
		one := text(configsvc.MaxFileSize)
		mustPublish(ctx, t, st, ref, 0, configsvc.Change{File: "one.txt", Content: one})
		two := bytes.Repeat([]byte("b"), configsvc.MaxChangesetSize-configsvc.MaxFileSize)
		mustPublish(ctx, t, st, ref, 1,
			configsvc.Change{File: "one.txt", Content: bytes.Repeat([]byte("c"), configsvc.MaxFileSize)},
			configsvc.Change{File: "two.txt", Content: two})
		got, meta, err := st.File(ctx, ref, "one.txt", 1)
		if err != nil || !bytes.Equal(got, one) || meta.Size != configsvc.MaxFileSize {
			t.Fatalf("File(one.txt, 1) = %d bytes, size %d, %v; want %d bytes", len(got), meta.Size, err, len(one))
		}
		rev, err := st.Revision(ctx, ref, 2)
		if err != nil {
			t.Fatalf("Revision 2: %v", err)
		}
		var total int
		for _, c := range rev.Changes {
			total += len(c.Content)
		}
		if total != configsvc.MaxChangesetSize {
			t.Fatalf("Revision 2 carries %d bytes of content, want %d", total, configsvc.MaxChangesetSize)
		}
	})
}
