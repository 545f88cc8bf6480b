package zkstore

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/go-zookeeper/zk"
	"golang.org/x/sync/errgroup"

	"github.com/sluicehq/sluice/configsvc"
)

// pruneWindow is how many revision nodes one prune step reads (one round
// trip, pipelined); the step then removes as many of them as fit in
// boundedTxn bytes.
const pruneWindow = 64

// pruneMark is what a store knows of the pruning of one incarnation of a
// service or group (its epoch): every revision below pruned is gone. It is
// only a hint that saves a look at the store: the progress itself is the
// ref node's Pruned, which every server reads and moves.
type pruneMark struct {
	epoch  string
	pruned int64
}

// schedulePrune asks the background pruner to remove revisions of ref
// below first (0: unknown, check) in the incarnation epoch ("" unknown).
// Publishing never waits for pruning: retention is enforced logically by
// the head's First, atomically with the publish, and the nodes below it
// are removed soon after.
//
// Pruning runs once the boundary is pruneLag revisions ahead of what is
// known to be pruned, so that its cost is shared by several publishes.
// What is known is kept per epoch, so a service deleted and created again
// (by this server or another) is never taken for pruned.
func (s *Store) schedulePrune(ref configsvc.Ref, epoch string, first int64) {
	s.pruneMu.Lock()
	pruned := int64(1) // what any incarnation starts from
	if mark, ok := s.prunedTo[ref]; ok && mark.epoch == epoch {
		pruned = mark.pruned
	}
	if first != 0 && first-pruned < s.pruneLag() {
		s.pruneMu.Unlock()
		return
	}
	if first == 0 {
		s.prunePending[ref] = pendingPrune{first: checkFirst}
	} else if old, ok := s.prunePending[ref]; !ok || (old.first != checkFirst && old.first < first) {
		s.prunePending[ref] = pendingPrune{epoch: epoch, first: first}
	}
	s.pruneMu.Unlock()
	select {
	case s.pruneKick <- struct{}{}:
	default:
	}
}

// pendingPrune is a prune schedulePrune asked for: below first (checkFirst:
// unknown, prune in any case) in the incarnation epoch.
type pendingPrune struct {
	epoch string
	first int64
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
		s.prunePending = map[configsvc.Ref]pendingPrune{}
		s.pruneMu.Unlock()
		for ref, p := range refs {
			s.pruneMu.Lock()
			mark, ok := s.prunedTo[ref]
			done := ok && p.first != checkFirst && mark.epoch == p.epoch && p.first-mark.pruned < s.pruneLag()
			s.pruneMu.Unlock()
			if !done {
				s.prune(ref)
			}
		}
	}
}

// prune physically removes revisions below the head's First (the logical
// retention boundary moved by Publish) and every content node no retained
// revision references, one step after another until less than a batch is
// left: however far behind pruning is (retention lowered on a long
// history, a pruner that was down), it converges, each step bounded in
// bytes. Progress is kept in the ref node's Pruned field, updated with a
// version check in the step's transaction, so concurrent pruners (other
// servers on the same ensemble) never collide and every server sees it. A
// failed step is logged and left to the next publish.
func (s *Store) prune(ref configsvc.Ref) {
	for {
		select {
		case <-s.bg.Done():
			return
		default:
		}
		ctx, cancel := s.opCtx(s.life)
		pruned, first, epoch, err := s.pruneStep(ctx, ref)
		cancel()
		if err != nil {
			if !errors.Is(err, zk.ErrBadVersion) && !errors.Is(err, configsvc.ErrClosed) && !errors.Is(err, zk.ErrNoNode) && !errors.Is(err, configsvc.ErrNotFound) {
				s.log.Warn("zkstore: prune old revisions", "ref", ref.String(), "err", err)
			}
			return
		}
		s.pruneMu.Lock()
		s.prunedTo[ref] = pruneMark{epoch: epoch, pruned: pruned}
		s.pruneMu.Unlock()
		// Publishes during the step moved First on a little: that rest is
		// the next batch, scheduled when it is one.
		if first-pruned < s.pruneLag() {
			return
		}
	}
}

