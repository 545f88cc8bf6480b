package httpapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/lifecycle"
)

// The summary index (docs/api.md, "Console pages"): what the Services and
// Shared pages show of every service and group, kept in memory so that a
// page costs no store round trip. It starts with the first request that
// needs it and runs until the Server closes:
//
//   - a lister lists the services and groups every summaryRelist, and at
//     once when this server created one; it reads the head (and, for a
//     service, the instances) of each new one, then follows it;
//   - a follower per service or group watches its head (Store.Watch: new
//     revisions, link changes, deletion), and one per service its
//     instances (Store.WatchInstances);
//   - this server's own publishes, links and deletes are applied at once,
//     so a page read right after them shows them.
//
// Every other server's changes arrive through the watches, within the
// store's watch latency; creations by other servers within summaryRelist.
const (
	summaryRelist = 5 * time.Second
	// summaryLoadParallel bounds the store reads a relist sends at once.
	summaryLoadParallel = 64
	// summaryRetryMin and summaryRetryMax bound a follower's backoff while
	// the store is unreachable.
	summaryRetryMin = 200 * time.Millisecond
	summaryRetryMax = 5 * time.Second
)

// refEntry is the index's view of one service or group. Its fields are
// guarded by summaryIndex.mu; an entry replaced or dropped is never used
// again (followers check that their entry is still the index's).
type refEntry struct {
	ref      configsvc.Ref
	revision int64
	updated  time.Time
	author   string
	files    map[string]bool
	links    []string       // services only, sorted
	insts    []instanceMark // services only
	cancel   context.CancelFunc
}

// instanceMark is what the counts need of one live instance.
type instanceMark struct {
	status   configsvc.InstanceStatus
	revision int64
}

// refView is a copy of an entry, for one request.
type refView struct {
	ref      configsvc.Ref
	revision int64
	updated  time.Time
	author   string
	files    int
	links    []string
	insts    []instanceMark
}

// summaryIndex keeps a refEntry per service and group of the store. It is
// safe for concurrent use; close stops its goroutines.
type summaryIndex struct {
	store configsvc.Store
	log   *slog.Logger
	every time.Duration // summaryRelist; tests shorten it before first use

	bg     lifecycle.Group
	ctx    context.Context // canceled by close
	cancel context.CancelFunc

	mu      sync.Mutex
	started bool
	refs    map[configsvc.Ref]*refEntry
	// want counts the relists asked for (the first start, and each
	// creation through this server); done is the want the last finished
	// relist began with; settled is closed (and replaced) when done moves.
	want, done uint64
	settled    chan struct{}
	wake       chan struct{} // buffer 1: a relist is wanted now
}

func newSummaryIndex(store configsvc.Store, log *slog.Logger) *summaryIndex {
	ctx, cancel := context.WithCancel(context.Background())
	return &summaryIndex{store: store, log: log, every: summaryRelist, ctx: ctx, cancel: cancel,
		refs: map[configsvc.Ref]*refEntry{}, settled: make(chan struct{}), wake: make(chan struct{}, 1)}
}

// close stops the lister and the followers and waits for them.
func (x *summaryIndex) close() {
	x.cancel()
	x.bg.Stop()
	x.bg.Wait()
}

// views returns the index's entries of kind, once it holds every service
// and group that existed when the call began (it starts the index on
// first use). Without a store answer before ctx ends it returns ctx's
// error wrapped in ErrUnavailable.
func (x *summaryIndex) views(ctx context.Context, kind configsvc.Kind) ([]refView, error) {
	if err := x.await(ctx); err != nil {
		return nil, err
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	out := make([]refView, 0, len(x.refs))
	for _, e := range x.refs {
		if e.ref.Kind != kind {
			continue
		}
		out = append(out, refView{ref: e.ref, revision: e.revision, updated: e.updated, author: e.author,
			files: len(e.files), links: e.links, insts: e.insts})
	}
	return out, nil
}

// linksOf returns the links of every service, for the groups' users.
func (x *summaryIndex) linksOf() map[string][]string {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := map[string][]string{}
	for _, e := range x.refs {
		if e.ref.Kind == configsvc.KindService {
			for _, g := range e.links {
				out[g] = append(out[g], e.ref.Name)
			}
		}
	}
	for _, users := range out {
		slices.Sort(users)
	}
	return out
}

// await starts the index if need be and waits until the relists asked for
// so far are done.
func (x *summaryIndex) await(ctx context.Context) error {
	x.mu.Lock()
	if !x.started {
		x.started = true
		x.want++
		if !x.bg.Go(x.lister) {
			x.mu.Unlock()
			return errClosedIndex
		}
	}
	want := x.want
	for x.done < want {
		ch := x.settled
		x.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return userErr(fmt.Errorf("%w: %w", configsvc.ErrUnavailable, ctx.Err()), "the summary of services and groups is still loading from the store; try again in a moment")
		case <-x.ctx.Done():
			return errClosedIndex
		}
		x.mu.Lock()
	}
	x.mu.Unlock()
	return nil
}

