package storetest

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/sluicehq/sluice/configsvc"
)

// testImport checks configsvc.Importer: a history copied revision by
// revision (from the oldest one retention kept) reads back the same from
// the copy, grays come over as they were, and what does not fit the head
// is refused.
func (s *suite) testImport(t *testing.T) {
	t.Run("CopiesHistory", s.testImportHistory)
	t.Run("Refused", s.testImportRefused)
	t.Run("Grays", s.testImportGrays)
	t.Run("Collections", s.testImportCollections)
}

// importer returns st, or the store it wraps (through Unwrap: a decorator
// under test, e.g. configsvc/fanout's shared watches, whose watchers must
// see what an import writes below it), as a configsvc.Importer, or fails
// the test.
func importer(t *testing.T, st configsvc.Store) configsvc.Importer {
	t.Helper()
	for cur := st; cur != nil; {
		if imp, ok := cur.(configsvc.Importer); ok {
			return imp
		}
		u, ok := cur.(interface{ Unwrap() configsvc.Store })
		if !ok {
			break
		}
		cur = u.Unwrap()
	}
	t.Fatalf("%T does not implement configsvc.Importer, nor does a store it wraps", st)
	return nil
}

// copyHistory imports every retained revision of ref from src into dst
// (where ref exists at revision 0) as an archive import does, and returns
// the oldest retained revision.
func copyHistory(ctx context.Context, t *testing.T, src, dst configsvc.Store, ref configsvc.Ref) int64 {
	t.Helper()
	head := mustHead(ctx, t, src, ref)
	oldest := head.Revision
	for before := int64(0); ; {
		page, err := src.Revisions(ctx, ref, before, 0)
		if err != nil {
			t.Fatalf("Revisions(%s, %d): %v", ref, before, err)
		}
		if len(page) == 0 {
			break
		}
		oldest = page[len(page)-1].Number
		before = oldest
	}
	base, err := src.Revision(ctx, ref, oldest)
	if err != nil {
		t.Fatalf("Revision(%s, %d): %v", ref, oldest, err)
	}
	snap := mustSnapshot(ctx, t, src, ref, oldest)
	metas := map[string]configsvc.FileMeta{}
	for name := range snap.Files {
		_, m, err := src.File(ctx, ref, name, oldest)
		if err != nil {
			t.Fatalf("File(%s, %s, %d): %v", ref, name, oldest, err)
		}
		metas[name] = m
	}
	imp := importer(t, dst)
	if err := imp.ImportBase(ctx, ref, base, metas, snap.Files); err != nil {
		t.Fatalf("ImportBase(%s, %d): %v", ref, oldest, err)
	}
	for n := oldest + 1; n <= head.Revision; n++ {
		rev, err := src.Revision(ctx, ref, n)
		if err != nil {
			t.Fatalf("Revision(%s, %d): %v", ref, n, err)
		}
		if err := imp.ImportRevision(ctx, ref, rev); err != nil {
			t.Fatalf("ImportRevision(%s, %d): %v", ref, n, err)
		}
	}
	return oldest
}

// sameRevision compares two revisions but for the generation (a store's
// own) and the order of nothing else.
func sameRevision(a, b configsvc.Revision) bool {
	a.Generation, b.Generation = "", ""
	a.Time, b.Time = a.Time.UTC(), b.Time.UTC()
	return reflect.DeepEqual(a, b)
}

