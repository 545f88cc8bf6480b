package fanout

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/sluicehq/sluice/configsvc"
)

// hub is the shared watch of one ref: the upstream watch from the head
// read when it started and a ring of the events it delivered.
type hub struct {
	ref    configsvc.Ref
	cancel context.CancelFunc
	refs   refs // guarded by Store.mu

	mu   sync.Mutex
	wake chan struct{} // closed and replaced on every change
	// ring holds the events with sequence numbers [next-n, next), the
	// event of sequence q at ring[q%len(ring)].
	ring []configsvc.Event
	next uint64
	n    int

	started  bool               // the head was read: lastRev and lastID are known
	live     bool               // the upstream sent its grays baseline
	lastRev  int64              // the newest revision the upstream delivered (or the head it started from)
	lastID   configsvc.Identity // its identity
	grays    []configsvc.GraySummary
	links    []string
	linksSeq uint64 // sequence number + 1 of the newest links event; 0: none

	dead     bool  // the upstream ended: nothing more comes
	err      error // the error that ended it (nil: stopped or the store closed)
	fallback bool  // it could not start for a transient reason: subscribers watch the store themselves
}

// changed wakes the subscribers; the caller holds h.mu.
func (h *hub) changed() {
	close(h.wake)
	h.wake = make(chan struct{})
}

// oldest is the sequence number of the oldest event in the ring.
func (h *hub) oldest() uint64 { return h.next - uint64(h.n) }

// at returns the event of sequence number q, which is in the ring.
func (h *hub) at(q uint64) configsvc.Event { return h.ring[q%uint64(len(h.ring))] }

// revision returns revision n from the ring.
func (h *hub) revision(n int64) (*configsvc.Revision, bool) {
	if n > h.lastRev {
		return nil, false
	}
	// Newest first: subscribers that catch up are mostly near the head.
	for q := h.next; q > h.oldest(); q-- {
		ev := h.at(q - 1)
		if ev.Revision == nil {
			continue
		}
		switch {
		case ev.Revision.Number == n:
			return ev.Revision, true
		case ev.Revision.Number < n:
			return nil, false
		}
	}
	return nil, false
}

// add appends ev from the upstream; the caller holds h.mu.
func (h *hub) add(ev configsvc.Event) {
	switch {
	case ev.Revision != nil:
		h.lastRev, h.lastID = ev.Revision.Number, ev.Revision.Identity()
	case ev.GraysChanged:
		h.grays, h.live = ev.Grays, true
	case ev.LinksChanged:
		h.links, h.linksSeq = ev.Links, h.next+1
	}
	h.ring[h.next%uint64(len(h.ring))] = ev
	h.next++
	h.n = min(h.n+1, len(h.ring))
	h.changed()
}

// ends reports whether err ends a watch (Store.Watch): everything but a
// transient ErrUnavailable.
func ends(err error) bool {
	return err != nil && !errors.Is(err, configsvc.ErrUnavailable)
}

// Watch delivers the events of configsvc.Store.Watch from the shared
// watch of ref (see the package comment). Revisions older than the ring are
// read with Store.Revision. When the shared watch cannot start because the
// store is unavailable, this call watches the wrapped store itself.
func (s *Store) Watch(ctx context.Context, ref configsvc.Ref, from int64, opts ...configsvc.WatchOption) <-chan configsvc.Event {
	from = max(from, 0)
	o := configsvc.WatchOptionsOf(opts)
	h, fresh := s.join(ref)
	if h == nil { // closed
		return s.Store.Watch(ctx, ref, from, opts...)
	}
	if fresh {
		s.start(h)
	}
	sub := &watcher{s: s, h: h, ref: ref, next: from + 1, prev: configsvc.Identity{Generation: o.Expect.Generation}, sync: !fresh}
	if from > 0 {
		sub.prev.PublishID = o.Expect.PublishID
	}
	h.mu.Lock()
	sub.joinSeq = h.next
	h.mu.Unlock()
	out := make(chan configsvc.Event)
	if !s.bg.Go(func() {
		defer s.leave(h)
		defer close(out)
		sub.run(ctx, out)
	}) {
		s.leave(h)
		close(out)
	}
	return out
}

// join returns the hub of ref with one more subscriber, and whether it is
// new (the caller starts it); nil once the store is closed.
func (s *Store) join(ref configsvc.Ref) (*hub, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bg.Stopped() {
		return nil, false
	}
	if h := s.hubs[ref]; h != nil {
		h.refs.subs++
		return h, false
	}
	h := &hub{ref: ref, wake: make(chan struct{}), ring: make([]configsvc.Event, s.ring)}
	h.refs.subs = 1
	s.hubs[ref] = h
	return h, true
}