// pruneStep removes the oldest revisions that fit in one transaction of
// boundedTxn bytes, at least one, at most pruneWindow. It reports up to
// which revision (exclusive) ref is pruned, the head's First and epoch.
// Two round trips and the transaction: the head and ref node, the revision
// nodes, then the deletions with the content directories they empty;
// emptied directories of older revisions are removed after, best effort
// (a directory left behind holds nothing and goes with the service).
//
// Which content nodes go: the content of file f written by revision R is
// used by revisions R up to the one before S, the next revision that
// changes f, whose change names R as f's previous content. Once every
// revision below S is pruned, nothing can use it again. So removing
// revisions [from, to) removes the content that revisions from+1 … to
// name as previous. (A revision written in layout 1 names none: the
// previous content of its changes is read from the manifest of the
// revision before it.)
func (s *Store) pruneStep(ctx context.Context, ref configsvc.Ref) (pruned, first int64, epoch string, err error) {
	nodes, err := s.getMany(ctx, []string{s.headPath(ref), s.refPath(ref)})
	if err != nil {
		return 0, 0, "", err
	}
	for _, n := range nodes {
		if n.err != nil {
			return 0, 0, "", n.err
		}
	}
	h, err := decodeHead(nodes[0].data)
	if err != nil {
		return 0, 0, "", err
	}
	rd, err := decode[refDoc]("ref", nodes[1].data)
	if err != nil {
		return 0, 0, "", err
	}
	from := max(rd.Pruned, 1)
	if from >= h.First {
		return from, h.First, h.Epoch, nil
	}
	end := min(h.First, from+pruneWindow) // read revisions [from, end]
	res, err := s.getMany(ctx, s.revWindow(ref, from, int(end-from+1)))
	if err != nil {
		return 0, 0, "", err
	}
	docs := map[int64]*revDoc{}
	if err := revDocs(docs, from, res); err != nil {
		return 0, 0, "", err
	}
	var contents, revs []any
	dirs := map[int64]bool{}        // content directories that may have emptied
	gone := map[contentRef]bool{}   // content nodes this step deletes
	size := opsSize(nil) + 256 + 64 // the progress update, an emptied directory
	to := from
	for next := from + 1; next <= end; next++ {
		prev := previousContent(docs, next)
		add := make([]any, 0, len(prev)+1)
		for _, c := range prev {
			add = append(add, &zk.DeleteRequest{Path: s.contentPath(ref, h.Since, c.rev, c.file), Version: -1})
		}
		if docs[next-1] != nil {
			add = append(add, &zk.DeleteRequest{Path: s.revPath(ref, next-1), Version: -1})
		}
		grow := opsSize(add) - opsSize(nil)
		if to > from && size+grow > boundedTxn {
			break
		}
		size += grow + 64
		for _, c := range prev {
			gone[c] = true
			if h.layout2() && c.rev >= h.Since {
				dirs[c.rev] = true
			}
		}
		n := len(add)
		if docs[next-1] != nil {
			n--
			revs = append(revs, add[n])
		}
		contents = append(contents, add[:n]...)
		to = next
	}
	// The content directory of a revision the step removes goes in the same
	// transaction when the step removes all it holds (the usual case: the
	// files were changed again before to); others that emptied (of older
	// revisions) are removed after it, one request each.
	for r := from; r < to; r++ {
		if !h.layout2() || r < h.Since || docs[r] == nil || !dirs[r] {
			continue
		}
		delete(dirs, r)
		all := true
		for _, c := range docs[r].Changes {
			all = all && (c.Delete || gone[contentRef{r, c.File}])
		}
		if all {
			contents = append(contents, &zk.DeleteRequest{Path: s.contentDir(ref, r), Version: -1})
		}
	}
	// Content first, so that a step applied one by one and interrupted
	// never drops a revision node whose content it has not dropped yet.
	ops := append(contents, revs...)
	rd.Pruned = to
	ops = append(ops, &zk.SetDataRequest{Path: s.refPath(ref), Data: mustJSON(rd), Version: nodes[1].stat.Version})
	if _, err := s.multi(ctx, ops...); err != nil {
		if !errors.Is(err, zk.ErrNoNode) && !errors.Is(err, zk.ErrNotEmpty) {
			return 0, 0, "", err
		}
		if err := s.pruneOneByOne(ctx, ops); err != nil {
			return 0, 0, "", err
		}
	}
	s.removeEmptyDirs(ctx, ref, dirs)
	return to, h.First, h.Epoch, nil
}

// contentRef names one content node: file as written by revision rev.
type contentRef struct {
	rev  int64
	file string
}

// previousContent returns the content nodes revision next's changes
// replaced or deleted (nothing when its node is gone: an interrupted step
// removed it, after its content).
func previousContent(docs map[int64]*revDoc, next int64) []contentRef {
	d := docs[next]
	if d == nil {
		return nil
	}
	var out []contentRef
	if d.Files == nil { // layout 2: each change names it
		for _, c := range d.Changes {
			if c.Prev > 0 {
				out = append(out, contentRef{c.Prev, c.File})
			}
		}
		return out
	}
	before := docs[next-1]
	if before == nil || before.Files == nil {
		return nil
	}
	for _, c := range d.Changes {
		if r, ok := before.Files[c.File]; ok && r != d.Files[c.File] {
			out = append(out, contentRef{r, c.File})
		}
	}
	return out
}

// removeEmptyDirs deletes the content directories of revisions in dirs
// that hold nothing any more; one still holding content is left alone.
func (s *Store) removeEmptyDirs(ctx context.Context, ref configsvc.Ref, dirs map[int64]bool) {
	nums := make([]int64, 0, len(dirs))
	for n := range dirs {
		nums = append(nums, n)
	}
	sort.Slice(nums, func(i, j int) bool { return nums[i] < nums[j] })
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for _, n := range nums {
		g.Go(func() error {
			err := s.do(gctx, func(c *zk.Conn) error { return c.Delete(s.contentDir(ref, n), -1) })
			if err != nil && !errors.Is(err, zk.ErrNotEmpty) && !errors.Is(err, zk.ErrNoNode) {
				return fmt.Errorf("remove content directory of revision %d: %w", n, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		s.log.Debug("zkstore: prune", "ref", ref.String(), "err", err)
	}
}

// pruneOneByOne applies a prune transaction that failed on a node already
// gone (an earlier, interrupted prune) or a directory not empty as separate
// deletes, in order, then the progress update; such nodes are skipped.
func (s *Store) pruneOneByOne(ctx context.Context, ops []any) error {
	for _, op := range ops {
		switch o := op.(type) {
		case *zk.DeleteRequest:
			err := s.do(ctx, func(c *zk.Conn) error { return c.Delete(o.Path, -1) })
			if err != nil && !errors.Is(err, zk.ErrNoNode) && !errors.Is(err, zk.ErrNotEmpty) {
				return err
			}
		case *zk.SetDataRequest:
			return s.do(ctx, func(c *zk.Conn) error { _, err := c.Set(o.Path, o.Data, o.Version); return err })
		}
	}
	return nil
}
