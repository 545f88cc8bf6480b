package zkstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/sluicehq/sluice/configsvc"
)

// maxPublishAttempts bounds the retries of one Publish: a head version that
// moved without a new revision (a Link, an Unlink), a remembered head that
// was out of date, and connection losses whose outcome had to be checked.
const maxPublishAttempts = 20

// publishIDSize is the size in bytes of a publish id (hex-encoded twice as
// long).
const publishIDSize = 16

// Publish atomically creates revision cs.Base+1 and moves the head to it in
// one ZooKeeper transaction: a check of the head's epoch node, the content
// node of each written file (under content/{N}/), the manifest nodes of
// the changed files (the old one deleted, the new one created), the
// revision node (metadata, publish id, each change with the file's
// previous content revision), and the head, with the child version the
// manifest changes leave manifest/ at (see manifest.go), set with a
// version check. Its size depends on the changeset
// only, never on how many files the service has. It checks ref and cs's
// shape and limits before writing anything, and the service's file count
// (configsvc.CheckServiceFiles) against the manifest it builds on; content
// is not validated here but once, by the configsvc.ValidatingStore that
// publishes go through. A head still in layout 1 is migrated first.
//
// The transaction builds on the head this store last wrote or read for ref
// (see headCache) when that head is at cs.Base: the publish is then one
// round trip. When there is none, or the version or epoch check shows it
// out of date, the head and manifest are read and the transaction sent
// again.
//
// Errors: ErrInvalid and ErrTooLarge for bad input; ErrConflict when the
// head is no longer cs.Base; ErrNotFound when ref does not exist;
// ErrUnavailable when ZooKeeper cannot be reached within the timeout and
// nothing was written. When the connection fails after the transaction
// was sent, Publish re-reads the head and revision node (after a sync) and
// reports success if its own publish id landed; if it still cannot tell
// at the deadline, or after maxPublishAttempts, the error is
// ErrOutcomeUnknown, never ErrConflict.
//
// After a successful publish, revisions older than Config.Retention are
// pruned (errors there are logged, not returned: the publish succeeded).
func (s *Store) Publish(ctx context.Context, ref configsvc.Ref, cs configsvc.Changeset) (configsvc.Revision, error) {
	what := "zkstore: publish " + ref.String()
	if err := ref.Validate(); err != nil {
		return configsvc.Revision{}, fmt.Errorf("%s: %w", what, err)
	}
	if err := cs.Validate(); err != nil {
		return configsvc.Revision{}, fmt.Errorf("%s: %w", what, err)
	}
	return s.publish(ctx, what, s.newPublication(ref, cs))
}

