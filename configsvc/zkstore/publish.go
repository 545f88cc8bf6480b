package zkstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/format"
)

// maxPublishAttempts bounds the retries of one Publish: a head version that
// moved without a new revision (a Link, an Unlink) and connection losses
// whose outcome had to be checked.
const maxPublishAttempts = 20

// Publish atomically creates revision cs.Base+1 and moves the head to it in
// one ZooKeeper transaction: a content node per changed file, the revision
// node (metadata, publish id, manifest), and the head set with a version
// check. It validates cs (names, limits, formats) before writing anything.
//
// Errors: ErrInvalid and ErrTooLarge for bad input; ErrConflict when the
// head is no longer cs.Base; ErrNotFound when ref does not exist;
// ErrUnavailable when ZooKeeper cannot be reached within the timeout. When
// the connection fails after the transaction was sent, Publish re-reads the
// head and revision node (after a sync) and reports success if its own
// publish id landed; if it still cannot tell when the timeout ends, the
// ErrUnavailable error says the outcome is unknown.
//
// After a successful publish, revisions older than Config.Retention are
// pruned (errors there are logged, not returned: the publish succeeded).
func (s *Store) Publish(ctx context.Context, ref configsvc.Ref, cs configsvc.Changeset) (configsvc.Revision, error) {
	what := "zkstore: publish " + ref.String()
	if err := ref.Validate(); err != nil {
		return configsvc.Revision{}, fmt.Errorf("%s: %w", what, err)
	}
	if err := cs.Validate(format.Validate); err != nil {
		return configsvc.Revision{}, fmt.Errorf("%s: %w", what, err)
	}
	ctx, cancel := s.opCtx(ctx)
	defer cancel()

	n := cs.Base + 1
	var idb [16]byte
	_, _ = rand.Read(idb[:])
	now := s.cfg.Now()
	doc := revDoc{
		Revision: n, Author: cs.Author, Time: now.UTC(), Message: cs.Message,
		RollbackOf: cs.RollbackOf, PublishID: hex.EncodeToString(idb[:]),
	}
	rev := doc.revision()
	rev.Changes = make([]configsvc.Change, len(cs.Changes))
	for i, c := range cs.Changes {
		rev.Changes[i] = configsvc.Change{File: c.File, Delete: c.Delete}
		doc.Changes = append(doc.Changes, changeDoc{File: c.File, Delete: c.Delete})
	}

	unsure := false // an earlier attempt may have landed
	var lastErr error
	for attempt := 0; attempt < maxPublishAttempts; attempt++ {
		if attempt > 0 {
			// Read what the leader has committed, not a lagging follower.
			if err := s.do(ctx, func(c *zk.Conn) error { _, err := c.Sync(s.headPath(ref)); return err }); err != nil && !errors.Is(err, zk.ErrNoNode) {
				return configsvc.Revision{}, s.publishErr(what, err, unsure)
			}
		}
		h, stat, err := s.readHead(ctx, ref)
		if err != nil {
			return configsvc.Revision{}, s.publishErr(what, err, unsure)
		}
		if h.Revision != cs.Base {
			if unsure && h.Revision >= n {
				if ok, err := s.landed(ctx, ref, n, doc.PublishID); err != nil {
					return configsvc.Revision{}, s.publishErr(what, err, true)
				} else if ok {
					s.schedulePrune(ref, 0)
					return rev, nil
				}
			}
			return configsvc.Revision{}, fmt.Errorf("%s: base revision %d is not the head %d: %w", what, cs.Base, h.Revision, configsvc.ErrConflict)
		}
		doc.Time = configsvc.RevisionTime(now, h.Updated)
		rev.Time = doc.Time
		fake := rev
		manifest, err := configsvc.Apply(h.Files, &fake)
		if err != nil {
			return configsvc.Revision{}, fmt.Errorf("%s: %w", what, err)
		}
		doc.Files = make(map[string]int64, len(manifest))
		for name, m := range manifest {
			doc.Files[name] = m.Revision
		}
		// Apply computed checksums from nil content; fill in the real ones.
		for _, c := range cs.Changes {
			if !c.Delete {
				manifest[c.File] = configsvc.FileMeta{Name: c.File, Revision: n, SHA256: configsvc.Checksum(c.Content), Size: int64(len(c.Content)), Format: configsvc.FormatOf(c.File)}
			}
		}
		newHead := headDoc{Revision: n, Files: manifest, Links: h.Links, Updated: doc.Time, Author: cs.Author, First: h.First,
			Latest: inlineLatest(rev, cs)}
		if keep := int64(s.cfg.Retention); n-keep+1 > newHead.First {
			newHead.First = n - keep + 1
		}
		ops := make([]any, 0, len(cs.Changes)+2)
		for _, c := range cs.Changes {
			if !c.Delete {
				ops = append(ops, &zk.CreateRequest{Path: s.contentPath(ref, n, c.File), Data: c.Content, Acl: s.acl})
			}
		}
		ops = append(ops,
			&zk.CreateRequest{Path: s.revPath(ref, n), Data: mustJSON(doc), Acl: s.acl},
			&zk.SetDataRequest{Path: s.headPath(ref), Data: mustJSON(newHead), Version: stat.Version})
		_, err = s.multi(ctx, ops...)
		switch {
		case err == nil:
			s.schedulePrune(ref, newHead.First)
			return rev, nil
		case errors.Is(err, configsvc.ErrTooLarge):
			return configsvc.Revision{}, fmt.Errorf("%s: %w", what, err)
		case errors.Is(err, zk.ErrBadVersion), errors.Is(err, zk.ErrNodeExists):
			// The head moved: a concurrent publish (conflict, found on the
			// next read), a link change (retry), or our own earlier attempt.
			lastErr = err
			continue
		case errors.Is(err, zk.ErrNoNode):
			return configsvc.Revision{}, fmt.Errorf("%s: %s was deleted: %w", what, ref, configsvc.ErrNotFound)
		case uncertain(err) && ctx.Err() == nil:
			unsure = true
			lastErr = err
			s.pause(ctx, 50*time.Millisecond)
			continue
		default:
			return configsvc.Revision{}, s.publishErr(what, err, unsure || uncertain(err))
		}
	}
	return configsvc.Revision{}, fmt.Errorf("%s: gave up after %d attempts (last: %v): %w", what, maxPublishAttempts, lastErr, configsvc.ErrConflict)
}

