package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/format"
)

// testValidating runs publishes through configsvc.Validating in front of
// the store: the one layer that validates content, on every publishing
// path (Publish, Rollback, Check).
func (s *suite) testValidating(t *testing.T) {
	// setup returns the store, a validating store in front of it with the
	// format validator, and orders at revision 2.
	setup := func(t *testing.T, extra configsvc.Validator) (configsvc.Store, *configsvc.ValidatingStore, context.Context, configsvc.Ref, map[string][]byte) {
		t.Helper()
		st, ctx := s.open(t)
		vs := configsvc.Validating(st, configsvc.Validators(format.Validator{}, extra))
		ref := configsvc.Service("orders")
		mustCreate(ctx, t, st, ref)
		mustPublish(ctx, t, vs, ref, 0, put("a.json", `{"v":1}`), put("b.yaml", "v: 1\n"))
		mustPublish(ctx, t, vs, ref, 1, put("a.json", `{"v":2}`))
		return st, vs, ctx, ref, files("a.json", `{"v":2}`, "b.yaml", "v: 1\n")
	}

	t.Run("FormatRefused", func(t *testing.T) {
		st, vs, ctx, ref, state := setup(t, nil)
		for _, tc := range []struct {
			name    string
			changes []configsvc.Change
			check   func(t *testing.T, err error)
		}{
			{"BadJSON", []configsvc.Change{put("c.txt", "fine"), put("bad.json", "{\n  \"a\": 1,\n  \"b\": ]\n}")}, wantParseError("bad.json", 3)},
			{"BadYAML", []configsvc.Change{put("b.yaml", "a: 1\nb: [1, 2\nc: 3\n")}, wantParseErrorLine("b.yaml")},
			{"BadUTF8Text", []configsvc.Change{{File: "notes.txt", Content: []byte("ok\n\xff\xfe")}}, wantParseError("notes.txt", 2)},
		} {
			t.Run(tc.name, func(t *testing.T) {
				_, err := vs.Publish(ctx, ref, configsvc.Changeset{Base: 2, Changes: tc.changes})
				wantErr(t, "Publish", err, configsvc.ErrInvalid)
				var ce *configsvc.ContentError
				if !errors.As(err, &ce) {
					t.Fatalf("error %v is not a *configsvc.ContentError", err)
				}
				tc.check(t, err)
				wantUnchanged(ctx, t, st, ref, 2, state)
			})
		}
		t.Run("DeletionNotChecked", func(t *testing.T) {
			mustPublish(ctx, t, st, ref, 2, put("old.json", "{")) // written before validation existed
			mustPublish(ctx, t, vs, ref, 3, del("old.json"))
		})
	})

	// A Validator's refusal that is not a parse error (a schema's
	// *FieldError) is a *ContentError too; a malformed changeset is refused
	// before any Validator runs, as the plain *FieldError it is.
	t.Run("SchemaRefused", func(t *testing.T) {
		var calls atomic.Int32
		schema := configsvc.EachFile(func(_ configsvc.Ref, file string, content []byte) error {
			calls.Add(1)
			if strings.Contains(string(content), "forbidden") {
				return &configsvc.FieldError{Field: "limits.rps", Value: "forbidden", Msg: "must be a number"}
			}
			return nil
		})
		st, vs, ctx, ref, state := setup(t, schema)
		calls.Store(0)
		_, err := vs.Publish(ctx, ref, configsvc.Changeset{Base: 2, Changes: []configsvc.Change{put("limits.yaml", "rps: forbidden\n")}})
		var ce *configsvc.ContentError
		var fe *configsvc.FieldError
		if !errors.As(err, &ce) || !errors.As(err, &fe) || fe.Field != "limits.rps" {
			t.Fatalf("schema refusal = %v, want a *ContentError wrapping the *FieldError on limits.rps", err)
		}
		wantUnchanged(ctx, t, st, ref, 2, state)
		calls.Store(0)
		_, err = vs.Publish(ctx, ref, configsvc.Changeset{Base: 2, Changes: []configsvc.Change{put("ok.yaml", "a: 1\n"), put("../x", "forbidden")}})
		if !errors.As(err, &fe) || errors.As(err, &ce) || fe.Field != "changes[1].file" {
			t.Fatalf("bad file name = %v, want a plain *FieldError on changes[1].file", err)
		}
		if calls.Load() != 0 {
			t.Fatalf("the validator ran %d times on a changeset refused by its shape; want 0", calls.Load())
		}
		wantUnchanged(ctx, t, st, ref, 2, state)
	})

	// A Validator reads the store it validates for: here it refuses
	// changes to a service whose head holds "frozen".
	t.Run("ValidatorReadsStore", func(t *testing.T) {
		frozen := configsvc.ValidatorFunc(func(ctx context.Context, r configsvc.Reader, ref configsvc.Ref, cs configsvc.Changeset) error {
			h, err := r.Head(ctx, ref)
			if err != nil {
				return err
			}
			if _, ok := h.Files["frozen"]; ok {
				return &configsvc.FieldError{Field: "service", Value: ref.Name, Msg: fmt.Sprintf("is frozen at revision %d", h.Revision)}
			}
			return nil
		})
		st, vs, ctx, ref, state := setup(t, frozen)
		mustPublish(ctx, t, vs, ref, 2, put("frozen", ""))
		state["frozen"] = []byte{}
		_, err := vs.Publish(ctx, ref, configsvc.Changeset{Base: 3, Changes: []configsvc.Change{put("a.json", "{}")}})
		if !errors.As(err, new(*configsvc.ContentError)) || !strings.Contains(err.Error(), "frozen at revision 3") {
			t.Fatalf("publish to a frozen service = %v, want a *ContentError saying frozen at revision 3", err)
		}
		wantUnchanged(ctx, t, st, ref, 3, state)
	})

	// Rollback publishes through the same layer: restoring content the
	// validators now refuse is refused.
	t.Run("Rollback", func(t *testing.T) {
		st, vs, ctx, ref, state := setup(t, nil)
		mustPublish(ctx, t, st, ref, 2, put("a.json", "{")) // past the validation
		mustPublish(ctx, t, vs, ref, 3, put("a.json", `{"v":4}`))
		state["a.json"] = []byte(`{"v":4}`)
		_, err := configsvc.Rollback(ctx, vs, ref, configsvc.RollbackRequest{To: 3, Author: "tester"})
		if !errors.As(err, new(*configsvc.ContentError)) {
			t.Fatalf("rollback to unparseable content = %v, want a *ContentError", err)
		}
		wantUnchanged(ctx, t, st, ref, 4, state)
		rev, err := configsvc.Rollback(ctx, vs, ref, configsvc.RollbackRequest{To: 2, Author: "tester"})
		if err != nil || rev.Number != 5 {
			t.Fatalf("rollback to valid content = %+v, %v; want revision 5", rev, err)
		}
	})

	t.Run("CheckWritesNothing", func(t *testing.T) {
		st, vs, ctx, ref, state := setup(t, nil)
		if err := vs.Check(ctx, ref, configsvc.Changeset{Base: 2, Changes: []configsvc.Change{put("c.json", "[]")}}); err != nil {
			t.Fatalf("Check of a valid changeset = %v", err)
		}
		err := vs.Check(ctx, ref, configsvc.Changeset{Base: 2, Changes: []configsvc.Change{put("c.json", "[")}})
		if !errors.As(err, new(*configsvc.ContentError)) {
			t.Fatalf("Check of bad JSON = %v, want a *ContentError", err)
		}
		wantUnchanged(ctx, t, st, ref, 2, state)
	})

	// A Validator that fails for another reason (it could not read the
	// store) is passed on as it is, not as refused content.
	t.Run("ValidatorUnavailable", func(t *testing.T) {
		down := configsvc.ValidatorFunc(func(context.Context, configsvc.Reader, configsvc.Ref, configsvc.Changeset) error {
			return fmt.Errorf("read schema: %w", configsvc.ErrUnavailable)
		})
		st, _, ctx, ref, state := setup(t, nil)
		vs := configsvc.Validating(st, down)
		_, err := vs.Publish(ctx, ref, configsvc.Changeset{Base: 2, Changes: []configsvc.Change{put("c.json", "[]")}})
		if !errors.Is(err, configsvc.ErrUnavailable) || errors.As(err, new(*configsvc.ContentError)) {
			t.Fatalf("validator error = %v, want ErrUnavailable and no *ContentError", err)
		}
		wantUnchanged(ctx, t, st, ref, 2, state)
	})
}

