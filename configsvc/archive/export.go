package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/sluicehq/sluice/configsvc"
)

// ImportsCollection is the record collection in which Import keeps its
// progress, one record per archive id. Export leaves it out.
const ImportsCollection = "sluice-imports"

// exportAttempts bounds how often Export reads one ref again when
// retention pruned its oldest revision while it was being read.
const exportAttempts = 3

// ExportOptions are the optional settings of Export; the zero value is
// ready to use.
type ExportOptions struct {
	// Now is the clock of the header's creation time; nil means time.Now.
	Now func() time.Time
}

// Export writes every service and group of st with its retained history,
// grays, links, record collections and logs to w as an archive (see the
// package documentation), streaming: it holds at most one base's content
// and one revision in memory. st must implement configsvc.Importer (for
// its list of collections; ErrInvalid otherwise). It returns what it
// wrote. Export reads a store that others may be writing: each ref is
// consistent up to the head it read, and a revision pruned by retention
// while it was read fails the export (export again, or stop the writers).
// Errors wrap the store's (ErrUnavailable …) or w's.
func Export(ctx context.Context, st configsvc.Store, w io.Writer, opts ExportOptions) (Counts, error) {
	var counts Counts
	imp, ok := st.(configsvc.Importer)
	if !ok {
		return counts, fmt.Errorf("archive: export: %T cannot list its collections: %w", st, configsvc.ErrInvalid)
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	aw, err := newWriter(w)
	if err != nil {
		return counts, fmt.Errorf("archive: export: %w", err)
	}
	gen, err := st.Generation(ctx)
	if err != nil {
		return counts, fmt.Errorf("archive: export: read the generation: %w", err)
	}
	created := now().UTC()
	if err := aw.write(&record{Type: typeHeader, Format: Format, ID: configsvc.NewID(8), Created: &created, Generation: &gen}); err != nil {
		return counts, err
	}
	var links [][2]string
	for _, kind := range []configsvc.Kind{configsvc.KindService, configsvc.KindGroup} {
		names, err := st.List(ctx, kind)
		if err != nil {
			return counts, fmt.Errorf("archive: export: list %ss: %w", kind, err)
		}
		for _, name := range names {
			ref := configsvc.Ref{Kind: kind, Name: name}
			head, started, err := exportRef(ctx, st, aw, ref, &counts)
			if errors.Is(err, configsvc.ErrNotFound) && !started {
				continue // deleted before the export reached it
			}
			if err != nil {
				return counts, fmt.Errorf("archive: export %s: %w", ref, err)
			}
			if kind == configsvc.KindService {
				counts.Services++
				for _, g := range head.Links {
					links = append(links, [2]string{name, g})
				}
			} else {
				counts.Groups++
			}
		}
	}
	for _, l := range links {
		if err := aw.write(&record{Type: typeLink, Service: l[0], Group: l[1]}); err != nil {
			return counts, err
		}
		counts.Links++
	}
	colls, logs, err := imp.Collections(ctx)
	if err != nil {
		return counts, fmt.Errorf("archive: export: list collections: %w", err)
	}
	for _, c := range colls {
		if c == ImportsCollection {
			continue
		}
		recs, err := st.Records().List(ctx, c)
		if err != nil {
			return counts, fmt.Errorf("archive: export records %s: %w", c, err)
		}
		for _, r := range recs {
			if err := aw.write(&record{Type: typeRecord, Collection: c, ID: r.ID, Data: r.Data}); err != nil {
				return counts, err
			}
			counts.Records++
		}
	}
	for _, c := range logs {
		n, err := exportLog(ctx, st.Records(), aw, c)
		counts.LogEntries += n
		if err != nil {
			return counts, fmt.Errorf("archive: export log %s: %w", c, err)
		}
	}
	if err := aw.write(&record{Type: typeEnd, Counts: &counts}); err != nil {
		return counts, err
	}
	return counts, aw.flush()
}

// exportRef writes ref's records: its ref record, base, files, revisions
// and grays. It returns the head it exported; started says whether it
// wrote anything (a ref deleted after that fails the export: its records
// would be incomplete).
func exportRef(ctx context.Context, st configsvc.Store, aw *writer, ref configsvc.Ref, counts *Counts) (head configsvc.Head, started bool, err error) {
	head, err = exportRefRecords(ctx, st, aw, ref, counts, &started)
	return head, started, err
}

func exportRefRecords(ctx context.Context, st configsvc.Store, aw *writer, ref configsvc.Ref, counts *Counts, started *bool) (configsvc.Head, error) {
	var (
		head  configsvc.Head
		base  configsvc.Revision
		metas []configsvc.FileMeta
		snap  configsvc.Snapshot
		err   error
	)
	for attempt := 0; ; attempt++ {
		head, base, metas, snap, err = readBase(ctx, st, ref)
		if !errors.Is(err, configsvc.ErrCompacted) || attempt+1 == exportAttempts {
			break
		}
	}
	if err != nil {
		return head, err
	}
	*started = true
	if err := aw.write(&record{Type: typeRef, Ref: ref.String(), Head: head.Revision}); err != nil {
		return head, err
	}
	if head.Revision > 0 {
		base.Generation = ""
		if err := aw.write(&record{Type: typeBase, Ref: ref.String(), Revision: &base, Files: metas}); err != nil {
			return head, err
		}
		for _, m := range metas {
			if err := aw.write(&record{Type: typeFile, Ref: ref.String(), Name: m.Name, Content: snap.Files[m.Name]}); err != nil {
				return head, err
			}
		}
		counts.Revisions++
		snap = configsvc.Snapshot{}
		for n := base.Number + 1; n <= head.Revision; n++ {
			rev, err := st.Revision(ctx, ref, n)
			if err != nil {
				return head, fmt.Errorf("read revision %d: %w", n, err)
			}
			rev.Generation = ""
			if err := aw.write(&record{Type: typeRevision, Ref: ref.String(), Revision: &rev}); err != nil {
				return head, err
			}
			counts.Revisions++
		}
	}
	grays, err := st.Grays(ctx, ref)
	if err != nil {
		return head, fmt.Errorf("list grays: %w", err)
	}
	for _, g := range grays {
		full, err := st.Gray(ctx, ref, g.ID)
		if errors.Is(err, configsvc.ErrNotFound) {
			continue // dropped from the ended ones meanwhile
		}
		if err != nil {
			return head, fmt.Errorf("read gray %s: %w", g.ID, err)
		}
		full.MainChanged = nil
		if err := aw.write(&record{Type: typeGray, Ref: ref.String(), Gray: &full}); err != nil {
			return head, err
		}
		counts.Grays++
	}
	return head, nil
}

// readBase reads ref's head and its oldest retained revision with the
// manifest and content of every file there.
func readBase(ctx context.Context, st configsvc.Store, ref configsvc.Ref) (configsvc.Head, configsvc.Revision, []configsvc.FileMeta, configsvc.Snapshot, error) {
	var (
		base  configsvc.Revision
		metas []configsvc.FileMeta
		snap  configsvc.Snapshot
	)
	head, err := st.Head(ctx, ref)
	if err != nil || head.Revision == 0 {
		return head, base, metas, snap, err
	}
	oldest := head.Revision
	for before := head.Revision + 1; ; {
		page, err := st.Revisions(ctx, ref, before, configsvc.MaxPageSize)
		if err != nil {
			return head, base, metas, snap, fmt.Errorf("list revisions: %w", err)
		}
		if len(page) == 0 {
			break
		}
		oldest = page[len(page)-1].Number
		before = oldest
	}
	if base, err = st.Revision(ctx, ref, oldest); err != nil {
		return head, base, metas, snap, fmt.Errorf("read revision %d: %w", oldest, err)
	}
	if snap, err = st.Snapshot(ctx, ref, oldest); err != nil {
		return head, base, metas, snap, fmt.Errorf("read revision %d: %w", oldest, err)
	}
	names := make([]string, 0, len(snap.Files))
	for name := range snap.Files {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		_, m, err := st.File(ctx, ref, name, oldest)
		if err != nil {
			return head, base, metas, snap, fmt.Errorf("read file %s at revision %d: %w", name, oldest, err)
		}
		metas = append(metas, m)
	}
	for i := range base.Changes {
		base.Changes[i].Content = nil // the file records carry it
	}
	return head, base, metas, snap, nil
}

// exportLog writes log c oldest entry first: a first pass finds the
// sequence numbers it holds (newest first, pages of MaxPageSize), a
// second reads them back in ascending windows.
func exportLog(ctx context.Context, rs configsvc.RecordStore, aw *writer, c string) (int, error) {
	var seqs []int64
	for before := int64(0); ; {
		page, err := rs.Scan(ctx, c, before, configsvc.MaxPageSize)
		if err != nil {
			return 0, err
		}
		if len(page) == 0 {
			break
		}
		for _, e := range page {
			n, err := parseSeq(e.ID)
			if err != nil {
				return 0, err
			}
			seqs = append(seqs, n)
			before = n
		}
	}
	slices.Sort(seqs)
	if err := aw.write(&record{Type: typeLog, Collection: c, Count: int64(len(seqs))}); err != nil {
		return 0, err
	}
	written := 0
	for i := 0; i < len(seqs); i += configsvc.MaxPageSize {
		win := seqs[i:min(i+configsvc.MaxPageSize, len(seqs))]
		page, err := rs.Scan(ctx, c, win[len(win)-1]+1, len(win))
		if err != nil {
			return written, err
		}
		slices.Reverse(page)
		if len(page) != len(win) {
			return written, fmt.Errorf("entries %d to %d changed while they were read: %w", win[0], win[len(win)-1], configsvc.ErrConflict)
		}
		for j, e := range page {
			if n, err := parseSeq(e.ID); err != nil || n != win[j] {
				return written, fmt.Errorf("entry %d changed while it was read: %w", win[j], configsvc.ErrConflict)
			}
			if err := aw.write(&record{Type: typeEntry, Collection: c, Seq: win[j], Data: e.Data}); err != nil {
				return written, err
			}
			written++
		}
	}
	return written, nil
}

func parseSeq(id string) (int64, error) {
	n, err := strconv.ParseInt(id, 10, 64)
	if err != nil || n < 1 {
		return 0, fmt.Errorf("log entry id %q is not a sequence number: %w", id, configsvc.ErrInvalid)
	}
	return n, nil
}
