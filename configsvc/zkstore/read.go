package zkstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/go-zookeeper/zk"

	"github.com/sluicehq/sluice/configsvc"
)

// readAt runs read, a read of ref at revision rev (0 = head), as a
// linearizable read (see syncer). At the head it reads after a sync. A
// revision below the head is immutable, so for rev > 0 the sync is only
// needed when this store's server does not have rev yet: read runs first,
// and again after a sync only when it failed with a *pastHeadError.
func (s *Store) readAt(ctx context.Context, rev int64, read func() error) error {
	if rev == 0 {
		if err := s.synced(ctx); err != nil {
			return err
		}
		return read()
	}
	err := read()
	var past *pastHeadError
	if errors.As(err, &past) {
		if err := s.synced(ctx); err != nil {
			return err
		}
		return read()
	}
	return err
}

// checkRange reports ErrNotFound for a revision past the head (a
// *pastHeadError) or below 1, and ErrCompacted for one below the retention
// boundary.
func checkRange(h *headDoc, rev int64) error {
	switch {
	case rev > h.Revision:
		return &pastHeadError{rev: rev, head: h.Revision}
	case rev < 1:
		return fmt.Errorf("revision %d does not exist (head is %d): %w", rev, h.Revision, configsvc.ErrNotFound)
	case rev < h.First:
		return fmt.Errorf("revision %d was pruned (oldest kept is %d): %w", rev, h.First, configsvc.ErrCompacted)
	}
	return nil
}

// pastHeadError reports a revision past the head a server answered with:
// it does not exist, or that server has not applied it yet (a reader that
// did not sync tries again after one). It matches configsvc.ErrNotFound.
type pastHeadError struct{ rev, head int64 }

func (e *pastHeadError) Error() string {
	return fmt.Sprintf("revision %d does not exist (head is %d): %v", e.rev, e.head, configsvc.ErrNotFound)
}

// Is reports whether target is configsvc.ErrNotFound.
func (e *pastHeadError) Is(target error) bool { return target == configsvc.ErrNotFound }

// readRev reads a retained revision node. A node pruned between the head
// read and this read is reported as compacted.
func (s *Store) readRev(ctx context.Context, ref configsvc.Ref, n int64) (*revDoc, error) {
	data, _, err := s.get(ctx, s.revPath(ref, n))
	if errors.Is(err, zk.ErrNoNode) {
		return nil, fmt.Errorf("revision %d was pruned: %w", n, configsvc.ErrCompacted)
	}
	if err != nil {
		return nil, err
	}
	return decode[revDoc]("revision", data)
}

