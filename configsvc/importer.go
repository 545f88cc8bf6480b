package configsvc

import "context"

// Importer is implemented by a Store that can write history as another
// store recorded it: revisions with their own number, author, time,
// message and publish ids, and grays as they were. It is what an archive
// import (package archive) writes through; nothing else should, because
// it bypasses the checks a publish makes against the head's content (no
// Validator runs). zkstore and boltstore implement it; storetest checks
// both.
//
// Each call is atomic: after any error either the whole revision (or
// gray) exists or none of it, so an import killed half way leaves no
// half-written revision and is resumed by importing again from the
// store's head. Watchers see imported revisions as published ones; an
// import is followed by Store.BumpGeneration so that they reload.
type Importer interface {
	// ImportBase writes rev as the first revision of ref, which must exist
	// at revision 0 (ErrConflict otherwise): the oldest revision a history
	// retains. rev's Changes carry no content; files is the manifest at
	// rev (each FileMeta's Revision, the revision that last wrote the
	// file, is at most rev.Number and kept as given) and content the
	// content of every file of it (ErrInvalid when one is missing or does
	// not match its SHA256 and Size). Revisions below rev.Number read as
	// compacted (ErrCompacted). rev.Number ≥ 1; ErrTooLarge beyond
	// MaxFilesPerService files or MaxFileSize for one file.
	ImportBase(ctx context.Context, ref Ref, rev Revision, files map[string]FileMeta, content map[string][]byte) error
	// ImportRevision writes rev (Changes with content, checked as
	// Changeset.Validate checks a publish's) as the next revision of ref,
	// whose head must be at rev.Number-1 (ErrConflict otherwise), keeping
	// its Author, Message, RollbackOf, PublishID and Parent, and its Time
	// unless that is before the head's (revision times never decrease; the
	// head's is taken then). Retention applies as for a publish.
	ImportRevision(ctx context.Context, ref Ref, rev Revision) error
	// ImportGray writes g (Changes with content; active or ended, at its
	// Version and with its times) as a gray of ref, and for an active one
	// its summary to the head, in one atomic step. ErrConflict when ref
	// already holds a gray of that id; ErrNotFound if ref does not exist;
	// ErrInvalid or ErrTooLarge for a gray Gray.Validate refuses.
	ImportGray(ctx context.Context, ref Ref, g Gray) error
	// Collections lists the names of the record collections (Put) and of
	// the append-only logs (Append) that hold at least one entry, each
	// sorted.
	Collections(ctx context.Context) (records, logs []string, err error)
}

// CheckImportBase checks what Importer.ImportBase is given, for both
// stores: a revision number of 1 or more, rev's shape (its changes as a
// changeset, without content), at most MaxFilesPerService files, each
// named by the file-name rule, last written at or before rev.Number (and
// every file rev writes at rev.Number), with content of at most
// MaxFileSize that matches its SHA256 and Size. It returns a *FieldError
// or *LimitError.
func CheckImportBase(ref Ref, rev Revision, files map[string]FileMeta, content map[string][]byte) error {
	if err := ref.Validate(); err != nil {
		return err
	}
	if rev.Number < 1 {
		return &FieldError{Field: "revision", Value: itoa(rev.Number), Msg: "must be 1 or more"}
	}
	if len(rev.Message) > MaxMessageLen {
		return &LimitError{What: "message", Size: int64(len(rev.Message)), Limit: MaxMessageLen}
	}
	if len(files) > MaxFilesPerService {
		return &LimitError{What: "file count of " + ref.String(), Size: int64(len(files)), Limit: MaxFilesPerService, Unit: "files"}
	}
	for i, c := range rev.Changes {
		if err := ValidateFileName(c.File); err != nil {
			return err
		}
		m, ok := files[c.File]
		if c.Delete == ok || (ok && m.Revision != rev.Number) {
			return &FieldError{Field: "changes[" + itoa(int64(i)) + "]", Value: c.File, Msg: "does not match the manifest at revision " + itoa(rev.Number)}
		}
	}
	for name, m := range files {
		if err := ValidateFileName(name); err != nil {
			return err
		}
		if m.Name != name || m.Revision < 1 || m.Revision > rev.Number {
			return &FieldError{Field: "files." + name, Value: itoa(m.Revision), Msg: "must name the file and a revision from 1 to " + itoa(rev.Number)}
		}
		c, ok := content[name]
		if !ok {
			return &FieldError{Field: "files." + name, Msg: "has no content"}
		}
		if int64(len(c)) > MaxFileSize {
			return &LimitError{What: "file " + name, Size: int64(len(c)), Limit: MaxFileSize}
		}
		if int64(len(c)) != m.Size || Checksum(c) != m.SHA256 {
			return &FieldError{Field: "files." + name, Msg: "content does not match its size and sha256"}
		}
	}
	if len(content) != len(files) {
		return &FieldError{Field: "content", Msg: "holds a file the manifest does not"}
	}
	return nil
}

// ImportChangeset returns rev as the changeset Importer.ImportRevision
// checks (Changeset.Validate) and writes: on rev.Number-1, with rev's
// author, message, rollback and changes.
func ImportChangeset(rev Revision) Changeset {
	return Changeset{Base: rev.Number - 1, Author: rev.Author, Message: rev.Message, Changes: rev.Changes, RollbackOf: rev.RollbackOf}
}

// CheckImportGray checks a gray Importer.ImportGray is given, for both
// stores: its id (ValidateGrayID), what Gray.Validate checks, a known
// state and a version of 1 or more. It returns a *FieldError or
// *LimitError.
func CheckImportGray(g *Gray) error {
	if err := ValidateGrayID(g.ID); err != nil {
		return err
	}
	if err := g.Validate(); err != nil {
		return err
	}
	switch g.State {
	case GrayActive, GrayPromoted, GrayAbandoned:
	default:
		return &FieldError{Field: "state", Value: string(g.State), Msg: "must be active, promoted or abandoned"}
	}
	if g.Version < 1 {
		return &FieldError{Field: "version", Value: itoa(g.Version), Msg: "must be 1 or more"}
	}
	return nil
}