// publish runs publication p (a Publish or an ImportRevision) to the end;
// see Publish.
func (s *Store) publish(ctx context.Context, what string, p *publication) (configsvc.Revision, error) {
	ref, cs := p.ref, p.cs
	ctx, cancel := s.opCtx(ctx)
	defer cancel()
	unsure := false // an earlier attempt may have landed
	var lastErr error
	for attempt := 0; attempt < maxPublishAttempts; attempt++ {
		base, ok := cachedHead{}, false
		if !unsure {
			base, ok = s.heads.get(ref, cs.Base)
		}
		if !ok {
			var landed bool
			var err error
			base, landed, err = s.publishBase(ctx, p, attempt > 0, unsure)
			if err != nil {
				return configsvc.Revision{}, fmt.Errorf("%s: %w", what, err)
			}
			if landed {
				s.schedulePrune(ref, "", 0)
				return p.rev, nil
			}
		}
		ops, head, manifest, err := p.transaction(base)
		if err != nil {
			return configsvc.Revision{}, fmt.Errorf("%s: %w", what, err)
		}
		_, err = s.multi(ctx, ops...)
		switch {
		case err == nil:
			s.heads.put(ref, head, base.version+1, manifest, head.ManifestCversion)
			p.cacheMetas(head)
			s.schedulePrune(ref, head.Epoch, head.First)
			return p.rev, nil
		case errors.Is(err, configsvc.ErrTooLarge):
			return configsvc.Revision{}, fmt.Errorf("%s: %w", what, err)
		case errors.Is(err, zk.ErrBadVersion), errors.Is(err, zk.ErrNodeExists),
			ok && errors.Is(err, zk.ErrNoNode):
			// The head moved: a concurrent publish (conflict, found on the
			// next read), a link change (retry), our own earlier attempt,
			// or, for a remembered head, a delete and re-create (epoch).
			s.heads.drop(ref, base)
			lastErr = err
			continue
		case errors.Is(err, zk.ErrNoNode):
			if unsure {
				// Our own earlier attempt may have replaced a manifest
				// node this one deletes: read again.
				lastErr = err
				continue
			}
			return configsvc.Revision{}, fmt.Errorf("%s: %s was deleted: %w", what, ref, configsvc.ErrNotFound)
		case uncertain(err) && ctx.Err() == nil:
			s.heads.drop(ref, base)
			unsure = true
			lastErr = err
			_ = s.bg.Sleep(ctx, 50*time.Millisecond)
			continue
		default:
			return configsvc.Revision{}, s.publishErr(what, err, unsure || uncertain(err))
		}
	}
	if unsure {
		return configsvc.Revision{}, fmt.Errorf("%s: gave up after %d attempts, the last of which failed (%v), and the head never showed whether an earlier one was applied: %w",
			what, maxPublishAttempts, lastErr, configsvc.ErrOutcomeUnknown)
	}
	return configsvc.Revision{}, fmt.Errorf("%s: gave up after %d attempts (last: %v): %w", what, maxPublishAttempts, lastErr, configsvc.ErrConflict)
}

// publication is one Publish in progress: what it writes, whichever head
// it lands on.
type publication struct {
	s   *Store
	ref configsvc.Ref
	cs  configsvc.Changeset
	// doc is the revision node; the Prev of its changes are set per
	// attempt.
	doc revDoc
	// now is this server's clock at the publish; the revision's time is
	// the later of it and the base head's (configsvc.RevisionTime).
	now time.Time
	// rev is what Publish returns: the revision without content.
	rev configsvc.Revision
	// latest is the revision with its content for the head, or nil when
	// too large to inline.
	latest *latestDoc
	// content holds the content node creations (the revision's content
	// directory first), the same on every attempt.
	content []any
	// metas are the manifest node data of the written files.
	metas map[string][]byte
	// parent, set by an import, is the Parent the revision keeps instead
	// of the base head's publish id.
	parent string
}

func (s *Store) newPublication(ref configsvc.Ref, cs configsvc.Changeset) *publication {
	n := cs.Base + 1
	p := &publication{s: s, ref: ref, cs: cs, now: s.cfg.Now(), metas: map[string][]byte{}}
	p.doc = revDoc{
		Revision: n, Author: cs.Author, Time: p.now.UTC(), Message: cs.Message,
		RollbackOf: cs.RollbackOf, PublishID: newID(publishIDSize), Changes: make([]changeDoc, len(cs.Changes)),
	}
	p.rev = p.doc.revision()
	p.rev.Changes = make([]configsvc.Change, len(cs.Changes))
	for i, c := range cs.Changes {
		p.rev.Changes[i] = configsvc.Change{File: c.File, Delete: c.Delete}
		p.doc.Changes[i] = changeDoc{File: c.File, Delete: c.Delete}
		if c.Delete {
			continue
		}
		if len(p.content) == 0 {
			p.content = append(p.content, &zk.CreateRequest{Path: s.contentDir(ref, n), Acl: s.acl})
		}
		// A layout 2 head is at or past its Since, so revision n's
		// content goes under content/{n}/.
		p.content = append(p.content, &zk.CreateRequest{Path: s.contentPath(ref, n, n, c.File), Data: c.Content, Acl: s.acl})
		p.metas[c.File] = mustJSON(fileNodeDoc{SHA256: configsvc.Checksum(c.Content), Size: int64(len(c.Content))})
	}
	p.latest = inlineLatest(p.rev, cs)
	return p
}

