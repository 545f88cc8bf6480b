package zkstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/go-zookeeper/zk"

	"github.com/sluicehq/sluice/configsvc"
)

// manifestAt returns the manifest of ref at revision rev (0 = head) as
// file → revision whose content node holds the file, with the resolved
// revision number, as a linearizable read (see syncer): the head after a
// sync. A revision below the head is immutable, so for rev > 0 the sync is
// only needed when this store's server does not have rev yet: it is read
// first, and read again after a sync only if rev is past the head it
// answered with.
func (s *Store) manifestAt(ctx context.Context, ref configsvc.Ref, rev int64) (map[string]int64, int64, configsvc.Identity, error) {
	if rev == 0 {
		if err := s.synced(ctx); err != nil {
			return nil, 0, configsvc.Identity{}, err
		}
		return s.readManifest(ctx, ref, 0)
	}
	m, at, id, err := s.readManifest(ctx, ref, rev)
	var past *pastHeadError
	if errors.As(err, &past) {
		if err := s.synced(ctx); err != nil {
			return nil, 0, configsvc.Identity{}, err
		}
		return s.readManifest(ctx, ref, rev)
	}
	return m, at, id, err
}

// readManifest is manifestAt without the sync. The head and, for an older
// revision, the revision node are read together (pipelined): one round
// trip either way. The identity is that of the resolved revision.
func (s *Store) readManifest(ctx context.Context, ref configsvc.Ref, rev int64) (map[string]int64, int64, configsvc.Identity, error) {
	paths := []string{s.headPath(ref)}
	if rev > 0 {
		paths = append(paths, s.revPath(ref, rev))
	}
	res, err := s.getMany(ctx, paths)
	if err != nil {
		return nil, 0, configsvc.Identity{}, err
	}
	if res[0].err != nil {
		return nil, 0, configsvc.Identity{}, fmt.Errorf("%s does not exist: %w", ref, configsvc.ErrNotFound)
	}
	h, err := decodeHead(res[0].data)
	if err != nil {
		return nil, 0, configsvc.Identity{}, err
	}
	if rev == 0 || rev == h.Revision {
		m := make(map[string]int64, len(h.Files))
		for name, meta := range h.Files {
			m[name] = meta.Revision
		}
		return m, h.Revision, h.identity(), nil
	}
	if err := checkRange(h, rev); err != nil {
		return nil, 0, configsvc.Identity{}, err
	}
	if res[1].err != nil {
		return nil, 0, configsvc.Identity{}, fmt.Errorf("revision %d was pruned: %w", rev, configsvc.ErrCompacted)
	}
	d, err := decode[revDoc]("revision", res[1].data)
	if err != nil {
		return nil, 0, configsvc.Identity{}, err
	}
	return d.Files, rev, configsvc.Identity{Generation: h.Generation, PublishID: d.PublishID}, nil
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

// File returns one file's content and metadata at revision rev (0 = head).
// ErrNotFound if the file does not exist at that revision or rev is past
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
	m, _, _, err := s.manifestAt(ctx, ref, rev)
	if err != nil {
		return nil, configsvc.FileMeta{}, mapErr(what, err)
	}
	cr, ok := m[name]
	if !ok {
		return nil, configsvc.FileMeta{}, fmt.Errorf("%s: no such file: %w", what, configsvc.ErrNotFound)
	}
	data, _, err := s.get(ctx, s.contentPath(ref, cr, name))
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
// read with pipelined requests. Same errors as File.
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
	m, at, id, err := s.manifestAt(ctx, ref, rev)
	if err != nil {
		return configsvc.Snapshot{}, mapErr(what, err)
	}
	files, err := s.contents(ctx, ref, m)
	if err != nil {
		return configsvc.Snapshot{}, mapErr(what, err)
	}
	return configsvc.Snapshot{Ref: ref, Revision: at, Files: files, Generation: id.Generation, PublishID: id.PublishID}, nil
}

// contents reads the content nodes of a manifest.
func (s *Store) contents(ctx context.Context, ref configsvc.Ref, m map[string]int64) (map[string][]byte, error) {
	names := sortedKeys(m)
	paths := make([]string, len(names))
	for i, n := range names {
		paths[i] = s.contentPath(ref, m[n], n)
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
	r, err := s.fullRevision(ctx, ref, n, nil)
	if err != nil {
		return configsvc.Revision{}, mapErr(what, err)
	}
	r.Generation = h.Generation
	return r, nil
}

// fullRevision reads revision n with the content of its changes. written,
// when not nil, names the files revision n wrote (known from the head when
// n is the head revision): their content is then read together with the
// revision node, in one round trip instead of two.
func (s *Store) fullRevision(ctx context.Context, ref configsvc.Ref, n int64, written []string) (configsvc.Revision, error) {
	paths := []string{s.revPath(ref, n)}
	for _, f := range written {
		paths = append(paths, s.contentPath(ref, n, f))
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
		more, err := s.contents(ctx, ref, missing)
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