func (s *Store) publishErr(what string, err error, unsure bool) error {
	if unsure && !errors.Is(err, configsvc.ErrNotFound) && !errors.Is(err, configsvc.ErrConflict) {
		return mapErr(what+": outcome unknown (the transaction may have been applied; read the head to find out)", err)
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

func (s *Store) pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	case <-s.closing:
	}
}

// maxPruneRevisions bounds the revisions one prune step removes, so its
// transaction stays small; a backlog (after Retention was lowered) is
// worked off over the following publishes.
const maxPruneRevisions = 100

// schedulePrune asks the background pruner to remove revisions of ref
// below first (0: unknown, check). Publishing never waits for pruning:
// retention is enforced logically by the head's First, atomically with the
// publish, and the nodes below it are removed soon after.
//
// Pruning runs once the boundary is pruneLag revisions ahead of what is
// known to be pruned, so that its cost (four round trips) is shared by
// several publishes.
func (s *Store) schedulePrune(ref configsvc.Ref, first int64) {
	lag := int64(min(max(s.cfg.Retention/8, 1), 16))
	s.pruneMu.Lock()
	if first != 0 && first-s.prunedTo[ref] < lag {
		s.pruneMu.Unlock()
		return
	}
	s.prunePending[ref] = true
	s.pruneMu.Unlock()
	select {
	case s.pruneKick <- struct{}{}:
	default:
	}
}

// pruner runs until Close, pruning the refs schedulePrune names.
func (s *Store) pruner() {
	defer s.wg.Done()
	for {
		select {
		case <-s.closing:
			return
		case <-s.pruneKick:
		}
		s.pruneMu.Lock()
		refs := s.prunePending
		s.prunePending = map[configsvc.Ref]bool{}
		s.pruneMu.Unlock()
		for ref := range refs {
			s.prune(ref)
		}
	}
}