// publishBase reads the head a publish builds on, with its manifest (after
// a sync when an earlier attempt failed, so that it sees what the leader
// committed), migrating a head still in layout 1 first. It fails with
// ErrConflict when the head is not at cs.Base, unless, after an attempt
// whose outcome is unknown, the head shows that attempt landed: then
// landed is true.
func (s *Store) publishBase(ctx context.Context, p *publication, again, unsure bool) (base cachedHead, landed bool, err error) {
	ref, n := p.ref, p.doc.Revision
	if again {
		if err := s.synced(ctx); err != nil {
			return cachedHead{}, false, s.publishErr("", err, unsure)
		}
	}
	st, _, err := s.readState(ctx, ref, nil)
	if err == nil && st.doc.Revision != p.cs.Base && !again {
		// This store's server may be behind: a conflict must hold for the
		// ensemble, so read the head again after a sync before saying so.
		if err = s.synced(ctx); err == nil {
			st, _, err = s.readState(ctx, ref, nil)
		}
	}
	if err != nil {
		return cachedHead{}, false, s.publishErr("", err, unsure)
	}
	h := st.doc
	if h.Revision != p.cs.Base {
		if unsure && h.Revision >= n {
			ok, err := s.landed(ctx, ref, n, p.doc.PublishID)
			if err != nil {
				return cachedHead{}, false, s.publishErr("", err, true)
			}
			if ok {
				return cachedHead{}, true, nil
			}
		}
		return cachedHead{}, false, fmt.Errorf("base revision %d is not the head %d: %w", p.cs.Base, h.Revision, configsvc.ErrConflict)
	}
	if !h.layout2() {
		if err := s.migrate(ctx, ref); err != nil {
			return cachedHead{}, false, s.publishErr("move to layout 2", err, unsure)
		}
		if st, _, err = s.readState(ctx, ref, nil); err != nil {
			return cachedHead{}, false, s.publishErr("", err, unsure)
		}
		if st.doc.Revision != p.cs.Base || !st.doc.layout2() {
			return cachedHead{}, false, fmt.Errorf("base revision %d is not the head %d: %w", p.cs.Base, st.doc.Revision, configsvc.ErrConflict)
		}
	}
	s.heads.put(ref, st.doc, st.stat.Version, st.manifest, st.cversion)
	return cachedHead{doc: st.doc, version: st.stat.Version, manifest: st.manifest, cversion: st.cversion}, false, nil
}