// leave drops a subscriber of h.
func (s *Store) leave(h *hub) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.release(&h.refs, func() { s.retire(h) })
}

// retire stops h and forgets it, so that the next subscriber of its ref
// starts a new hub. The caller holds s.mu.
func (s *Store) retire(h *hub) {
	if s.hubs[h.ref] == h {
		delete(s.hubs, h.ref)
	}
	if h.cancel != nil {
		h.cancel()
	}
}

// start reads the head of h's ref and opens the upstream watch from it,
// before the Watch that created h returns, so that a change made after
// that Watch returns reaches its subscribers as a change.
func (s *Store) start(h *hub) {
	ctx, cancel := context.WithCancel(context.Background())
	s.mu.Lock()
	h.cancel = cancel
	stopped := s.bg.Stopped() // Close ran meanwhile
	s.mu.Unlock()
	if stopped {
		cancel()
	}
	head, err := s.Store.Head(ctx, h.ref)
	if err != nil {
		stopped := ctx.Err() != nil
		cancel()
		s.mu.Lock()
		if s.hubs[h.ref] == h {
			delete(s.hubs, h.ref)
		}
		s.mu.Unlock()
		h.mu.Lock()
		h.dead = true
		switch {
		case stopped: // Close: nothing more comes
		case errors.Is(err, configsvc.ErrUnavailable):
			h.fallback = true
		default:
			h.err = err
		}
		h.changed()
		h.mu.Unlock()
		return
	}
	up := s.Store.Watch(ctx, h.ref, head.Revision, configsvc.Expect(head.Identity()))
	h.mu.Lock()
	h.started, h.lastRev, h.lastID = true, head.Revision, head.Identity()
	h.changed()
	h.mu.Unlock()
	pump := func() {
		var last error
		for ev := range up {
			if ends(ev.Err) {
				last = ev.Err
			}
			h.mu.Lock()
			h.add(ev)
			h.mu.Unlock()
		}
		s.mu.Lock()
		if s.hubs[h.ref] == h {
			delete(s.hubs, h.ref)
		}
		s.mu.Unlock()
		cancel()
		h.mu.Lock()
		h.dead, h.err = true, last
		h.changed()
		h.mu.Unlock()
	}
	if !s.bg.Go(pump) {
		cancel()
		for range up {
		}
		h.mu.Lock()
		h.dead = true
		h.changed()
		h.mu.Unlock()
	}
}

// watcher is one subscriber of a hub.
type watcher struct {
	s   *Store
	h   *hub
	ref configsvc.Ref
	// next is the next revision to deliver; prev the identity of the one
	// before it as the subscriber holds it.
	next int64
	prev configsvc.Identity
	// sync: the hub was running when the subscriber joined, so it waits
	// (up to syncWait) for the hub to show the grays of the head it reads.
	sync    bool
	joinSeq uint64
}

func (w *watcher) run(ctx context.Context, out chan<- configsvc.Event) {
	var want *configsvc.Head
	if w.sync {
		head, err := w.s.Store.Head(ctx, w.ref)
		switch {
		case err == nil:
			want = &head
		case ends(err):
			if ctx.Err() == nil {
				send(ctx, w.s, out, configsvc.Event{Err: err})
			}
			return
		}
	}
	syncBy := time.Now().Add(syncWait)
	deadline := time.NewTimer(syncWait)
	defer deadline.Stop()
	synced := want == nil
	h := w.h
	for {
		h.mu.Lock()
		if h.fallback {
			h.mu.Unlock()
			w.direct(ctx, out)
			return
		}
		if h.started && !w.prev.SameGeneration(h.lastID) {
			h.mu.Unlock()
			w.rewritten(ctx, out, fmt.Errorf("fanout: %s: the store's generation is %s, not %s (restored or imported, then bumped): %w", w.ref, h.lastID.Generation, w.prev.Generation, configsvc.ErrRewritten))
			return
		}
		if h.started && w.next <= h.lastRev {
			rev, ok := h.revision(w.next)
			h.mu.Unlock()
			if !ok {
				var err error
				if rev, err = w.read(ctx, out); err != nil {
					return
				}
				if rev == nil {
					continue // retried
				}
			}
			if !w.deliver(ctx, out, rev) {
				return
			}
			continue
		}
		if h.dead {
			err := h.err
			h.mu.Unlock()
			if err != nil {
				send(ctx, w.s, out, configsvc.Event{Err: err})
			}
			return
		}
		if !synced && h.live && (h.lastRev > want.Revision || graysEqual(h.grays, want.Grays)) {
			synced = true
		}
		if h.live && w.next == h.lastRev+1 && synced {
			if w.next > 1 && w.prev.PublishID != "" && h.lastID.PublishID != "" && w.prev.PublishID != h.lastID.PublishID {
				h.mu.Unlock()
				w.rewritten(ctx, out, fmt.Errorf("fanout: %s: revision %d now has publish id %s, not %s (its number was issued again): %w", w.ref, h.lastRev, h.lastID.PublishID, w.prev.PublishID, configsvc.ErrRewritten))
				return
			}
			var links *configsvc.Event
			if h.linksSeq > w.joinSeq {
				links = &configsvc.Event{LinksChanged: true, Links: h.links}
			}
			baseline := configsvc.Event{GraysChanged: true, Grays: h.grays}
			cursor := h.next
			h.mu.Unlock()
			if links != nil && !send(ctx, w.s, out, *links) {
				return
			}
			if !send(ctx, w.s, out, baseline) {
				return
			}
			w.follow(ctx, out, cursor)
			return
		}
		wake := h.wake
		h.mu.Unlock()
		var timer <-chan time.Time
		if !synced {
			timer = deadline.C
		}
		if !w.s.await(ctx, wake, timer) {
			return
		}
		if !synced && !time.Now().Before(syncBy) {
			synced = true
		}
	}
}