// wantParseError returns a check that err is a *configsvc.ParseError naming
// file and line.
func wantParseError(file string, line int) func(t *testing.T, err error) {
	return func(t *testing.T, err error) {
		t.Helper()
		var pe *configsvc.ParseError
		if !errors.As(err, &pe) {
			t.Fatalf("error %v is not a *configsvc.ParseError", err)
		}
		if pe.File != file || pe.Line != line || pe.Column < 1 {
			t.Fatalf("ParseError %q at %s:%d:%d, want %s line %d with a column", pe.Msg, pe.File, pe.Line, pe.Column, file, line)
		}
		if !strings.Contains(err.Error(), file) {
			t.Fatalf("error %q does not name the file %s", err, file)
		}
	}
}

// wantParseErrorLine is wantParseError for parsers that place the error on a
// line that varies between versions: any line of the content is accepted.
func wantParseErrorLine(file string) func(t *testing.T, err error) {
	return func(t *testing.T, err error) {
		t.Helper()
		var pe *configsvc.ParseError
		if !errors.As(err, &pe) {
			t.Fatalf("error %v is not a *configsvc.ParseError", err)
		}
		if pe.File != file || pe.Line < 1 {
			t.Fatalf("ParseError %q at %s:%d:%d, want %s with a line", pe.Msg, pe.File, pe.Line, pe.Column, file)
		}
	}
}