// transaction returns the operations that publish p on top of base (a
// layout 2 head), the new head they write and the manifest at it.
// Deleting a file base does not have is ErrInvalid; growing past
// MaxFilesPerService files is ErrTooLarge.
func (p *publication) transaction(base cachedHead) ([]any, *headDoc, map[string]int64, error) {
	s, ref, n := p.s, p.ref, p.doc.Revision
	manifest := make(map[string]int64, len(base.manifest)+len(p.cs.Changes))
	for f, r := range base.manifest {
		manifest[f] = r
	}
	var nodes []any
	for i, c := range p.cs.Changes {
		prev := manifest[c.File]
		p.doc.Changes[i].Prev = prev
		if prev > 0 {
			nodes = append(nodes, &zk.DeleteRequest{Path: s.manifestNode(ref, c.File, prev), Version: -1})
		}
		if c.Delete {
			if prev == 0 {
				return nil, nil, nil, &configsvc.FieldError{Field: "file", Value: c.File, Msg: "cannot delete a file that does not exist"}
			}
			delete(manifest, c.File)
			continue
		}
		manifest[c.File] = n
		nodes = append(nodes, &zk.CreateRequest{Path: s.manifestNode(ref, c.File, n), Data: p.metas[c.File], Acl: s.acl})
	}
	if err := configsvc.CheckServiceFiles(ref, len(base.manifest), len(manifest)); err != nil {
		return nil, nil, nil, err
	}
	// Revision times never go backwards, whatever this server's clock says.
	p.doc.Time = configsvc.RevisionTime(p.now, base.doc.Updated)
	p.rev.Time = p.doc.Time
	// The revision names the one it is published on, so that a follower
	// can tell this history from a rewritten one (configsvc.Identity).
	parent := base.doc.PublishID
	if p.parent != "" {
		parent = p.parent
	}
	p.doc.Parent = parent
	p.rev.Parent, p.rev.Generation = parent, base.doc.Generation
	if p.latest != nil {
		p.latest.Time = p.doc.Time
		p.latest.Parent = parent
	}
	head := &headDoc{Revision: n, Files: manifestMarker, Count: len(manifest), Since: base.doc.Since,
		Links: base.doc.Links, Updated: p.doc.Time, Author: p.cs.Author,
		First: base.doc.First, Epoch: base.doc.Epoch, Latest: p.latest, Grays: base.doc.Grays,
		Generation: base.doc.Generation, PublishID: p.doc.PublishID,
		// Each manifest operation creates or deletes one child.
		ManifestCversion: base.cversion + int32(len(nodes))}
	if keep := int64(s.cfg.Retention); n-keep+1 > head.First {
		head.First = n - keep + 1
	}
	ops := make([]any, 0, len(p.content)+len(nodes)+4)
	if head.Epoch == "" {
		// Created before epochs existed: this publish gives it one.
		head.Epoch = newID(8)
		ops = append(ops, &zk.CreateRequest{Path: s.epochPath(ref, head.Epoch), Acl: s.acl})
	} else {
		ops = append(ops, &zk.CheckVersionRequest{Path: s.epochPath(ref, head.Epoch), Version: -1})
	}
	ops = append(ops, p.content...)
	ops = append(ops, nodes...)
	ops = append(ops,
		&zk.CreateRequest{Path: s.revPath(ref, n), Data: mustJSON(p.doc), Acl: s.acl},
		&zk.SetDataRequest{Path: s.headPath(ref), Data: mustJSON(head), Version: base.version})
	return ops, head, manifest, nil
}

// cacheMetas remembers the manifest node data p wrote, once its
// transaction landed and wrote head.
func (p *publication) cacheMetas(head *headDoc) {
	if head.Epoch == "" {
		return
	}
	for f, data := range p.metas {
		if d, err := decode[fileNodeDoc]("manifest", data); err == nil {
			p.s.metas.put(metaKey(p.ref, head.Epoch, head.Generation, f, p.doc.Revision), *d)
		}
	}
}

// publishErr translates err; when an earlier attempt may have landed, the
// error is ErrOutcomeUnknown (unless it is a conflict or a missing ref,
// which the head read proved).
func (s *Store) publishErr(what string, err error, unsure bool) error {
	if unsure && !errors.Is(err, configsvc.ErrNotFound) && !errors.Is(err, configsvc.ErrConflict) {
		const unknown = "the transaction may have been applied; read the head to find out"
		if what != "" {
			what += ": "
		}
		return fmt.Errorf("%s%s (%v): %w", what, unknown, mapErr("", err), configsvc.ErrOutcomeUnknown)
	}
	return mapErr(what, err)
}

// landed reports whether revision n of ref carries publish id pid.
func (s *Store) landed(ctx context.Context, ref configsvc.Ref, n int64, pid string) (bool, error) {
	data, _, err := s.get(ctx, s.revPath(ref, n))
	if errors.Is(err, zk.ErrNoNode) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	d, err := decode[revDoc]("revision", data)
	if err != nil {
		return false, err
	}
	return d.PublishID == pid, nil
}