var errClosedIndex = userErr(configsvc.ErrClosed, "the server is shutting down; try another server of the cluster")

// poke asks for a relist now (a service or group was created through
// this server): the next views call waits for it.
func (x *summaryIndex) poke() {
	x.mu.Lock()
	defer x.mu.Unlock()
	if !x.started {
		return
	}
	x.want++
	select {
	case x.wake <- struct{}{}:
	default:
	}
}

// lister relists every summaryRelist, and when poked, until close.
func (x *summaryIndex) lister() {
	retry := summaryRetryMin
	for {
		x.mu.Lock()
		want := x.want
		x.mu.Unlock()
		wait := x.every
		if err := x.relist(x.ctx); err != nil {
			if x.ctx.Err() != nil {
				return
			}
			x.log.Warn("summary index: listing services and groups", "err", err, "retry", retry)
			wait, retry = retry, min(2*retry, summaryRetryMax)
		} else {
			retry = summaryRetryMin
			x.mu.Lock()
			if want > x.done {
				x.done = want
				close(x.settled)
				x.settled = make(chan struct{})
			}
			x.mu.Unlock()
		}
		t := time.NewTimer(wait)
		select {
		case <-x.ctx.Done():
			t.Stop()
			return
		case <-x.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// relist lists the services and groups, loads and follows the new ones and
// drops the ones gone (their followers usually saw it first).
func (x *summaryIndex) relist(ctx context.Context) error {
	var listed []configsvc.Ref
	for _, k := range []configsvc.Kind{configsvc.KindService, configsvc.KindGroup} {
		names, err := x.store.List(ctx, k)
		if err != nil {
			return err
		}
		for _, n := range names {
			listed = append(listed, configsvc.Ref{Kind: k, Name: n})
		}
	}
	present := make(map[configsvc.Ref]bool, len(listed))
	var fresh []configsvc.Ref
	x.mu.Lock()
	for _, ref := range listed {
		present[ref] = true
		if x.refs[ref] == nil {
			fresh = append(fresh, ref)
		}
	}
	for ref, e := range x.refs {
		if !present[ref] {
			x.dropLocked(e)
		}
	}
	x.mu.Unlock()

	entries := make([]*refEntry, len(fresh))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(summaryLoadParallel)
	for i, ref := range fresh {
		g.Go(func() error {
			e, err := x.load(gctx, ref)
			if err != nil && !isNotFound(err) {
				return err
			}
			entries[i] = e // nil: deleted since the list
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	for _, e := range entries {
		if e != nil {
			x.adopt(e)
		}
	}
	return nil
}

// load reads the head (and a service's instances) of ref into a new entry.
func (x *summaryIndex) load(ctx context.Context, ref configsvc.Ref) (*refEntry, error) {
	h, err := x.store.Head(ctx, ref)
	if err != nil {
		return nil, err
	}
	e := &refEntry{ref: ref}
	e.setHead(h)
	if ref.Kind == configsvc.KindService {
		list, err := x.store.Instances(ctx, ref.Name)
		if err != nil {
			return nil, err
		}
		e.insts = marks(list)
	}
	return e, nil
}

// adopt puts a loaded entry in the index and starts its followers, unless
// another entry for its ref got there first.
func (x *summaryIndex) adopt(e *refEntry) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.refs[e.ref] != nil {
		return
	}
	ctx, cancel := context.WithCancel(x.ctx)
	e.cancel = cancel
	x.refs[e.ref] = e
	from := e.revision
	if !x.bg.Go(func() { x.followHead(ctx, e, from) }) {
		cancel()
		return
	}
	if e.ref.Kind == configsvc.KindService {
		x.bg.Go(func() { x.followInstances(ctx, e) })
	}
}

// dropLocked removes e from the index and stops its followers. x.mu must
// be held.
func (x *summaryIndex) dropLocked(e *refEntry) {
	if x.refs[e.ref] == e {
		delete(x.refs, e.ref)
	}
	if e.cancel != nil {
		e.cancel()
	}
}

// drop is dropLocked taking the lock.
func (x *summaryIndex) drop(e *refEntry) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.dropLocked(e)
}

// update runs f on e under the lock when e is still the index's entry.
func (x *summaryIndex) update(e *refEntry, f func(*refEntry)) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.refs[e.ref] == e {
		f(e)
	}
}

// followHead follows e's head from revision from until ctx ends or the
// service or group is gone; after a compaction or a watch that ended, it
// reads the head again and carries on from there.
func (x *summaryIndex) followHead(ctx context.Context, e *refEntry, from int64) {
	backoff := summaryRetryMin
	for ctx.Err() == nil {
		gone, resync := false, false
		for ev := range x.store.Watch(ctx, e.ref, from) {
			switch {
			case ev.Err != nil && isNotFound(ev.Err):
				gone = true
			case ev.Err != nil && !errors.Is(ev.Err, configsvc.ErrUnavailable):
				resync = true // compacted, or closed: read the head again
			case ev.Revision != nil:
				rev := ev.Revision
				x.update(e, func(e *refEntry) { e.apply(rev) })
				from = max(from, rev.Number)
			case ev.LinksChanged:
				links := slices.Clone(ev.Links)
				x.update(e, func(e *refEntry) { e.links = links })
			}
		}
		if gone {
			x.drop(e)
			return
		}
		if ctx.Err() != nil {
			return
		}
		if !resync {
			backoff = summaryRetryMin
		}
		if lifecycle.Sleep(ctx, backoff) != nil {
			return
		}
		h, err := x.store.Head(ctx, e.ref)
		switch {
		case isNotFound(err):
			x.drop(e)
			return
		case err != nil:
			backoff = min(2*backoff, summaryRetryMax)
			continue
		}
		backoff = summaryRetryMin
		x.update(e, func(e *refEntry) { e.setHead(h) })
		from = h.Revision
	}
}

// followInstances keeps e's instance marks current until ctx ends or the
// service is gone.
func (x *summaryIndex) followInstances(ctx context.Context, e *refEntry) {
	for ctx.Err() == nil {
		for ev := range x.store.WatchInstances(ctx, e.ref.Name) {
			switch {
			case ev.Err == nil:
				m := marks(ev.Instances)
				x.update(e, func(e *refEntry) { e.insts = m })
			case isNotFound(ev.Err):
				return // followHead drops the entry
			}
		}
		if lifecycle.Sleep(ctx, summaryRetryMin) != nil {
			return
		}
	}
}

func marks(list []configsvc.Instance) []instanceMark {
	out := make([]instanceMark, len(list))
	for i, in := range list {
		out[i] = instanceMark{status: in.Status, revision: in.Revision}
	}
	return out
}

// setHead replaces e's head.
func (e *refEntry) setHead(h configsvc.Head) {
	e.revision, e.updated, e.author = h.Revision, h.Updated, h.Author
	e.files = make(map[string]bool, len(h.Files))
	for name := range h.Files {
		e.files[name] = true
	}
	if e.ref.Kind == configsvc.KindService {
		e.links = slices.Clone(h.Links)
	}
}

// apply moves e to rev when rev is the next revision; an older one (seen
// already) or a later one (a gap: the watch delivers the ones between) is
// left alone.
func (e *refEntry) apply(rev *configsvc.Revision) {
	if rev.Number != e.revision+1 {
		return
	}
	for _, c := range rev.Changes {
		if c.Delete {
			delete(e.files, c.File)
		} else {
			e.files[c.File] = true
		}
	}
	e.revision, e.updated, e.author = rev.Number, rev.Time, rev.Author
}

// published applies a revision this server published to ref at once.
func (x *summaryIndex) published(ref configsvc.Ref, rev configsvc.Revision) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if e := x.refs[ref]; e != nil {
		e.apply(&rev)
	}
}

// linked sets the links of service svc as this server just wrote them.
func (x *summaryIndex) linked(svc string, links []string) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if e := x.refs[configsvc.Service(svc)]; e != nil {
		e.links = slices.Clone(links)
	}
}

// deleted drops ref, which this server just deleted.
func (x *summaryIndex) deleted(ref configsvc.Ref) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if e := x.refs[ref]; e != nil {
		x.dropLocked(e)
	}
}
