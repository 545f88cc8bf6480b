package archive

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/sluicehq/sluice/configsvc"
)

// Merge says how Import treats a store that already holds something.
type Merge string

// The merge modes of Import.
const (
	// MergeNone (the zero value) refuses a store that holds any service,
	// group, record or log entry, with ErrNotEmpty; only an interrupted
	// import of the same archive is continued.
	MergeNone Merge = ""
	// MergeKeep adds what the store lacks and keeps what it has: a
	// service or group it holds keeps its own history, grays and (for a
	// service) links, and the archive's is skipped; a record whose id
	// its collection holds keeps the store's data; log entries are
	// appended after the store's own.
	MergeKeep Merge = "keep"
)

// ParseMerge reads a merge mode: "" or "none" (MergeNone), "keep".
// Anything else is a *configsvc.FieldError on "merge".
func ParseMerge(s string) (Merge, error) {
	switch s {
	case "", "none":
		return MergeNone, nil
	case string(MergeKeep):
		return MergeKeep, nil
	}
	return "", &configsvc.FieldError{Field: "merge", Value: s, Msg: "must be none or keep"}
}

// ErrNotEmpty is returned by Import for a store that holds something
// when no merge mode was given. It matches configsvc.ErrConflict.
var ErrNotEmpty = fmt.Errorf("the target store is not empty: %w", configsvc.ErrConflict)

// ImportOptions are the settings of Import; the zero value refuses a
// store that is not empty.
type ImportOptions struct {
	// Merge is how a store that holds something is treated; MergeNone
	// refuses it.
	Merge Merge
	// Reason is recorded with the generation Import gives the store at
	// the end; empty means "import of archive ID (created TIME)".
	Reason string
	// Now is the clock of the progress record; nil means time.Now.
	Now func() time.Time
	// Logger receives a line per service or group once its revisions and
	// grays are written, and per one kept under MergeKeep; nil means
	// none.
	Logger *slog.Logger
}

// ImportResult says what Import did.
type ImportResult struct {
	// ID is the archive's id.
	ID string `json:"archive"`
	// Archive is what the archive holds; Written what this run wrote;
	// Skipped what it did not write because the store held it already
	// (an earlier run of the same import, or MergeKeep).
	Archive Counts `json:"archive_counts"`
	Written Counts `json:"written"`
	Skipped Counts `json:"skipped"`
	// Resumed is set when the run continued an interrupted import;
	// AlreadyDone when the archive had been imported in full before
	// (nothing was written).
	Resumed     bool `json:"resumed,omitempty"`
	AlreadyDone bool `json:"already_done,omitempty"`
	// Generation is the store's generation after the import.
	Generation configsvc.StoreGeneration `json:"generation"`
}

// progress is the record Import keeps in ImportsCollection.
type progress struct {
	State    string           `json:"state"` // running, done
	Merge    Merge            `json:"merge,omitempty"`
	Started  time.Time        `json:"started"`
	Finished time.Time        `json:"finished,omitzero"`
	Logs     map[string]int64 `json:"logs,omitempty"` // entries of each log written
}

