package zkstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/go-zookeeper/zk"

	"github.com/sluicehq/sluice/configsvc"
)

// Watch delivers every revision of ref after from, in order and without
// gaps, then every new one as it is published, until ctx ends or the store
// closes; then the channel is closed.
//
// Each watcher holds one data watch on ref's head node, re-armed after every
// event: on each head change it reads the revision nodes from its last
// delivered revision + 1 up to the head, so revisions published while the
// connection was down or the session was being replaced are delivered too.
// Connection loss is reported once per outage as an Event whose Err wraps
// ErrUnavailable; the watch carries on. If revisions after from were
// pruned, one Event wrapping ErrCompacted is sent and the channel closed;
// if ref does not exist or is deleted, one wrapping ErrNotFound. A link
// change of a service is sent as an Event with LinksChanged. The active
// grays come as Events with GraysChanged: the set of the first head the
// watcher reads (after the revisions up to it), then every change of it.
// A slow receiver delays the watch; it never loses events.
//
// Revisions carry their identity (configsvc.Identity), and the watcher
// checks that the history it delivers is one: every revision's Parent is
// the publish id of the revision delivered before it (or, for the first,
// of revision from as configsvc.Expect gives it), the head keeps the
// generation the watch started with, and a head at the last delivered
// revision carries its publish id. Otherwise the history was rewritten: one
// Event wrapping ErrRewritten is sent and the channel closed. A head below
// the last delivered revision in the same generation is a server that has
// not caught up yet (a new session may land on a lagging one): the watch
// waits for it.
func (s *Store) Watch(ctx context.Context, ref configsvc.Ref, from int64, opts ...configsvc.WatchOption) <-chan configsvc.Event {
	if err := ref.Validate(); err != nil {
		return failedWatch(configsvc.Event{Err: fmt.Errorf("zkstore: watch: %w", err)})
	}
	o := configsvc.WatchOptionsOf(opts)
	out := make(chan configsvc.Event)
	w := &watcher{s: s, ctx: ctx, ref: ref, next: max(from, 0) + 1, out: out, gen: o.Expect.Generation}
	if from > 0 {
		w.lastPID = o.Expect.PublishID
	}
	if s.connected() {
		// The link set when Watch is called is the baseline, so a link
		// change made right after Watch returns is reported even if it
		// lands before the watch goroutine first reads the head. Without
		// a connection the goroutine takes its first read as the baseline.
		// The grays need none: the goroutine sends the set of its first
		// head read as an event (graysStep).
		rctx, cancel := s.opCtx(ctx)
		if h, st, err := s.readHead(rctx, ref); err == nil {
			w.czxid = st.Czxid
			if ref.Kind == configsvc.KindService {
				w.links, w.seen = h.Links, true
			}
		}
		cancel()
	}
	if !s.bg.Go(w.run) {
		return failedWatch(configsvc.Event{Err: fmt.Errorf("zkstore: watch %s: %w", ref, configsvc.ErrClosed)})
	}
	return out
}

// failedWatch returns a closed channel holding only ev.
func failedWatch[E any](ev E) <-chan E {
	ch := make(chan E, 1)
	ch <- ev
	close(ch)
	return ch
}

type watcher struct {
	s     *Store
	ctx   context.Context
	ref   configsvc.Ref
	next  int64 // the next revision to deliver
	links []string
	seen  bool  // links holds the set at the watch's start
	czxid int64 // creation zxid of the head node first seen: its incarnation
	down  bool  // an ErrUnavailable event was sent and nothing delivered since
	out   chan configsvc.Event
	// gen is the generation the watch follows (from Expect or the first
	// head read; "" while unknown), lastPID the publish id of revision
	// next-1 ("" when unknown).
	gen     string
	lastPID string

	// grays are the active grays last reported (gray.go); graysSent: the
	// baseline event was sent.
	grays     []configsvc.GraySummary
	graysSent bool
}

func (w *watcher) send(ev configsvc.Event) bool {
	select {
	case w.out <- ev:
		return true
	case <-w.ctx.Done():
		return false
	case <-w.s.bg.Done():
		return false
	}
}