// deliver sends revision rev after checking that it follows the one before.
func (w *watcher) deliver(ctx context.Context, out chan<- configsvc.Event, rev *configsvc.Revision) bool {
	if !rev.Follows(w.prev) {
		w.rewritten(ctx, out, fmt.Errorf("fanout: %s: revision %d has parent %s, not %s (the revision before it): %w", w.ref, rev.Number, rev.Parent, w.prev.PublishID, configsvc.ErrRewritten))
		return false
	}
	if !send(ctx, w.s, out, configsvc.Event{Revision: rev}) {
		return false
	}
	w.next, w.prev = rev.Number+1, rev.Identity()
	return true
}

// read reads revision w.next, older than the ring, from the store. It
// returns nil, nil after a transient failure (reported; the caller tries
// again) and an error when the subscriber must return (reported).
func (w *watcher) read(ctx context.Context, out chan<- configsvc.Event) (*configsvc.Revision, error) {
	rev, err := w.s.Store.Revision(ctx, w.ref, w.next)
	if err == nil {
		return &rev, nil
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if !send(ctx, w.s, out, configsvc.Event{Err: err}) {
		return nil, err
	}
	if ends(err) {
		return nil, err
	}
	if err := w.s.bg.Sleep(ctx, retryWait); err != nil {
		return nil, err
	}
	return nil, nil
}

func (w *watcher) rewritten(ctx context.Context, out chan<- configsvc.Event, err error) {
	send(ctx, w.s, out, configsvc.Event{Err: err})
}

// follow sends the hub's events from sequence number cursor on, until the
// hub ends, the subscriber falls a whole ring behind (told to reload) or
// ctx ends.
func (w *watcher) follow(ctx context.Context, out chan<- configsvc.Event, cursor uint64) {
	h := w.h
	for {
		h.mu.Lock()
		if cursor < h.oldest() {
			behind := h.next - cursor
			h.mu.Unlock()
			send(ctx, w.s, out, configsvc.Event{Err: fmt.Errorf("fanout: the watch of %s fell %d events behind the newest, more than the %d kept: reload: %w", w.ref, behind, len(h.ring), configsvc.ErrCompacted)})
			return
		}
		if cursor < h.next {
			ev := h.at(cursor)
			cursor++
			h.mu.Unlock()
			if ev.Revision != nil && ev.Revision.Number < w.next {
				continue
			}
			if !send(ctx, w.s, out, ev) || ends(ev.Err) {
				return
			}
			if ev.Revision != nil {
				w.next, w.prev = ev.Revision.Number+1, ev.Revision.Identity()
			}
			continue
		}
		if h.dead {
			h.mu.Unlock()
			return
		}
		wake := h.wake
		h.mu.Unlock()
		if !w.s.await(ctx, wake, nil) {
			return
		}
	}
}

// direct forwards a watch of the wrapped store: the fallback when the hub
// could not start.
func (w *watcher) direct(ctx context.Context, out chan<- configsvc.Event) {
	from := w.next - 1
	prev := w.prev
	if from == 0 {
		prev.PublishID = ""
	}
	for ev := range w.s.Store.Watch(ctx, w.ref, from, configsvc.Expect(prev)) {
		if !send(ctx, w.s, out, ev) {
			break
		}
	}
}

// graysEqual reports whether a and b name the same grays at the same
// versions.
func graysEqual(a, b []configsvc.GraySummary) bool {
	return slices.EqualFunc(a, b, func(x, y configsvc.GraySummary) bool { return x.ID == y.ID && x.Version == y.Version })
}