// Import reads an archive from r and writes it into st, which must
// implement configsvc.Importer (ErrInvalid otherwise); see the package
// documentation. Records are checked (checksum, limits, order) before
// anything of them is written, so a corrupt archive fails with an error
// wrapping ErrCorrupt that names the line, having written only what came
// before it. A store that holds anything is refused with ErrNotEmpty
// unless opts.Merge says how to merge, or it holds an unfinished import
// of the same archive, which is then continued. Run it on a store no
// server is writing to. At the end the store's generation is bumped.
func Import(ctx context.Context, st configsvc.Store, r io.Reader, opts ImportOptions) (ImportResult, error) {
	var res ImportResult
	imp, ok := st.(configsvc.Importer)
	if !ok {
		return res, fmt.Errorf("archive: import: %T cannot import history: %w", st, configsvc.ErrInvalid)
	}
	if _, err := ParseMerge(string(opts.Merge)); err != nil {
		return res, fmt.Errorf("archive: import: %w", err)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	rd, err := newReader(r)
	if err != nil {
		return res, err
	}
	hdr, err := rd.next()
	if err != nil {
		return res, err
	}
	if hdr.Type != typeHeader || hdr.Format != Format {
		return res, errAt(rd.line, fmt.Sprintf("the first record must be a header of format %d", Format), nil)
	}
	if err := configsvc.ValidateFileName(hdr.ID); err != nil || hdr.ID == "" {
		return res, errAt(rd.line, "header id", err)
	}
	res.ID = hdr.ID
	in := &importer{st: st, imp: imp, rd: rd, opts: opts, res: &res, kept: map[string]bool{}}
	done, err := in.begin(ctx, hdr)
	if err != nil || done {
		return res, err
	}
	if err := in.run(ctx); err != nil {
		return res, err
	}
	reason := opts.Reason
	if reason == "" {
		reason = "import of archive " + hdr.ID
		if hdr.Created != nil {
			reason += " (created " + hdr.Created.Format(time.RFC3339) + ")"
		}
	}
	gen, err := st.BumpGeneration(ctx, configsvc.Truncate(reason, configsvc.MaxGenerationReasonLen))
	if err != nil {
		return res, fmt.Errorf("archive: import: bump the generation: %w", err)
	}
	res.Generation = gen
	in.prog.State, in.prog.Finished = "done", opts.Now().UTC()
	if err := in.saveProgress(ctx); err != nil {
		return res, err
	}
	return res, nil
}

// importer is one Import in progress.
type importer struct {
	st   configsvc.Store
	imp  configsvc.Importer
	rd   *reader
	opts ImportOptions
	res  *ImportResult
	prog progress
	// resumed: the progress record existed before this run.
	resumed bool
	// kept names the services MergeKeep kept ("service/NAME").
	kept map[string]bool

	phase int // index in phases of the record last read
	cur   *refState
	log   *logState
}

// phases orders the record types: a record may not come after one of a
// later phase.
var phases = map[string]int{
	typeRef: 1, typeBase: 1, typeFile: 1, typeRevision: 1, typeGray: 1,
	typeLink: 2, typeRecord: 3, typeLog: 4, typeEntry: 4, typeEnd: 5,
}

// refState is the ref whose records are being read.
type refState struct {
	ref  configsvc.Ref
	head int64 // the archive's head revision
	// target is the store's head revision when the ref record was read,
	// with its publish id.
	target    int64
	targetPID string
	skip      bool  // kept (MergeKeep): read, not written
	last      int64 // the last revision read (base or revision)
	base      *configsvc.Revision
	files     []configsvc.FileMeta
	nextFile  int
	metas     map[string]configsvc.FileMeta
	content   map[string][]byte
	baseBytes int64
}

// logState is the log whose entries are being read.
type logState struct {
	collection  string
	count, read int64
	lastSeq     int64
	keep        int
	checked     bool // the store's newest entry was compared once (resume)
}

// begin checks the store and records the import's progress. done is true
// when the archive was imported in full before.
func (in *importer) begin(ctx context.Context, hdr *record) (done bool, err error) {
	data, err := in.st.Records().Get(ctx, ImportsCollection, hdr.ID)
	switch {
	case err == nil:
		if err := json.Unmarshal(data, &in.prog); err != nil {
			return false, fmt.Errorf("archive: import: progress record %s/%s: %v: %w", ImportsCollection, hdr.ID, err, configsvc.ErrInvalid)
		}
		if in.prog.State == "done" {
			in.res.AlreadyDone = true
			in.res.Generation, err = in.st.Generation(ctx)
			return true, err
		}
		in.resumed, in.res.Resumed = true, true
		if in.opts.Merge != MergeNone && in.prog.Merge != in.opts.Merge {
			return false, fmt.Errorf("archive: import: continuing the import of archive %s begun with merge %q, not %q: %w", hdr.ID, in.prog.Merge, in.opts.Merge, configsvc.ErrConflict)
		}
		in.opts.Merge = in.prog.Merge
		return false, nil
	case !errors.Is(err, configsvc.ErrNotFound):
		return false, fmt.Errorf("archive: import: read progress: %w", err)
	}
	if in.opts.Merge == MergeNone {
		what, err := holdings(ctx, in.st, in.imp)
		if err != nil {
			return false, fmt.Errorf("archive: import: %w", err)
		}
		if what != "" {
			return false, fmt.Errorf("archive: import: the store holds %s: %w; import into an empty store, or choose how to merge (merge keep: the store's own services, groups and records win)", what, ErrNotEmpty)
		}
	}
	in.prog = progress{State: "running", Merge: in.opts.Merge, Started: in.opts.Now().UTC()}
	return false, in.saveProgress(ctx)
}

// holdings describes what st holds ("" when nothing).
func holdings(ctx context.Context, st configsvc.Store, imp configsvc.Importer) (string, error) {
	var parts []string
	for _, kind := range []configsvc.Kind{configsvc.KindService, configsvc.KindGroup} {
		names, err := st.List(ctx, kind)
		if err != nil {
			return "", fmt.Errorf("list %ss: %w", kind, err)
		}
		if len(names) > 0 {
			parts = append(parts, fmt.Sprintf("%d %ss (%s …)", len(names), kind, names[0]))
		}
	}
	recs, logs, err := imp.Collections(ctx)
	if err != nil {
		return "", fmt.Errorf("list collections: %w", err)
	}
	for _, c := range recs {
		if c != ImportsCollection {
			parts = append(parts, "records in "+c)
		}
	}
	for _, c := range logs {
		parts = append(parts, "entries in log "+c)
	}
	return strings.Join(parts, ", "), nil
}

func (in *importer) saveProgress(ctx context.Context) error {
	data, err := json.Marshal(in.prog)
	if err != nil {
		return err
	}
	if err := in.st.Records().Put(ctx, ImportsCollection, in.res.ID, data); err != nil {
		return fmt.Errorf("archive: import: save progress: %w", err)
	}
	return nil
}

// run reads and applies every record after the header.
func (in *importer) run(ctx context.Context) error {
	for {
		rec, err := in.rd.next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		ph, ok := phases[rec.Type]
		if !ok {
			return errAt(in.rd.line, fmt.Sprintf("unknown record type %q", rec.Type), nil)
		}
		if ph < in.phase {
			return errAt(in.rd.line, fmt.Sprintf("a %s record out of place (after the %s ones)", rec.Type, phaseName(in.phase)), nil)
		}
		if rec.Type != typeRef && rec.Type != typeBase && rec.Type != typeFile && rec.Type != typeRevision && rec.Type != typeGray {
			if err := in.endRef(); err != nil {
				return err
			}
		}
		if rec.Type != typeEntry {
			if err := in.endLog(); err != nil {
				return err
			}
		}
		in.phase = ph
		if err := in.apply(ctx, rec); err != nil {
			return err
		}
	}
}

func phaseName(ph int) string {
	return [...]string{"header", "service and group", "link", "record", "log", "end"}[ph]
}

func (in *importer) apply(ctx context.Context, rec *record) error {
	switch rec.Type {
	case typeRef:
		return in.onRef(ctx, rec)
	case typeBase:
		return in.onBase(ctx, rec)
	case typeFile:
		return in.onFile(ctx, rec)
	case typeRevision:
		return in.onRevision(ctx, rec)
	case typeGray:
		return in.onGray(ctx, rec)
	case typeLink:
		return in.onLink(ctx, rec)
	case typeRecord:
		return in.onRecord(ctx, rec)
	case typeLog:
		return in.onLog(rec)
	case typeEntry:
		return in.onEntry(ctx, rec)
	case typeEnd:
		return in.onEnd(rec)
	}
	return nil
}

// parseRef reads "service/NAME" or "group/NAME".
func parseRef(s string) (configsvc.Ref, error) {
	kind, name, _ := strings.Cut(s, "/")
	var ref configsvc.Ref
	switch kind {
	case "service":
		ref = configsvc.Service(name)
	case "group":
		ref = configsvc.Group(name)
	default:
		return ref, &configsvc.FieldError{Field: "ref", Value: s, Msg: "must be service/NAME or group/NAME"}
	}
	return ref, ref.Validate()
}

func (in *importer) line() int { return in.rd.line }

// refRecord checks that rec belongs to the current ref.
func (in *importer) refRecord(rec *record) error {
	if in.cur == nil || rec.Ref != in.cur.ref.String() {
		return errAt(in.line(), fmt.Sprintf("a %s record of %q outside that ref's records", rec.Type, rec.Ref), nil)
	}
	return nil
}

func (in *importer) onRef(ctx context.Context, rec *record) error {
	if err := in.endRef(); err != nil {
		return err
	}
	ref, err := parseRef(rec.Ref)
	if err != nil {
		return errAt(in.line(), "ref", err)
	}
	if rec.Head < 0 {
		return errAt(in.line(), "head", &configsvc.FieldError{Field: "head", Value: fmt.Sprint(rec.Head), Msg: "must be 0 or more"})
	}
	if ref.Kind == configsvc.KindService {
		in.res.Archive.Services++
	} else {
		in.res.Archive.Groups++
	}
	if in.res.Archive.Services > configsvc.MaxServices || in.res.Archive.Groups > configsvc.MaxServices {
		return errAt(in.line(), ref.Kind.String()+"s", &configsvc.LimitError{What: ref.Kind.String() + " count", Size: int64(configsvc.MaxServices) + 1, Limit: configsvc.MaxServices, Unit: ref.Kind.String() + "s"})
	}
	cur := &refState{ref: ref, head: rec.Head}
	in.cur = cur
	h, err := in.st.Head(ctx, ref)
	switch {
	case errors.Is(err, configsvc.ErrNotFound):
		if err := in.st.Create(ctx, ref); err != nil {
			return fmt.Errorf("archive: import: create %s: %w", ref, err)
		}
		in.count(&in.res.Written, ref)
		return nil
	case err != nil:
		return fmt.Errorf("archive: import: read %s: %w", ref, err)
	}
	cur.target, cur.targetPID = h.Revision, h.PublishID
	if cur.target > cur.head || (cur.target > 0 && cur.head == 0) {
		return in.mismatch(fmt.Sprintf("it is at revision %d, the archive's at %d", cur.target, cur.head))
	}
	if in.resumed || cur.target > 0 {
		in.count(&in.res.Skipped, ref) // created before (by an earlier run, or the store's own)
	} else {
		in.count(&in.res.Written, ref) // an empty one the store had: the archive's history goes in
	}
	return nil
}

func (in *importer) count(c *Counts, ref configsvc.Ref) {
	if ref.Kind == configsvc.KindService {
		c.Services++
	} else {
		c.Groups++
	}
}

// mismatch handles a ref whose history in the store is not the archive's:
// kept under MergeKeep, an error otherwise.
func (in *importer) mismatch(why string) error {
	cur := in.cur
	if in.opts.Merge != MergeKeep {
		return fmt.Errorf("archive: import: the store's %s is not the archive's (%s): %w; merge keep keeps the store's", cur.ref, why, configsvc.ErrConflict)
	}
	if !cur.skip && in.opts.Logger != nil {
		in.opts.Logger.Info("archive: import: kept the store's own", "ref", cur.ref.String(), "why", why)
	}
	cur.skip = true
	in.kept[cur.ref.String()] = true
	return nil
}

func (in *importer) onBase(ctx context.Context, rec *record) error {
	if err := in.refRecord(rec); err != nil {
		return err
	}
	cur := in.cur
	if cur.base != nil || cur.head == 0 {
		return errAt(in.line(), "a second base, or a base of a ref at revision 0", nil)
	}
	if rec.Revision == nil {
		return errAt(in.line(), "base without its revision", nil)
	}
	rev := *rec.Revision
	if rev.Number < 1 || rev.Number > cur.head {
		return errAt(in.line(), "base revision", &configsvc.FieldError{Field: "revision.revision", Value: fmt.Sprint(rev.Number), Msg: fmt.Sprintf("must be from 1 to the head %d", cur.head)})
	}
	if err := checkRevisionMeta(&rev); err != nil {
		return errAt(in.line(), fmt.Sprintf("base revision %d of %s", rev.Number, cur.ref), err)
	}
	if len(rec.Files) > configsvc.MaxFilesPerService {
		return errAt(in.line(), "base files", &configsvc.LimitError{What: "files", Size: int64(len(rec.Files)), Limit: configsvc.MaxFilesPerService, Unit: "files"})
	}
	cur.metas = make(map[string]configsvc.FileMeta, len(rec.Files))
	for i, m := range rec.Files {
		if err := configsvc.ValidateFileName(m.Name); err != nil {
			return errAt(in.line(), fmt.Sprintf("files[%d].name", i), err)
		}
		if _, dup := cur.metas[m.Name]; dup {
			return errAt(in.line(), fmt.Sprintf("files[%d]", i), &configsvc.FieldError{Field: "files", Value: m.Name, Msg: "appears twice"})
		}
		if m.Size < 0 || m.Size > configsvc.MaxFileSize {
			return errAt(in.line(), fmt.Sprintf("files[%d].size", i), &configsvc.LimitError{What: "file " + m.Name, Size: m.Size, Limit: configsvc.MaxFileSize})
		}
		cur.baseBytes += m.Size
		if cur.baseBytes > MaxBaseBytes {
			return errAt(in.line(), "base files", &configsvc.LimitError{What: "base content of " + cur.ref.String(), Size: cur.baseBytes, Limit: MaxBaseBytes})
		}
		cur.metas[m.Name] = m
	}
	rev.Generation = ""
	cur.base, cur.files, cur.last = &rev, rec.Files, rev.Number
	in.res.Archive.Revisions++
	var err error
	switch {
	case cur.skip:
	case cur.target == 0:
		cur.content = make(map[string][]byte, len(rec.Files))
		return in.maybeBase(ctx)
	case cur.target < rev.Number:
		err = in.mismatch(fmt.Sprintf("it is at revision %d, below the archive's oldest %d", cur.target, rev.Number))
	case cur.target == rev.Number:
		err = in.verify(rev)
	}
	in.res.Skipped.Revisions++
	return err
}

// verify checks that the store's head revision, reached by the archive,
// is the archive's (by publish id).
func (in *importer) verify(rev configsvc.Revision) error {
	cur := in.cur
	if rev.PublishID != "" && cur.targetPID != "" && rev.PublishID != cur.targetPID {
		return in.mismatch(fmt.Sprintf("its revision %d has publish id %s, the archive's %s", rev.Number, cur.targetPID, rev.PublishID))
	}
	return nil
}

func (in *importer) onFile(ctx context.Context, rec *record) error {
	if err := in.refRecord(rec); err != nil {
		return err
	}
	cur := in.cur
	if cur.base == nil || cur.nextFile >= len(cur.files) {
		return errAt(in.line(), fmt.Sprintf("file %q outside its base", rec.Name), nil)
	}
	m := cur.files[cur.nextFile]
	if rec.Name != m.Name {
		return errAt(in.line(), "file", &configsvc.FieldError{Field: "name", Value: rec.Name, Msg: "must be " + m.Name + ", the next file of the base"})
	}
	if int64(len(rec.Content)) != m.Size || configsvc.Checksum(rec.Content) != m.SHA256 {
		return errAt(in.line(), "file "+m.Name, &configsvc.FieldError{Field: "content", Msg: "does not match the size and sha256 of the base's manifest"})
	}
	cur.nextFile++
	if cur.content != nil {
		cur.content[m.Name] = rec.Content
	}
	return in.maybeBase(ctx)
}

// maybeBase writes the base once all its files were read.
func (in *importer) maybeBase(ctx context.Context) error {
	cur := in.cur
	if cur.nextFile < len(cur.files) || cur.content == nil {
		return nil
	}
	content := cur.content
	cur.content = nil
	if err := in.imp.ImportBase(ctx, cur.ref, *cur.base, cur.metas, content); err != nil {
		if errors.Is(err, configsvc.ErrInvalid) || errors.Is(err, configsvc.ErrTooLarge) {
			return errAt(in.line(), "base of "+cur.ref.String(), err)
		}
		return fmt.Errorf("archive: import: %w", err)
	}
	in.res.Written.Revisions++
	cur.metas = nil
	return nil
}

func (in *importer) onRevision(ctx context.Context, rec *record) error {
	if err := in.refRecord(rec); err != nil {
		return err
	}
	cur := in.cur
	if cur.base == nil || cur.nextFile < len(cur.files) {
		return errAt(in.line(), "a revision before its base and files", nil)
	}
	if rec.Revision == nil {
		return errAt(in.line(), "revision record without its revision", nil)
	}
	rev := *rec.Revision
	rev.Generation = ""
	if rev.Number != cur.last+1 || rev.Number > cur.head {
		return errAt(in.line(), "revision number", &configsvc.FieldError{Field: "revision.revision", Value: fmt.Sprint(rev.Number),
			Msg: fmt.Sprintf("must be %d, the next one up to the head %d", cur.last+1, cur.head)})
	}
	cs := configsvc.ImportChangeset(rev)
	if err := cs.Validate(); err != nil {
		return errAt(in.line(), fmt.Sprintf("revision %d of %s", rev.Number, cur.ref), err)
	}
	if err := checkRevisionMeta(&rev); err != nil {
		return errAt(in.line(), fmt.Sprintf("revision %d of %s", rev.Number, cur.ref), err)
	}
	cur.last = rev.Number
	in.res.Archive.Revisions++
	switch {
	case cur.skip:
		in.res.Skipped.Revisions++
		return nil
	case rev.Number < cur.target:
		in.res.Skipped.Revisions++
		return nil
	case rev.Number == cur.target:
		in.res.Skipped.Revisions++
		return in.verify(rev)
	}
	if err := in.imp.ImportRevision(ctx, cur.ref, rev); err != nil {
		return fmt.Errorf("archive: import: %w", err)
	}
	in.res.Written.Revisions++
	return nil
}

// endRef checks that the current ref's records are complete.
func (in *importer) endRef() error {
	cur := in.cur
	if cur == nil {
		return nil
	}
	if cur.head > 0 && (cur.base == nil || cur.nextFile < len(cur.files) || cur.last != cur.head) {
		return errAt(in.line(), fmt.Sprintf("%s ends before its head revision %d (read up to %d)", cur.ref, cur.head, cur.last), nil)
	}
	if in.opts.Logger != nil && !cur.skip {
		in.opts.Logger.Info("archive: imported", "ref", cur.ref.String(), "head", cur.head)
	}
	in.cur = nil
	return nil
}

func (in *importer) onGray(ctx context.Context, rec *record) error {
	if err := in.refRecord(rec); err != nil {
		return err
	}
	cur := in.cur
	if cur.last != cur.head || cur.nextFile < len(cur.files) {
		return errAt(in.line(), "a gray before its ref's revisions", nil)
	}
	if rec.Gray == nil {
		return errAt(in.line(), "gray record without its gray", nil)
	}
	g := *rec.Gray
	g.Ref, g.MainChanged = cur.ref, nil
	if err := configsvc.CheckImportGray(&g); err != nil {
		return errAt(in.line(), "gray "+g.ID+" of "+cur.ref.String(), err)
	}
	in.res.Archive.Grays++
	if cur.skip {
		in.res.Skipped.Grays++
		return nil
	}
	if _, err := in.st.Gray(ctx, cur.ref, g.ID); err == nil {
		in.res.Skipped.Grays++
		return nil
	} else if !errors.Is(err, configsvc.ErrNotFound) {
		return fmt.Errorf("archive: import: read gray %s of %s: %w", g.ID, cur.ref, err)
	}
	if err := in.imp.ImportGray(ctx, cur.ref, g); err != nil {
		return fmt.Errorf("archive: import: %w", err)
	}
	in.res.Written.Grays++
	return nil
}

func (in *importer) onLink(ctx context.Context, rec *record) error {
	if err := configsvc.ValidateServiceName(rec.Service); err != nil {
		return errAt(in.line(), "link service", err)
	}
	if err := configsvc.ValidateGroupName(rec.Group); err != nil {
		return errAt(in.line(), "link group", err)
	}
	in.res.Archive.Links++
	if in.kept[configsvc.Service(rec.Service).String()] {
		in.res.Skipped.Links++
		return nil
	}
	if err := in.st.Link(ctx, rec.Service, rec.Group); err != nil {
		return fmt.Errorf("archive: import: link %s to %s: %w", rec.Service, rec.Group, err)
	}
	in.res.Written.Links++
	return nil
}

func (in *importer) onRecord(ctx context.Context, rec *record) error {
	if err := configsvc.ValidateFileName(rec.Collection); err != nil {
		return errAt(in.line(), "record collection", err)
	}
	if err := configsvc.ValidateFileName(rec.ID); err != nil {
		return errAt(in.line(), "record id", err)
	}
	if len(rec.Data) > configsvc.MaxRecordSize {
		return errAt(in.line(), "record "+rec.Collection+"/"+rec.ID, &configsvc.LimitError{What: "data", Size: int64(len(rec.Data)), Limit: configsvc.MaxRecordSize})
	}
	in.res.Archive.Records++
	if rec.Collection == ImportsCollection {
		in.res.Skipped.Records++
		return nil
	}
	rs := in.st.Records()
	if in.opts.Merge == MergeKeep {
		err := rs.Create(ctx, rec.Collection, rec.ID, nonNil(rec.Data))
		if errors.Is(err, configsvc.ErrConflict) {
			in.res.Skipped.Records++
			return nil
		}
		if err != nil {
			return fmt.Errorf("archive: import: record %s/%s: %w", rec.Collection, rec.ID, err)
		}
	} else if err := rs.Put(ctx, rec.Collection, rec.ID, nonNil(rec.Data)); err != nil {
		return fmt.Errorf("archive: import: record %s/%s: %w", rec.Collection, rec.ID, err)
	}
	in.res.Written.Records++
	return nil
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func (in *importer) onLog(rec *record) error {
	if err := configsvc.ValidateFileName(rec.Collection); err != nil {
		return errAt(in.line(), "log collection", err)
	}
	if rec.Count < 0 || rec.Count > configsvc.DefaultAppendKeep*10 {
		return errAt(in.line(), "log "+rec.Collection, &configsvc.LimitError{What: "count", Size: rec.Count, Limit: configsvc.DefaultAppendKeep * 10, Unit: "entries"})
	}
	in.log = &logState{collection: rec.Collection, count: rec.Count, keep: max(configsvc.DefaultAppendKeep, int(rec.Count))}
	return nil
}

func (in *importer) onEntry(ctx context.Context, rec *record) error {
	l := in.log
	if l == nil || rec.Collection != l.collection || l.read >= l.count {
		return errAt(in.line(), fmt.Sprintf("an entry of log %q outside that log's records", rec.Collection), nil)
	}
	if rec.Seq <= l.lastSeq {
		return errAt(in.line(), "entry seq", &configsvc.FieldError{Field: "seq", Value: fmt.Sprint(rec.Seq), Msg: fmt.Sprintf("must be above the one before, %d", l.lastSeq)})
	}
	if len(rec.Data) > configsvc.MaxRecordSize {
		return errAt(in.line(), "entry of log "+l.collection, &configsvc.LimitError{What: "data", Size: int64(len(rec.Data)), Limit: configsvc.MaxRecordSize})
	}
	l.read++
	l.lastSeq = rec.Seq
	in.res.Archive.LogEntries++
	written := in.prog.Logs[l.collection]
	if l.read <= written {
		in.res.Skipped.LogEntries++
		return nil
	}
	rs := in.st.Records()
	if in.resumed && !l.checked {
		// A run killed between an Append and saving its progress left
		// that entry as the store's newest one.
		l.checked = true
		newest, err := rs.Scan(ctx, l.collection, 0, 1)
		if err != nil {
			return fmt.Errorf("archive: import: read log %s: %w", l.collection, err)
		}
		if len(newest) == 1 && bytes.Equal(newest[0].Data, rec.Data) {
			in.res.Skipped.LogEntries++
			return in.logProgress(ctx, l)
		}
	}
	if _, err := rs.Append(ctx, l.collection, nonNil(rec.Data), l.keep); err != nil {
		return fmt.Errorf("archive: import: append to log %s: %w", l.collection, err)
	}
	in.res.Written.LogEntries++
	return in.logProgress(ctx, l)
}

func (in *importer) logProgress(ctx context.Context, l *logState) error {
	if in.prog.Logs == nil {
		in.prog.Logs = map[string]int64{}
	}
	in.prog.Logs[l.collection] = l.read
	return in.saveProgress(ctx)
}

// endLog checks that the current log's entries are complete.
func (in *importer) endLog() error {
	l := in.log
	if l == nil {
		return nil
	}
	if l.read != l.count {
		return errAt(in.line(), fmt.Sprintf("log %s ends after %d of its %d entries", l.collection, l.read, l.count), nil)
	}
	in.log = nil
	return nil
}

func (in *importer) onEnd(rec *record) error {
	if rec.Counts == nil || *rec.Counts != in.res.Archive {
		return errAt(in.line(), fmt.Sprintf("the end record's counts %+v differ from what the archive held %+v", rec.Counts, in.res.Archive), nil)
	}
	return nil
}

// maxIDLen bounds a revision's publish id and parent: the stores write 32
// hex digits.
const maxIDLen = 64

// checkRevisionMeta bounds what a revision carries beside its changes,
// which Changeset.Validate does not look at: the author (at most
// configsvc.MaxMessageLen bytes, like the message) and the publish ids.
func checkRevisionMeta(rev *configsvc.Revision) error {
	if len(rev.Author) > configsvc.MaxMessageLen {
		return &configsvc.LimitError{What: "revision.author", Size: int64(len(rev.Author)), Limit: configsvc.MaxMessageLen}
	}
	if len(rev.Message) > configsvc.MaxMessageLen {
		return &configsvc.LimitError{What: "revision.message", Size: int64(len(rev.Message)), Limit: configsvc.MaxMessageLen}
	}
	for field, id := range map[string]string{"revision.publish_id": rev.PublishID, "revision.parent": rev.Parent} {
		if len(id) > maxIDLen {
			return &configsvc.LimitError{What: field, Size: int64(len(id)), Limit: maxIDLen}
		}
	}
	return nil
}
