package zkstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/go-zookeeper/zk"

	"github.com/sluicehq/sluice/configsvc"
)

// maxPruneRevisions bounds the revisions one prune step removes, so its
// transaction stays small; a backlog (after Retention was lowered) is
// worked off over the following publishes.
const maxPruneRevisions = 100

// maxPruneNotes bounds the revisions whose written files a store keeps in
// memory for pruning (see pruneNotes), over all services and groups.
const maxPruneNotes = 1 << 17

// schedulePrune asks the background pruner to remove revisions of ref
// below first (0: unknown, check). Publishing never waits for pruning:
// retention is enforced logically by the head's First, atomically with the
// publish, and the nodes below it are removed soon after.
//
// Pruning runs once the boundary is pruneLag revisions ahead of what is
// known to be pruned, so that its cost (three round trips) is shared by
// several publishes.
func (s *Store) schedulePrune(ref configsvc.Ref, first int64) {
	s.pruneMu.Lock()
	if first != 0 && first-s.prunedTo[ref] < s.pruneLag() {
		s.pruneMu.Unlock()
		return
	}
	if first == 0 {
		s.prunePending[ref] = checkFirst
	} else if old, ok := s.prunePending[ref]; !ok || (old != checkFirst && old < first) {
		s.prunePending[ref] = first
	}
	s.pruneMu.Unlock()
	select {
	case s.pruneKick <- struct{}{}:
	default:
	}
}

// checkFirst in prunePending: the boundary is unknown, prune in any case.
const checkFirst = -1

// pruneLag is the batch of pruning: retention/8, between 1 and 16
// revisions.
func (s *Store) pruneLag() int64 {
	return int64(min(max(s.cfg.Retention/8, 1), 16))
}

// pruner runs until Close, pruning the refs schedulePrune names. A ref
// whose batch a prune that was under way meanwhile already removed is
// skipped (the publishes during it scheduled it again).
func (s *Store) pruner() {
	for {
		select {
		case <-s.bg.Done():
			return
		case <-s.pruneKick:
		}
		s.pruneMu.Lock()
		refs := s.prunePending
		s.prunePending = map[configsvc.Ref]int64{}
		s.pruneMu.Unlock()
		for ref, first := range refs {
			s.pruneMu.Lock()
			done := first != checkFirst && first-s.prunedTo[ref] < s.pruneLag()
			s.pruneMu.Unlock()
			if !done {
				s.prune(ref)
			}
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
		pruned, first, err := s.pruneStep(ctx, ref)
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
		// Publishes during the step moved First on a little: that rest is
		// the next batch, scheduled when it is one.
		if first-pruned < s.pruneLag() {
			return
		}
	}
}

// pruneStep removes up to maxPruneRevisions revisions in one transaction.
// It reports up to which revision (exclusive) ref is pruned, and the
// head's First. Three round trips: the head and ref node, the revision
// nodes, the transaction.
func (s *Store) pruneStep(ctx context.Context, ref configsvc.Ref) (pruned, first int64, err error) {
	nodes, err := s.getMany(ctx, []string{s.headPath(ref), s.refPath(ref)})
	if err != nil {
		return 0, 0, err
	}
	for _, n := range nodes {
		if n.err != nil {
			return 0, 0, n.err
		}
	}
	h, err := decodeHead(nodes[0].data)
	if err != nil {
		return 0, 0, err
	}
	rd, err := decode[refDoc]("ref", nodes[1].data)
	if err != nil {
		return 0, 0, err
	}
	from := max(rd.Pruned, 1)
	if from >= h.First {
		return from, h.First, nil
	}
	to := min(h.First, from+maxPruneRevisions) // prune [from, to)
	b, err := s.gatherBatch(ctx, ref, h.Epoch, from, to)
	if err != nil {
		return 0, 0, err
	}
	ops := b.deletes(s, ref)
	rd.Pruned = to
	ops = append(ops, &zk.SetDataRequest{Path: s.refPath(ref), Data: mustJSON(rd), Version: nodes[1].stat.Version})
	if _, err := s.multi(ctx, ops...); err != nil {
		if !errors.Is(err, zk.ErrNoNode) {
			return 0, 0, err
		}
		if err := s.pruneOneByOne(ctx, ops); err != nil {
			return 0, 0, err
		}
	}
	s.notes.pruned(ref, h.Epoch, to, b.keep)
	return to, h.First, nil
}

// pruneBatch is what one prune step removes: revisions [from, to).
type pruneBatch struct {
	from, to int64
	// revs are the revisions [from, to) whose nodes still exist, with the
	// files each wrote (a content node each).
	revs map[int64][]string
	// atFrom is the manifest at from (file → revision of its content),
	// nil when revision from is gone; keep is the manifest at to.
	atFrom, keep map[string]int64
}

// gatherBatch gathers the batch [from, to): the manifest at to from its
// revision node, and, for each revision, the files it wrote, from the
// store's notes of its own publishes or else from the revision node (read
// together, one round trip). A note can only ever name a content node that
// may go: whatever it names is deleted only if it is older than to and not
// in the manifest at to, which it reads.
func (s *Store) gatherBatch(ctx context.Context, ref configsvc.Ref, epoch string, from, to int64) (*pruneBatch, error) {
	b := &pruneBatch{from: from, to: to}
	b.revs, b.atFrom = s.notes.batch(ref, epoch, from, to)
	paths := []string{s.revPath(ref, to)}
	nums := []int64{to}
	for n := from; n < to; n++ {
		if _, ok := b.revs[n]; !ok || (n == from && b.atFrom == nil) {
			paths = append(paths, s.revPath(ref, n))
			nums = append(nums, n)
		}
	}
	res, err := s.getMany(ctx, paths)
	if err != nil {
		return nil, err
	}
	for i, r := range res {
		n := nums[i]
		if r.err != nil {
			if n == to {
				return nil, fmt.Errorf("read revision %d: %w", to, r.err)
			}
			delete(b.revs, n) // already gone
			continue
		}
		d, err := decode[revDoc]("revision", r.data)
		if err != nil {
			return nil, err
		}
		switch {
		case n == to:
			b.keep = d.Files
			continue
		case n == from:
			b.atFrom = d.Files
		}
		b.revs[n] = writtenFiles(d.Changes)
	}
	return b, nil
}

// deletes returns the deletions of the batch: its revision nodes, and the
// content nodes they reference that the manifest at to does not.
func (b *pruneBatch) deletes(s *Store, ref configsvc.Ref) []any {
	type content struct {
		rev  int64
		file string
	}
	cands := map[content]bool{}
	for f, cr := range b.atFrom {
		if cr < b.from { // content older than from, still referenced by from
			cands[content{cr, f}] = true
		}
	}
	var ops []any
	for n := b.from; n < b.to; n++ {
		files, ok := b.revs[n]
		if !ok {
			continue
		}
		for _, f := range files {
			cands[content{n, f}] = true
		}
		ops = append(ops, &zk.DeleteRequest{Path: s.revPath(ref, n), Version: -1})
	}
	for c := range cands {
		if b.keep[c.file] != c.rev {
			ops = append(ops, &zk.DeleteRequest{Path: s.contentPath(ref, c.rev, c.file), Version: -1})
		}
	}
	return ops
}

// writtenFiles returns the files a revision's changes write.
func writtenFiles(changes []changeDoc) []string {
	var files []string
	for _, c := range changes {
		if !c.Delete {
			files = append(files, c.File)
		}
	}
	return files
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