func (s *suite) testImportHistory(t *testing.T) {
	if s.opts.OpenWithRetention == nil {
		t.Skip("storetest: Options.OpenWithRetention is nil: an imported history that starts after revision 1 is not checked")
	}
	src := s.opts.OpenWithRetention(t, 3)
	ctx := s.ctx(t)
	ref := configsvc.Service("orders")
	mustCreate(ctx, t, src, ref)
	mustPublish(ctx, t, src, ref, 0, put("a.yaml", "a: 1\n"), put("b.txt", "bee"), put("gone.txt", "x"))
	mustPublish(ctx, t, src, ref, 1, put("a.yaml", "a: 2\n"))
	mustPublish(ctx, t, src, ref, 2, put("c.json", `{"c":3}`), del("gone.txt"))
	mustPublish(ctx, t, src, ref, 3, put("a.yaml", "a: 4\n"))
	mustPublish(ctx, t, src, ref, 4, put("c.json", `{"c":5}`))
	if _, err := configsvc.Rollback(ctx, src, ref, configsvc.RollbackRequest{Base: 5, To: 4, Author: "undo"}); err != nil {
		t.Fatalf("Rollback: %v", err)
	}
	srcHead := mustHead(ctx, t, src, ref)

	dst, _ := s.open(t)
	mustCreate(ctx, t, dst, ref)
	oldest := copyHistory(ctx, t, src, dst, ref)
	if oldest != 4 {
		t.Fatalf("the source retains revisions from %d, want 4 (retention 3, head 6)", oldest)
	}
	h := mustHead(ctx, t, dst, ref)
	if h.Revision != srcHead.Revision || !reflect.DeepEqual(h.Files, srcHead.Files) || !h.Updated.Equal(srcHead.Updated) ||
		h.Author != srcHead.Author || h.PublishID != srcHead.PublishID {
		t.Fatalf("imported head = %+v\nwant %+v", h, srcHead)
	}
	for n := oldest; n <= srcHead.Revision; n++ {
		want, err := src.Revision(ctx, ref, n)
		if err != nil {
			t.Fatal(err)
		}
		got, err := dst.Revision(ctx, ref, n)
		if err != nil {
			t.Fatalf("imported Revision(%d): %v", n, err)
		}
		if !sameRevision(got, want) {
			t.Fatalf("imported Revision(%d) = %+v\nwant %+v", n, got, want)
		}
		if got.Generation != h.Generation {
			t.Fatalf("imported Revision(%d) has generation %q, the importing store's is %q", n, got.Generation, h.Generation)
		}
		if snap := mustSnapshot(ctx, t, dst, ref, n); !equalFiles(snap.Files, mustSnapshot(ctx, t, src, ref, n).Files) {
			t.Fatalf("imported Snapshot(%d) = %q", n, snap.Files)
		}
	}
	wantList, err := src.Revisions(ctx, ref, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	gotList, err := dst.Revisions(ctx, ref, 0, 0)
	if err != nil || !slices.EqualFunc(gotList, wantList, sameRevision) {
		t.Fatalf("imported Revisions = %+v, %v\nwant %+v", gotList, err, wantList)
	}
	_, err = dst.Revision(ctx, ref, oldest-1)
	wantErr(t, "Revision below the imported base", err, configsvc.ErrCompacted)

	// Publishing goes on from the imported head as from the source's.
	mustPublish(ctx, t, dst, ref, srcHead.Revision, put("b.txt", "bee 7"), del("a.yaml"))
	snap := mustSnapshot(ctx, t, dst, ref, 0)
	if want := files("b.txt", "bee 7", "c.json", `{"c":3}`); !equalFiles(snap.Files, want) {
		t.Fatalf("Snapshot after a publish on the imported head = %q, want %q", snap.Files, want)
	}
	if old := mustSnapshot(ctx, t, dst, ref, oldest); !equalFiles(old.Files, mustSnapshot(ctx, t, src, ref, oldest).Files) {
		t.Fatalf("the imported base changed after a publish: %q", old.Files)
	}

	// Retention on the importing store prunes the imported base like any
	// revision, keeping what the retained revisions read.
	short := s.opts.OpenWithRetention(t, 2)
	mustCreate(ctx, t, short, ref)
	copyHistory(ctx, t, src, short, ref)
	for n := srcHead.Revision; n < srcHead.Revision+6; n++ {
		mustPublish(ctx, t, short, ref, n, put("d.txt", fmt.Sprint("d ", n)))
	}
	last := srcHead.Revision + 6
	want := files("a.yaml", "a: 4\n", "b.txt", "bee", "c.json", `{"c":3}`, "d.txt", fmt.Sprint("d ", last-2))
	if snap := mustSnapshot(ctx, t, short, ref, last-1); !equalFiles(snap.Files, want) {
		t.Fatalf("Snapshot(%d) after pruning past the imported base = %q, want %q", last-1, snap.Files, want)
	}
	_, err = short.Revision(ctx, ref, oldest)
	wantErr(t, "the imported base once retention passed it", err, configsvc.ErrCompacted)
}

func (s *suite) testImportRefused(t *testing.T) {
	st, ctx := s.open(t)
	imp := importer(t, st)
	ref := configsvc.Service("orders")
	mustCreate(ctx, t, st, ref)
	base := configsvc.Revision{Number: 3, Author: "a", Message: "m", Changes: []configsvc.Change{{File: "a.yaml"}}, PublishID: "p3"}
	meta := configsvc.FileMeta{Name: "a.yaml", Revision: 3, SHA256: configsvc.Checksum([]byte("a: 1\n")), Size: 5}
	bad := map[string][]byte{"a.yaml": []byte("a: 2\n")}
	wantErr(t, "ImportBase with content that does not match", imp.ImportBase(ctx, ref, base, map[string]configsvc.FileMeta{"a.yaml": meta}, bad), configsvc.ErrInvalid)
	wantErr(t, "ImportRevision on a head at 0 with number 3", imp.ImportRevision(ctx, ref, configsvc.Revision{Number: 3, Changes: []configsvc.Change{put("x.txt", "x")}}), configsvc.ErrConflict)
	if err := imp.ImportBase(ctx, ref, base, map[string]configsvc.FileMeta{"a.yaml": meta}, map[string][]byte{"a.yaml": []byte("a: 1\n")}); err != nil {
		t.Fatalf("ImportBase: %v", err)
	}
	wantErr(t, "a second ImportBase", imp.ImportBase(ctx, ref, base, map[string]configsvc.FileMeta{"a.yaml": meta}, map[string][]byte{"a.yaml": []byte("a: 1\n")}), configsvc.ErrConflict)
	wantErr(t, "ImportRevision skipping a number", imp.ImportRevision(ctx, ref, configsvc.Revision{Number: 5, Changes: []configsvc.Change{put("x.txt", "x")}}), configsvc.ErrConflict)
	huge := configsvc.Revision{Number: 4, Changes: []configsvc.Change{{File: "x.txt", Content: make([]byte, configsvc.MaxFileSize+1)}}}
	wantErr(t, "ImportRevision of a file over MaxFileSize", imp.ImportRevision(ctx, ref, huge), configsvc.ErrTooLarge)
	wantErr(t, "ImportBase of a missing ref", imp.ImportBase(ctx, configsvc.Service("nope"), base, map[string]configsvc.FileMeta{"a.yaml": meta}, map[string][]byte{"a.yaml": []byte("a: 1\n")}), configsvc.ErrNotFound)
	if h := mustHead(ctx, t, st, ref); h.Revision != 3 || h.PublishID != "p3" {
		t.Fatalf("head after refused imports = revision %d (%q), want 3 (p3)", h.Revision, h.PublishID)
	}
}

func (s *suite) testImportGrays(t *testing.T) {
	src, ctx := s.open(t)
	ref := configsvc.Service("orders")
	grayBase(ctx, t, src, ref)
	active, err := src.CreateGray(ctx, ref, newGray(2))
	if err != nil {
		t.Fatal(err)
	}
	other := configsvc.Gray{Name: "other", Author: "a", BaseRevision: 2, Changes: []configsvc.Change{put("b.json", `{"v":9}`)},
		Selector: configsvc.Selector{Percent: 5}}
	ended, err := src.CreateGray(ctx, ref, other)
	if err != nil {
		t.Fatal(err)
	}
	if ended, _, err = src.EndGray(ctx, ref, ended.ID, ended.Version, configsvc.GrayEnd{State: configsvc.GrayAbandoned, Reason: "no"}); err != nil {
		t.Fatal(err)
	}

	dst, _ := s.open(t)
	imp := importer(t, dst)
	mustCreate(ctx, t, dst, ref)
	copyHistory(ctx, t, src, dst, ref)
	for _, id := range []string{active.ID, ended.ID} {
		g, err := src.Gray(ctx, ref, id)
		if err != nil {
			t.Fatal(err)
		}
		if err := imp.ImportGray(ctx, ref, g); err != nil {
			t.Fatalf("ImportGray(%s): %v", id, err)
		}
		got, err := dst.Gray(ctx, ref, id)
		if err != nil {
			t.Fatalf("Gray(%s) after import: %v", id, err)
		}
		if !reflect.DeepEqual(got, g) {
			t.Fatalf("imported gray = %+v\nwant %+v", got, g)
		}
		wantErr(t, "a second ImportGray", imp.ImportGray(ctx, ref, g), configsvc.ErrConflict)
	}
	if h, want := mustHead(ctx, t, dst, ref), mustHead(ctx, t, src, ref); !reflect.DeepEqual(h.Grays, want.Grays) {
		t.Fatalf("imported head grays = %+v, want %+v", h.Grays, want.Grays)
	}
	got, err := dst.Grays(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	want, err := src.Grays(ctx, ref)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("imported Grays = %+v, %v\nwant %+v", got, err, want)
	}
	bad := active
	bad.ID = "g-000000000001"
	bad.State = "paused"
	if err := imp.ImportGray(ctx, ref, bad); !errors.Is(err, configsvc.ErrInvalid) || !strings.Contains(err.Error(), "state") {
		t.Fatalf("ImportGray of an unknown state: %v, want ErrInvalid naming the state", err)
	}
}

func (s *suite) testImportCollections(t *testing.T) {
	st, ctx := s.open(t)
	imp := importer(t, st)
	if recs, logs, err := imp.Collections(ctx); err != nil || len(recs) != 0 || len(logs) != 0 {
		t.Fatalf("Collections of an empty store = %q, %q, %v", recs, logs, err)
	}
	rs := st.Records()
	for _, c := range []string{"tokens", "pins"} {
		if err := rs.Put(ctx, c, "a", []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if err := rs.Put(ctx, "emptied", "a", []byte("x")); err != nil {
		t.Fatal(err)
	}
	if err := rs.Delete(ctx, "emptied", "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := rs.Append(ctx, "audit", []byte("entry"), 0); err != nil {
		t.Fatal(err)
	}
	recs, logs, err := imp.Collections(ctx)
	if err != nil || !slices.Equal(recs, []string{"pins", "tokens"}) || !slices.Equal(logs, []string{"audit"}) {
		t.Fatalf("Collections = %q, %q, %v; want [pins tokens], [audit]", recs, logs, err)
	}
}