func (w *watcher) unavailable(err error) bool {
	if w.down {
		return true
	}
	w.down = true
	return w.send(configsvc.Event{Err: mapErr("zkstore: watch "+w.ref.String(), err)})
}

func (w *watcher) run() {
	defer close(w.out)
	backoff := 50 * time.Millisecond
	for {
		if w.ctx.Err() != nil {
			return
		}
		select {
		case <-w.s.bg.Done():
			return
		default:
		}
		state := w.s.stateChanged()
		if !w.s.connected() {
			if !w.unavailable(fmt.Errorf("connection to ZooKeeper lost (state %v)", w.s.conn().State())) {
				return
			}
			select {
			case <-state:
			case <-w.ctx.Done():
				return
			case <-w.s.bg.Done():
				return
			}
			continue
		}
		ch, err := w.step()
		switch {
		case err == nil:
			backoff = 50 * time.Millisecond
		case errors.Is(err, configsvc.ErrNotFound), errors.Is(err, configsvc.ErrCompacted), errors.Is(err, configsvc.ErrRewritten):
			if errors.Is(err, configsvc.ErrRewritten) {
				// Manifest nodes remembered from the other history may
				// carry the same names as this one's (see metaCache).
				w.s.metas.reset()
			}
			w.send(configsvc.Event{Err: mapErr("zkstore: watch "+w.ref.String(), err)})
			return
		case errors.Is(err, errStopped):
			return
		default:
			if !w.unavailable(err) {
				return
			}
			_ = w.s.bg.Sleep(w.ctx, backoff)
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		select {
		case ev := <-ch:
			if ev.Type == zk.EventNotWatching {
				// The session expired or the client closed: the loop re-arms
				// on the new session and catches up.
				if !w.unavailable(fmt.Errorf("watch dropped by ZooKeeper: %w", ev.Err)) {
					return
				}
			}
		case <-state:
			// Report an outage while waiting; the head watch itself
			// survives reconnection within the session.
			if !w.s.connected() {
				if !w.unavailable(fmt.Errorf("connection to ZooKeeper lost (state %v)", w.s.conn().State())) {
					return
				}
				select {
				case ev := <-ch:
					_ = ev
				case <-w.ctx.Done():
					return
				case <-w.s.bg.Done():
					return
				case <-w.waitConnected():
				}
			}
		case <-w.ctx.Done():
			return
		case <-w.s.bg.Done():
			return
		}
	}
}

// waitConnected returns a channel closed once the client has a session again.
func (w *watcher) waitConnected() <-chan struct{} {
	done := make(chan struct{})
	if !w.s.bg.Go(func() {
		defer close(done)
		_ = w.s.waitSession(w.ctx)
	}) {
		close(done)
	}
	return done
}

var errStopped = errors.New("watch stopped")

// checkHead reports a rewritten history in head h: a generation other than
// the one followed, or, at the last delivered revision, another publish
// id. It takes h's generation as the one followed when none was known.
func (w *watcher) checkHead(h *headDoc) error {
	if w.gen != "" && h.Generation != "" && h.Generation != w.gen {
		return fmt.Errorf("%s: the store's generation is %s, not %s (restored or imported, then bumped): %w",
			w.ref, h.Generation, w.gen, configsvc.ErrRewritten)
	}
	if h.Generation != "" {
		w.gen = h.Generation
	}
	if h.Revision == w.next-1 && w.lastPID != "" && h.PublishID != "" && h.PublishID != w.lastPID {
		return fmt.Errorf("%s: revision %d now has publish id %s, not %s (its number was issued again): %w",
			w.ref, h.Revision, h.PublishID, w.lastPID, configsvc.ErrRewritten)
	}
	return nil
}

// fits reports whether r may be delivered next: it follows the last
// delivered revision and, as the head revision, carries the head's
// publish id (unknown ids are not compared).
func (w *watcher) fits(r *configsvc.Revision, h *headDoc) bool {
	if w.lastPID != "" && r.Parent != "" && r.Parent != w.lastPID {
		return false
	}
	return r.Number != h.Revision || h.PublishID == "" || r.PublishID == "" || r.PublishID == h.PublishID
}

// step arms the head watch, then delivers every revision up to the head.
func (w *watcher) step() (<-chan zk.Event, error) {
	ctx, cancel := w.s.opCtx(w.ctx)
	defer cancel()
	type armed struct {
		data  []byte
		czxid int64 // identifies this incarnation of the head node
		ch    <-chan zk.Event
	}
	a, err := call(ctx, w.s, func(c *zk.Conn) (armed, error) {
		d, st, ch, err := c.GetW(w.s.headPath(w.ref))
		if err != nil {
			return armed{}, err
		}
		return armed{d, st.Czxid, ch}, nil
	})
	if errors.Is(err, zk.ErrNoNode) {
		return nil, fmt.Errorf("%s does not exist: %w", w.ref, configsvc.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	h, err := decodeHead(a.data)
	if err != nil {
		return nil, err
	}
	if w.czxid == 0 {
		w.czxid = a.czxid
	} else if w.czxid != a.czxid {
		// Deleted and created again between two wake-ups: a new history.
		return nil, fmt.Errorf("%s was deleted (and created again): %w", w.ref, configsvc.ErrNotFound)
	}
	if err := w.checkHead(h); err != nil {
		return nil, err
	}
	if w.ref.Kind == configsvc.KindService {
		if w.seen && !slices.Equal(w.links, h.Links) {
			if !w.send(configsvc.Event{LinksChanged: true, Links: append([]string{}, h.Links...)}) {
				return nil, errStopped
			}
		}
		w.links, w.seen = h.Links, true
	}
	if w.next <= h.Revision && w.next < max(h.First, 1) {
		return nil, fmt.Errorf("revision %d was pruned (oldest kept is %d): %w", w.next, h.First, configsvc.ErrCompacted)
	}
	for w.next <= h.Revision {
		// Each revision read gets its own timeout: a long catch-up is
		// bounded per step, not in total. The read is shared with the
		// store's other watchers of this ref.
		n := w.next
		var written []string
		if n == h.Revision {
			for name, m := range h.legacy { // layout 1 only: layout 2 heads inline small revisions instead
				if m.Revision == n {
					written = append(written, name)
				}
			}
		}
		load := func() (configsvc.Revision, error) {
			rctx, rcancel := w.s.opCtx(w.s.life)
			defer rcancel()
			return w.s.fullRevision(rctx, w.ref, h.Since, n, written)
		}
		if h.Latest != nil && h.Latest.Revision == n {
			// The head carries this revision: no further read.
			load = func() (configsvc.Revision, error) { return h.Latest.revision(), nil }
		}
		// A remembered revision is used only where the delivered history
		// can vouch for it: after a revision whose publish id it names as
		// its parent, or as the head, whose publish id it must carry. One
		// remembered from a history since rewritten (a restore reissues
		// numbers) then fails the check and is read again.
		key := revKey{czxid: a.czxid, gen: h.Generation, n: n}
		r, cached, err := w.s.revs.get(key, w.lastPID == "" && n != h.Revision, load)
		if err == nil && cached && !w.fits(&r, h) {
			w.s.revs.drop(key)
			r, err = load()
		}
		if err != nil {
			return nil, err
		}
		if !w.fits(&r, h) {
			return nil, fmt.Errorf("%s: revision %d has parent %q and publish id %q, which do not follow revision %d (publish id %q) up to the head (publish id %q): the history was rewritten: %w",
				w.ref, n, r.Parent, r.PublishID, n-1, w.lastPID, h.PublishID, configsvc.ErrRewritten)
		}
		r.Generation = h.Generation
		w.down = false
		if !w.send(configsvc.Event{Revision: &r}) {
			return nil, errStopped
		}
		w.next++
		w.lastPID = r.PublishID
	}
	// Above the head (a watch from a revision this server has not reached)
	// the watcher waits: no grays of a head behind it.
	if w.next == h.Revision+1 {
		if err := w.graysStep(h); err != nil {
			return nil, err
		}
	}
	w.down = false
	return a.ch, nil
}
