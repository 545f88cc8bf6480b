package archive_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/archive"
	"github.com/sluicehq/sluice/configsvc/boltstore"
	"github.com/sluicehq/sluice/configsvc/boltstore/bolttest"
	"github.com/sluicehq/sluice/configsvc/zkstore"
	"github.com/sluicehq/sluice/configsvc/zkstore/zktest"
)

func ctxFor(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// seed fills st with what an archive carries: a service whose history
// retention pruned (so its archive starts at a base after revision 1),
// with binary content, a rollback, an active and an ended gray and a link
// to a group; an empty service; record collections and an audit log.
func seed(ctx context.Context, t *testing.T, st configsvc.Store) {
	t.Helper()
	orders, shared := configsvc.Service("orders"), configsvc.Group("shared")
	for _, ref := range []configsvc.Ref{orders, shared, configsvc.Service("empty")} {
		if err := st.Create(ctx, ref); err != nil {
			t.Fatal(err)
		}
	}
	publish := func(ref configsvc.Ref, base int64, changes ...configsvc.Change) {
		t.Helper()
		if _, err := st.Publish(ctx, ref, configsvc.Changeset{Base: base, Author: fmt.Sprint("author-", base), Message: fmt.Sprint("change ", base+1), Changes: changes}); err != nil {
			t.Fatalf("publish %s on %d: %v", ref, base, err)
		}
	}
	put := func(f, c string) configsvc.Change { return configsvc.Change{File: f, Content: []byte(c)} }
	publish(orders, 0, put("app.yaml", "pool: 1\n"), put("blob.bin", "\x00\xff\xfe secret ciphertext \x01"), put("old.txt", "old"))
	for n := int64(1); n < 8; n++ {
		changes := []configsvc.Change{put("app.yaml", fmt.Sprintf("pool: %d\n", n+1))}
		if n == 3 {
			changes = append(changes, configsvc.Change{File: "old.txt", Delete: true})
		}
		publish(orders, n, changes...)
	}
	if _, err := configsvc.Rollback(ctx, st, orders, configsvc.RollbackRequest{To: 6, Base: 8, Author: "ops"}); err != nil {
		t.Fatal(err)
	}
	publish(shared, 0, put("common.json", `{"region":"eu"}`))
	publish(shared, 1, put("common.json", `{"region":"us"}`))
	if err := st.Link(ctx, "orders", "shared"); err != nil {
		t.Fatal(err)
	}
	g, err := st.CreateGray(ctx, orders, configsvc.Gray{Name: "canary", Author: "alice", BaseRevision: 9,
		Changes: []configsvc.Change{put("app.yaml", "pool: 99\n")}, Selector: configsvc.Selector{Percent: 10}})
	if err != nil {
		t.Fatal(err)
	}
	g2, err := st.CreateGray(ctx, orders, configsvc.Gray{Name: "tried", Author: "bob", BaseRevision: 9,
		Changes: []configsvc.Change{put("new.txt", "n")}, Selector: configsvc.Selector{Instances: []string{"orders-1"}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.EndGray(ctx, orders, g2.ID, g2.Version, configsvc.GrayEnd{State: configsvc.GrayAbandoned, Reason: "done"}); err != nil {
		t.Fatal(err)
	}
	_ = g
	rs := st.Records()
	for _, r := range []struct{ c, id, data string }{
		{"tokens", "5e884898da28047151d0e56f8dc62927", `{"id":"t1","role":"admin","hash":"5e88…"}`},
		{"pins", "p1", `{"service":"orders","instance":"orders-1"}`},
		{"policies", "orders", `{"approvals":1}`},
	} {
		if err := rs.Put(ctx, r.c, r.id, []byte(r.data)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 7 {
		if _, err := rs.Append(ctx, "audit", []byte(fmt.Sprintf(`{"n":%d}`, i)), 0); err != nil {
			t.Fatal(err)
		}
	}
}

// openBolt opens a new bbolt store keeping 5 revisions per ref.
func openBolt(t *testing.T) *boltstore.Store {
	t.Helper()
	return bolttest.MustOpen(t, boltstore.Options{Retention: 5})
}

func mustExport(ctx context.Context, t *testing.T, st configsvc.Store) []byte {
	t.Helper()
	var buf bytes.Buffer
	if _, err := archive.Export(ctx, st, &buf, archive.ExportOptions{}); err != nil {
		t.Fatalf("Export: %v", err)
	}
	return buf.Bytes()
}

// sameContent fails the test unless st holds what archive src does.
func sameContent(ctx context.Context, t *testing.T, src []byte, st configsvc.Store) {
	t.Helper()
	if err := archive.Compare(bytes.NewReader(src), bytes.NewReader(mustExport(ctx, t, st))); err != nil {
		t.Fatalf("the store does not hold what the archive does: %v", err)
	}
}

func TestRoundTripBoltArchiveBolt(t *testing.T) {
	ctx := ctxFor(t)
	src := openBolt(t)
	seed(ctx, t, src)
	data := mustExport(ctx, t, src)

	dst := openBolt(t)
	before, err := dst.Generation(ctx)
	if err != nil {
		t.Fatal(err)
	}
	res, err := archive.Import(ctx, dst, bytes.NewReader(data), archive.ImportOptions{})
	if err != nil {
		t.Fatalf("Import: %v", err)
	}
	sameContent(ctx, t, data, dst)
	if res.Archive != res.Written || res.Skipped != (archive.Counts{}) {
		t.Fatalf("a fresh import wrote %+v and skipped %+v of %+v", res.Written, res.Skipped, res.Archive)
	}
	want := archive.Counts{Services: 2, Groups: 1, Revisions: 5 + 2, Grays: 2, Links: 1, Records: 3, LogEntries: 7}
	if res.Archive != want {
		t.Fatalf("archive counts = %+v, want %+v", res.Archive, want)
	}
	if res.Generation.ID == before.ID || res.Generation.Previous != before.ID {
		t.Fatalf("generation after import = %+v, want a new one after %s", res.Generation, before.ID)
	}
	// Spot checks that do not go through Export: the pruned base, the
	// binary content, the publish ids and times.
	orders := configsvc.Service("orders")
	for n := int64(5); n <= 9; n++ {
		a, err := src.Revision(ctx, orders, n)
		if err != nil {
			t.Fatal(err)
		}
		b, err := dst.Revision(ctx, orders, n)
		if err != nil {
			t.Fatalf("imported revision %d: %v", n, err)
		}
		if a.PublishID != b.PublishID || a.Parent != b.Parent || !a.Time.Equal(b.Time) || a.Author != b.Author || a.Message != b.Message || a.RollbackOf != b.RollbackOf {
			t.Fatalf("revision %d: imported %+v, source %+v", n, b, a)
		}
	}
	if _, err := dst.Revision(ctx, orders, 4); !errors.Is(err, configsvc.ErrCompacted) {
		t.Fatalf("revision 4 (pruned in the source) in the import: %v, want ErrCompacted", err)
	}
	blob, _, err := dst.File(ctx, orders, "blob.bin", 0)
	if err != nil || string(blob) != "\x00\xff\xfe secret ciphertext \x01" {
		t.Fatalf("binary content after import = %q, %v; want the bytes as stored", blob, err)
	}
	if h, err := dst.Head(ctx, orders); err != nil || h.Generation != res.Generation.ID {
		t.Fatalf("imported head generation = %q (%v), want the bumped %s", h.Generation, err, res.Generation.ID)
	}
}

func TestImportRefusesNonEmptyStore(t *testing.T) {
	ctx := ctxFor(t)
	src := openBolt(t)
	seed(ctx, t, src)
	data := mustExport(ctx, t, src)

	dst := openBolt(t)
	if err := dst.Create(ctx, configsvc.Service("mine")); err != nil {
		t.Fatal(err)
	}
	_, err := archive.Import(ctx, dst, bytes.NewReader(data), archive.ImportOptions{})
	if !errors.Is(err, archive.ErrNotEmpty) || !errors.Is(err, configsvc.ErrConflict) || !strings.Contains(err.Error(), "service") {
		t.Fatalf("Import into a store with a service: %v, want ErrNotEmpty naming what it holds", err)
	}
	if names, _ := dst.List(ctx, configsvc.KindService); len(names) != 1 {
		t.Fatalf("a refused import wrote services: %v", names)
	}

	onlyRecords := openBolt(t)
	if err := onlyRecords.Records().Put(ctx, "tokens", "x", []byte("mine")); err != nil {
		t.Fatal(err)
	}
	if _, err := archive.Import(ctx, onlyRecords, bytes.NewReader(data), archive.ImportOptions{}); !errors.Is(err, archive.ErrNotEmpty) {
		t.Fatalf("Import into a store with a token: %v, want ErrNotEmpty", err)
	}
}

func TestImportMergeKeep(t *testing.T) {
	ctx := ctxFor(t)
	src := openBolt(t)
	seed(ctx, t, src)
	data := mustExport(ctx, t, src)

	dst := openBolt(t)
	orders := configsvc.Service("orders")
	if err := dst.Create(ctx, orders); err != nil {
		t.Fatal(err)
	}
	mine, err := dst.Publish(ctx, orders, configsvc.Changeset{Base: 0, Author: "me", Message: "mine", Changes: []configsvc.Change{{File: "mine.txt", Content: []byte("m")}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := dst.Records().Put(ctx, "pins", "p1", []byte("my pin")); err != nil {
		t.Fatal(err)
	}
	if _, err := dst.Records().Append(ctx, "audit", []byte("my entry"), 0); err != nil {
		t.Fatal(err)
	}
	res, err := archive.Import(ctx, dst, bytes.NewReader(data), archive.ImportOptions{Merge: archive.MergeKeep})
	if err != nil {
		t.Fatalf("Import with merge keep: %v", err)
	}
	h, err := dst.Head(ctx, orders)
	if err != nil || h.Revision != 1 || h.PublishID != mine.PublishID {
		t.Fatalf("kept service head = %+v, %v; want the store's own revision 1", h, err)
	}
	if h.Links != nil {
		t.Fatalf("a kept service got the archive's links: %v", h.Links)
	}
	if pin, _ := dst.Records().Get(ctx, "pins", "p1"); string(pin) != "my pin" {
		t.Fatalf("kept record = %q, want the store's", pin)
	}
	if tok, err := dst.Records().Get(ctx, "tokens", "5e884898da28047151d0e56f8dc62927"); err != nil || !strings.Contains(string(tok), "admin") {
		t.Fatalf("a record the store lacked: %q, %v", tok, err)
	}
	if sh, err := dst.Head(ctx, configsvc.Group("shared")); err != nil || sh.Revision != 2 {
		t.Fatalf("a group the store lacked: %+v, %v", sh, err)
	}
	log, err := dst.Records().Scan(ctx, "audit", 0, 100)
	if err != nil || len(log) != 8 || string(log[len(log)-1].Data) != "my entry" {
		t.Fatalf("audit after merge = %d entries (%v), want the store's first and the archive's 7 after it", len(log), err)
	}
	if res.Skipped.Services != 1 || res.Skipped.Records != 1 || res.Written.Services != 1 || res.Written.Groups != 1 {
		t.Fatalf("merge keep result: written %+v, skipped %+v", res.Written, res.Skipped)
	}
}

// TestImportResumesAfterInterruption cuts the archive at every line (and
// inside lines), imports each cut (an import killed there), then imports
// the whole archive: the store ends holding exactly the archive, with no
// entry twice.
func TestImportResumesAfterInterruption(t *testing.T) {
	ctx := ctxFor(t)
	src := openBolt(t)
	seed(ctx, t, src)
	data := mustExport(ctx, t, src)
	lines := bytes.Count(data, []byte("\n"))
	for cut := 1; cut < lines; cut += 3 {
		t.Run(fmt.Sprint("line", cut), func(t *testing.T) {
			dst := openBolt(t)
			end := 0
			for range cut {
				end += bytes.IndexByte(data[end:], '\n') + 1
			}
			end += 10 // into the next line
			for _, part := range [][]byte{data[:end], data[:end+30]} {
				_, err := archive.Import(ctx, dst, bytes.NewReader(part), archive.ImportOptions{})
				if !errors.Is(err, archive.ErrCorrupt) || !strings.Contains(err.Error(), "truncated") {
					t.Fatalf("Import of the first %d bytes: %v, want a truncated archive", len(part), err)
				}
			}
			res, err := archive.Import(ctx, dst, bytes.NewReader(data), archive.ImportOptions{})
			if err != nil {
				t.Fatalf("Import after the interrupted ones: %v", err)
			}
			if !res.Resumed && cut > 1 {
				t.Fatalf("the import after an interrupted one did not say it resumed: %+v", res)
			}
			sameContent(ctx, t, data, dst)
		})
	}
}

// faultStore fails RecordStore.Put of the import's progress once, after
// failAfter puts: an import killed between an Append and saving its
// progress.
type faultStore struct {
	*boltstore.Store
	puts, failAfter int
}

func (f *faultStore) Records() configsvc.RecordStore { return faultRecords{f.Store.Records(), f} }

type faultRecords struct {
	configsvc.RecordStore
	f *faultStore
}

func (r faultRecords) Put(ctx context.Context, c, id string, data []byte) error {
	if c == archive.ImportsCollection {
		r.f.puts++
		if r.f.puts == r.f.failAfter {
			return fmt.Errorf("killed: %w", configsvc.ErrUnavailable)
		}
	}
	return r.RecordStore.Put(ctx, c, id, data)
}

func TestFaultImportKilledBetweenAppendAndProgressResumesWithoutDuplicates(t *testing.T) {
	ctx := ctxFor(t)
	src := openBolt(t)
	seed(ctx, t, src)
	data := mustExport(ctx, t, src)
	for _, failAfter := range []int{2, 4, 8} { // progress puts: 1 at start, then 1 per audit entry
		t.Run(fmt.Sprint("put", failAfter), func(t *testing.T) {
			dst := &faultStore{Store: openBolt(t), failAfter: failAfter}
			if _, err := archive.Import(ctx, dst, bytes.NewReader(data), archive.ImportOptions{}); !errors.Is(err, configsvc.ErrUnavailable) {
				t.Fatalf("Import with a failing progress put: %v, want the fault", err)
			}
			if _, err := archive.Import(ctx, dst, bytes.NewReader(data), archive.ImportOptions{}); err != nil {
				t.Fatalf("Import again: %v", err)
			}
			sameContent(ctx, t, data, dst.Store)
		})
	}
}

func TestImportAgainAfterDoneWritesNothing(t *testing.T) {
	ctx := ctxFor(t)
	src := openBolt(t)
	seed(ctx, t, src)
	data := mustExport(ctx, t, src)
	dst := openBolt(t)
	first, err := archive.Import(ctx, dst, bytes.NewReader(data), archive.ImportOptions{})
	if err != nil {
		t.Fatal(err)
	}
	again, err := archive.Import(ctx, dst, bytes.NewReader(data), archive.ImportOptions{})
	if err != nil || !again.AlreadyDone || again.Written != (archive.Counts{}) || again.Generation.ID != first.Generation.ID {
		t.Fatalf("second Import of the same archive = %+v, %v; want already done, nothing written, the same generation", again, err)
	}
	sameContent(ctx, t, data, dst)
}

// TestCorruptArchiveRefusedNamingLine changes one byte of a record: the
// import stops at that line, naming it, having written nothing of it.
func TestCorruptArchiveRefusedNamingLine(t *testing.T) {
	ctx := ctxFor(t)
	src := openBolt(t)
	seed(ctx, t, src)
	data := mustExport(ctx, t, src)
	lines := strings.SplitAfter(string(data), "\n")
	target := -1
	for i, l := range lines {
		if strings.Contains(l, `"type":"ref","ref":"group/shared"`) {
			target = i
		}
	}
	if target < 0 {
		t.Fatal("no ref record of group/shared in the archive")
	}
	bad := []byte(strings.Join(lines[:target], "") + strings.Replace(lines[target], "shared", "sharex", 1) + strings.Join(lines[target+1:], ""))
	dst := openBolt(t)
	_, err := archive.Import(ctx, dst, bytes.NewReader(bad), archive.ImportOptions{})
	want := fmt.Sprintf("archive line %d: checksum mismatch", target+1)
	if !errors.Is(err, archive.ErrCorrupt) || !strings.Contains(err.Error(), want) {
		t.Fatalf("Import of a changed archive: %v, want ErrCorrupt with %q", err, want)
	}
	if names, _ := dst.List(ctx, configsvc.KindGroup); len(names) != 0 {
		t.Fatalf("groups after the corrupt line was refused: %v", names)
	}
	if err := archive.Compare(bytes.NewReader(data), bytes.NewReader(bad)); !errors.Is(err, archive.ErrCorrupt) {
		t.Fatalf("Compare with a corrupt archive: %v, want ErrCorrupt", err)
	}

	dropped := []byte(strings.Join(lines[:target], "") + strings.Join(lines[target+1:], ""))
	if _, err := archive.Import(ctx, openBolt(t), bytes.NewReader(dropped), archive.ImportOptions{}); !errors.Is(err, archive.ErrCorrupt) ||
		!strings.Contains(err.Error(), fmt.Sprintf("archive line %d", target+1)) {
		t.Fatalf("Import of an archive missing a line: %v, want ErrCorrupt at line %d", err, target+1)
	}
	if _, err := archive.Import(ctx, openBolt(t), strings.NewReader("PK\x03\x04 not an archive"), archive.ImportOptions{}); !errors.Is(err, archive.ErrCorrupt) ||
		!strings.Contains(err.Error(), "line 1") {
		t.Fatalf("Import of something else: %v, want ErrCorrupt at line 1", err)
	}
}

func TestAttackArchiveLineBeyondLimit(t *testing.T) {
	ctx := ctxFor(t)
	// A line of 64 MiB that never ends: the reader stops at MaxLineBytes.
	hostile := io.MultiReader(strings.NewReader("sluice-archive 1\n"), io.LimitReader(zeros{}, 64<<20))
	_, err := archive.Import(ctx, openBolt(t), hostile, archive.ImportOptions{})
	if !errors.Is(err, archive.ErrCorrupt) || !strings.Contains(err.Error(), "archive line 2") || !strings.Contains(err.Error(), fmt.Sprint(archive.MaxLineBytes)) {
		t.Fatalf("Import of an endless line: %v, want ErrCorrupt naming line 2 and the limit", err)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = 'a'
	}
	return len(p), nil
}

func TestMergeModes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want archive.Merge
		ok   bool
	}{{"", archive.MergeNone, true}, {"none", archive.MergeNone, true}, {"keep", archive.MergeKeep, true}, {"overwrite", "", false}} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := archive.ParseMerge(tc.in)
			if got != tc.want || (err == nil) != tc.ok {
				t.Fatalf("ParseMerge(%q) = %q, %v", tc.in, got, err)
			}
			if !tc.ok && (!errors.Is(err, configsvc.ErrInvalid) || !strings.Contains(err.Error(), "merge")) {
				t.Fatalf("ParseMerge(%q) error %v, want ErrInvalid naming merge", tc.in, err)
			}
		})
	}
}

// chained returns an archive of the given JSON records with correct
// checksums: what a hostile archive that passes the checksum looks like.
func chained(records ...string) []byte {
	const magic = "sluice-archive 1\n"
	out := []byte(magic)
	prev := sha256.Sum256([]byte(magic))
	for _, r := range records {
		h := sha256.New()
		h.Write(prev[:])
		h.Write([]byte(r))
		h.Sum(prev[:0])
		out = append(out, hex.EncodeToString(prev[:])+" "+r+"\n"...)
	}
	return out
}

func TestAttackArchiveRecordsOverLimits(t *testing.T) {
	ctx := ctxFor(t)
	header := `{"type":"header","format":1,"id":"0123456789abcdef"}`
	big := base64.StdEncoding.EncodeToString(make([]byte, configsvc.MaxFileSize+1))
	var manyFiles []string
	for i := range 300 {
		manyFiles = append(manyFiles, fmt.Sprintf(`{"name":"f%d.txt","revision":1,"sha256":"00","size":%d}`, i, configsvc.MaxFileSize))
	}
	for _, tc := range []struct {
		name    string
		records []string
		want    []string
	}{
		{"FileOverMaxFileSize", []string{header, `{"type":"ref","ref":"service/x","head":2}`,
			`{"type":"base","ref":"service/x","revision":{"revision":1,"changes":[]},"files":[]}`,
			`{"type":"revision","ref":"service/x","revision":{"revision":2,"changes":[{"file":"a.txt","content":"` + big + `"}]}}`},
			[]string{"archive line 5", "revision 2 of service/x", `file "a.txt"`, fmt.Sprint(configsvc.MaxFileSize)}},
		{"BaseOverMaxBaseBytes", []string{header, `{"type":"ref","ref":"service/x","head":1}`,
			`{"type":"base","ref":"service/x","revision":{"revision":1,"changes":[]},"files":[` + strings.Join(manyFiles, ",") + `]}`},
			[]string{"archive line 4", "base content of service/x", fmt.Sprint(archive.MaxBaseBytes)}},
		{"RecordOverMaxRecordSize", []string{header,
			`{"type":"record","collection":"tokens","id":"x","data":"` + base64.StdEncoding.EncodeToString(make([]byte, configsvc.MaxRecordSize+1)) + `"}`},
			[]string{"archive line 3", "record tokens/x", fmt.Sprint(configsvc.MaxRecordSize)}},
		{"AuthorOverLimit", []string{header, `{"type":"ref","ref":"service/x","head":1}`,
			`{"type":"base","ref":"service/x","revision":{"revision":1,"author":"` + strings.Repeat("a", configsvc.MaxMessageLen+1) + `","changes":[]},"files":[]}`},
			[]string{"archive line 4", "revision.author", fmt.Sprint(configsvc.MaxMessageLen)}},
		{"BadRefName", []string{header, `{"type":"ref","ref":"service/../etc","head":0}`}, []string{"archive line 3", "ref"}},
		{"UnknownType", []string{header, `{"type":"shell","ref":"x"}`}, []string{"archive line 3", `unknown record type "shell"`}},
		{"OutOfOrder", []string{header, `{"type":"record","collection":"tokens","id":"x","data":"eA=="}`, `{"type":"ref","ref":"service/x","head":0}`},
			[]string{"archive line 4", "out of place"}},
		{"RevisionGap", []string{header, `{"type":"ref","ref":"service/x","head":3}`,
			`{"type":"base","ref":"service/x","revision":{"revision":1,"changes":[]},"files":[]}`,
			`{"type":"revision","ref":"service/x","revision":{"revision":3,"changes":[{"file":"a.txt","content":"eA=="}]}}`},
			[]string{"archive line 5", "must be 2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := archive.Import(ctx, openBolt(t), bytes.NewReader(chained(tc.records...)), archive.ImportOptions{})
			if !errors.Is(err, archive.ErrCorrupt) {
				t.Fatalf("Import: %v, want ErrCorrupt", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("Import error %q does not name %q", err, w)
				}
			}
		})
	}
}

// TestImportResumesOnZooKeeper interrupts imports into ZooKeeper at
// several lines (a base's content nodes may be half written then) and
// imports again: the store ends holding exactly the archive.
func TestImportResumesOnZooKeeper(t *testing.T) {
	zk := zktest.Start(t)
	ctx := ctxFor(t)
	src := openBolt(t)
	seed(ctx, t, src)
	data := mustExport(ctx, t, src)
	lines := bytes.Count(data, []byte("\n"))
	for i, cut := range []int{3, 6, lines / 2, lines - 3} {
		t.Run(fmt.Sprint("line", cut), func(t *testing.T) {
			st, err := zkstore.Open(ctx, zkstore.Config{Servers: []string{zk.Addr()}, Root: fmt.Sprintf("/archive-test/%d", i),
				SessionTimeout: 4 * time.Second, OpTimeout: 3 * time.Second, Retention: 5})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			end := 0
			for range cut {
				end += bytes.IndexByte(data[end:], '\n') + 1
			}
			if _, err := archive.Import(ctx, st, bytes.NewReader(data[:end]), archive.ImportOptions{}); !errors.Is(err, archive.ErrCorrupt) {
				t.Fatalf("Import of the first %d lines: %v, want a truncated archive", cut, err)
			}
			res, err := archive.Import(ctx, st, bytes.NewReader(data), archive.ImportOptions{})
			if err != nil || !res.Resumed {
				t.Fatalf("Import after the interrupted one: %+v, %v", res, err)
			}
			sameContent(ctx, t, data, st)
		})
	}
}