// File returns one file's content and metadata at revision rev (0 = head),
// as a linearizable read (see readAt). ErrNotFound if the file does not exist at that revision or rev is past
// the head; ErrCompacted if rev was pruned.
func (s *Store) File(ctx context.Context, ref configsvc.Ref, name string, rev int64) ([]byte, configsvc.FileMeta, error) {
	what := fmt.Sprintf("zkstore: file %s/%s@%d", ref, name, rev)
	if err := ref.Validate(); err != nil {
		return nil, configsvc.FileMeta{}, fmt.Errorf("%s: %w", what, err)
	}
	if err := configsvc.ValidateFileName(name); err != nil {
		return nil, configsvc.FileMeta{}, fmt.Errorf("%s: %w", what, err)
	}
	if rev < 0 {
		return nil, configsvc.FileMeta{}, fmt.Errorf("%s: %w", what, &configsvc.FieldError{Field: "revision", Value: fmt.Sprint(rev), Msg: "must be 0 (head) or more"})
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var (
		cr int64
		ok bool
		h  *headDoc
	)
	err := s.readAt(ctx, rev, func() (err error) {
		cr, ok, h, err = s.fileAt(ctx, ref, name, rev)
		return err
	})
	if err != nil {
		return nil, configsvc.FileMeta{}, mapErr(what, err)
	}
	if !ok {
		return nil, configsvc.FileMeta{}, fmt.Errorf("%s: no such file: %w", what, configsvc.ErrNotFound)
	}
	data, _, err := s.get(ctx, s.contentPath(ref, h.Since, cr, name))
	if errors.Is(err, zk.ErrNoNode) {
		return nil, configsvc.FileMeta{}, fmt.Errorf("%s: content pruned meanwhile: %w", what, configsvc.ErrCompacted)
	}
	if err != nil {
		return nil, configsvc.FileMeta{}, mapErr(what, err)
	}
	if data == nil {
		data = []byte{}
	}
	return data, meta(name, cr, data), nil
}

func meta(name string, rev int64, content []byte) configsvc.FileMeta {
	return configsvc.FileMeta{Name: name, Revision: rev, SHA256: configsvc.Checksum(content), Size: int64(len(content)), Format: configsvc.FormatOf(name)}
}

// Snapshot returns the content of every file at revision rev (0 = head),
// read with pipelined requests, as a linearizable read (see readAt), with
// the identity of that revision. Same errors as File.
func (s *Store) Snapshot(ctx context.Context, ref configsvc.Ref, rev int64) (configsvc.Snapshot, error) {
	what := fmt.Sprintf("zkstore: snapshot %s@%d", ref, rev)
	if err := ref.Validate(); err != nil {
		return configsvc.Snapshot{}, fmt.Errorf("%s: %w", what, err)
	}
	if rev < 0 {
		return configsvc.Snapshot{}, fmt.Errorf("%s: %w", what, &configsvc.FieldError{Field: "revision", Value: fmt.Sprint(rev), Msg: "must be 0 (head) or more"})
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	var (
		m  map[string]int64
		at int64
		h  *headDoc
		id configsvc.Identity
	)
	err := s.readAt(ctx, rev, func() (err error) {
		m, at, h, id, err = s.manifestAt(ctx, ref, rev)
		return err
	})
	if err != nil {
		return configsvc.Snapshot{}, mapErr(what, err)
	}
	files, err := s.contents(ctx, ref, h.Since, m)
	if err != nil {
		return configsvc.Snapshot{}, mapErr(what, err)
	}
	return configsvc.Snapshot{Ref: ref, Revision: at, Files: files, Generation: id.Generation, PublishID: id.PublishID}, nil
}

// contents reads the content nodes of a manifest (of a head whose layout 2
// began at since).
func (s *Store) contents(ctx context.Context, ref configsvc.Ref, since int64, m map[string]int64) (map[string][]byte, error) {
	names := sortedKeys(m)
	paths := make([]string, len(names))
	for i, n := range names {
		paths[i] = s.contentPath(ref, since, m[n], n)
	}
	res, err := s.getMany(ctx, paths)
	if err != nil {
		return nil, err
	}
	files := make(map[string][]byte, len(names))
	for i, r := range res {
		if r.err != nil {
			return nil, fmt.Errorf("content of %s pruned meanwhile: %w", names[i], configsvc.ErrCompacted)
		}
		if r.data == nil {
			r.data = []byte{}
		}
		files[names[i]] = r.data
	}
	return files, nil
}

// Revisions lists revisions newest first, without content: at most limit
// (1..1000; 0 means 50) revisions with Number < before (0 = from the head),
// stopping at the oldest retained revision. ErrNotFound if ref does not
// exist; ErrInvalid for a limit outside 0..1000 or a negative before.
func (s *Store) Revisions(ctx context.Context, ref configsvc.Ref, before int64, limit int) ([]configsvc.Revision, error) {
	what := "zkstore: revisions of " + ref.String()
	if err := ref.Validate(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if limit < 0 || limit > configsvc.MaxPageSize {
		return nil, fmt.Errorf("%s: %w", what, &configsvc.FieldError{Field: "limit", Value: fmt.Sprint(limit), Msg: "must be 1 to 1000 (0 means 50)"})
	}
	if before < 0 {
		return nil, fmt.Errorf("%s: %w", what, &configsvc.FieldError{Field: "before", Value: fmt.Sprint(before), Msg: "must be 0 (from the head) or more"})
	}
	if limit == 0 {
		limit = configsvc.DefaultRevisionsPage
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	// From the head: a linearizable read. Before an older revision: the
	// revisions below it are immutable, so only a server that has not
	// applied before-1 yet needs the sync.
	var h *headDoc
	var err error
	if before == 0 {
		h, _, err = s.readHeadSynced(ctx, ref)
	} else if h, _, err = s.readHead(ctx, ref); err == nil && before-1 > h.Revision {
		h, _, err = s.readHeadSynced(ctx, ref)
	}
	if err != nil {
		return nil, mapErr(what, err)
	}
	top := h.Revision
	if before > 0 && before-1 < top {
		top = before - 1
	}
	var paths []string
	for n := top; n >= h.First && n >= 1 && len(paths) < limit; n-- {
		paths = append(paths, s.revPath(ref, n))
	}
	res, err := s.getMany(ctx, paths)
	if err != nil {
		return nil, mapErr(what, err)
	}
	out := make([]configsvc.Revision, 0, len(res))
	for _, r := range res {
		if r.err != nil {
			break // pruned meanwhile: the list ends at the retention boundary
		}
		d, err := decode[revDoc]("revision", r.data)
		if err != nil {
			return nil, mapErr(what, err)
		}
		rev := d.revision()
		rev.Generation = h.Generation
		out = append(out, rev)
	}
	return out, nil
}

// Revision returns one revision with the content of its changes.
// ErrNotFound if it does not exist yet; ErrCompacted if pruned.
func (s *Store) Revision(ctx context.Context, ref configsvc.Ref, n int64) (configsvc.Revision, error) {
	what := fmt.Sprintf("zkstore: revision %s@%d", ref, n)
	if err := ref.Validate(); err != nil {
		return configsvc.Revision{}, fmt.Errorf("%s: %w", what, err)
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	h, _, err := s.readHead(ctx, ref)
	if err != nil {
		return configsvc.Revision{}, mapErr(what, err)
	}
	err = checkRange(h, n)
	var past *pastHeadError
	if errors.As(err, &past) {
		// Not on this server yet, or not at all: ask again after a sync.
		if h, _, err = s.readHeadSynced(ctx, ref); err != nil {
			return configsvc.Revision{}, mapErr(what, err)
		}
		err = checkRange(h, n)
	}
	if err != nil {
		return configsvc.Revision{}, fmt.Errorf("%s: %w", what, err)
	}
	r, err := s.fullRevision(ctx, ref, h.Since, n, nil)
	if err != nil {
		return configsvc.Revision{}, mapErr(what, err)
	}
	r.Generation = h.Generation
	return r, nil
}

// fullRevision reads revision n with the content of its changes (content
// paths per since, the head's headDoc.Since). written, when not nil, names
// the files revision n wrote (known from a layout 1 head when n is the head
// revision): their content is then read together with the revision node,
// in one round trip instead of two.
func (s *Store) fullRevision(ctx context.Context, ref configsvc.Ref, since, n int64, written []string) (configsvc.Revision, error) {
	paths := []string{s.revPath(ref, n)}
	for _, f := range written {
		paths = append(paths, s.contentPath(ref, since, n, f))
	}
	res, err := s.getMany(ctx, paths)
	if err != nil {
		return configsvc.Revision{}, err
	}
	if res[0].err != nil {
		return configsvc.Revision{}, fmt.Errorf("revision %d was pruned: %w", n, configsvc.ErrCompacted)
	}
	d, err := decode[revDoc]("revision", res[0].data)
	if err != nil {
		return configsvc.Revision{}, err
	}
	files := map[string][]byte{}
	for i, f := range written {
		if res[i+1].err == nil {
			files[f] = res[i+1].data
		}
	}
	missing := map[string]int64{}
	for _, c := range d.Changes {
		if _, ok := files[c.File]; !ok && !c.Delete {
			missing[c.File] = n
		}
	}
	if len(missing) > 0 {
		more, err := s.contents(ctx, ref, since, missing)
		if err != nil {
			return configsvc.Revision{}, err
		}
		for f, b := range more {
			files[f] = b
		}
	}
	r := d.revision()
	for i := range r.Changes {
		if !r.Changes[i].Delete {
			c := files[r.Changes[i].File]
			if c == nil {
				c = []byte{}
			}
			r.Changes[i].Content = c
		}
	}
	return r, nil
}