// prune physically removes revisions below the head's First (the logical
// retention boundary moved by Publish) and every content node no retained
// revision references, a bounded step at a time. Progress is kept in the
// ref node's Pruned field, updated with a version check, so concurrent
// pruners (other servers on the same ensemble) never collide.
//
// Why a content node (R, f) with R < First may go: a retained revision M
// ≥ First that still used it would mean f was not changed between R and M,
// so the manifest at First would also point at R. Hence (R, f) is kept
// exactly when manifest(First)[f] == R.
func (s *Store) prune(ref configsvc.Ref) {
	for step := 0; step < 20; step++ {
		ctx, cancel := s.opCtx(s.life)
		done, pruned, err := s.pruneStep(ctx, ref)
		cancel()
		if err != nil {
			if !errors.Is(err, zk.ErrBadVersion) && !errors.Is(err, configsvc.ErrClosed) && !errors.Is(err, zk.ErrNoNode) && !errors.Is(err, configsvc.ErrNotFound) {
				s.log.Warn("zkstore: prune old revisions", "ref", ref.String(), "err", err)
			}
			return
		}
		s.pruneMu.Lock()
		s.prunedTo[ref] = max(s.prunedTo[ref], pruned)
		s.pruneMu.Unlock()
		if done {
			return
		}
	}
}

// pruneStep removes up to maxPruneRevisions revisions. It reports whether
// ref is fully pruned and up to which revision (exclusive) it is.
func (s *Store) pruneStep(ctx context.Context, ref configsvc.Ref) (done bool, pruned int64, err error) {
	h, _, err := s.readHead(ctx, ref)
	if err != nil {
		return false, 0, err
	}
	data, stat, err := s.get(ctx, s.refPath(ref))
	if err != nil {
		return false, 0, err
	}
	rd, err := decode[refDoc]("ref", data)
	if err != nil {
		return false, 0, err
	}
	from := max(rd.Pruned, 1)
	if from >= h.First {
		return true, from, nil
	}
	to := min(h.First, from+maxPruneRevisions) // prune [from, to)
	paths := []string{s.revPath(ref, to)}
	for r := from; r < to; r++ {
		paths = append(paths, s.revPath(ref, r))
	}
	res, err := s.getMany(ctx, paths)
	if err != nil {
		return false, 0, err
	}
	if res[0].err != nil {
		return false, 0, fmt.Errorf("read revision %d: %w", to, res[0].err)
	}
	keepAt, err := decode[revDoc]("revision", res[0].data)
	if err != nil {
		return false, 0, err
	}
	type content struct {
		rev  int64
		file string
	}
	cands := map[content]bool{}
	var ops []any
	for i, r := range res[1:] {
		n := from + int64(i)
		if r.err != nil { // already gone
			continue
		}
		d, err := decode[revDoc]("revision", r.data)
		if err != nil {
			return false, 0, err
		}
		if n == from {
			// Content older than from still referenced by from's manifest.
			for f, cr := range d.Files {
				if cr < from {
					cands[content{cr, f}] = true
				}
			}
		}
		for _, c := range d.Changes {
			if !c.Delete {
				cands[content{n, c.File}] = true
			}
		}
		ops = append(ops, &zk.DeleteRequest{Path: s.revPath(ref, n), Version: -1})
	}
	for c := range cands {
		if keepAt.Files[c.file] != c.rev {
			ops = append(ops, &zk.DeleteRequest{Path: s.contentPath(ref, c.rev, c.file), Version: -1})
		}
	}
	rd.Pruned = to
	ops = append(ops, &zk.SetDataRequest{Path: s.refPath(ref), Data: mustJSON(rd), Version: stat.Version})
	if _, err := s.multi(ctx, ops...); err != nil {
		if !errors.Is(err, zk.ErrNoNode) {
			return false, 0, err
		}
		if err := s.pruneOneByOne(ctx, ops); err != nil {
			return false, 0, err
		}
	}
	return to >= h.First, to, nil
}

// pruneOneByOne applies a prune transaction that failed on a node already
// gone (an earlier, interrupted prune) as separate deletes, then the
// progress update.
func (s *Store) pruneOneByOne(ctx context.Context, ops []any) error {
	for _, op := range ops {
		switch o := op.(type) {
		case *zk.DeleteRequest:
			err := s.do(ctx, func(c *zk.Conn) error { return c.Delete(o.Path, -1) })
			if err != nil && !errors.Is(err, zk.ErrNoNode) {
				return err
			}
		case *zk.SetDataRequest:
			return s.do(ctx, func(c *zk.Conn) error { _, err := c.Set(o.Path, o.Data, o.Version); return err })
		}
	}
	return nil
}
