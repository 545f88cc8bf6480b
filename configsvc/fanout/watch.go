package fanout

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/lifecycle"
)

// hub is the shared watch of one ref: the upstream watch from the head
// read when it started and a ring of the events it delivered.
type hub struct {
	ref    configsvc.Ref
	cancel context.CancelFunc
	refs   refs // guarded by Store.mu

	mu sync.Mutex
	// wake tells the subscribers of every change: those waiting on its
	// channel and those that wait without a goroutine (Notify).
	wake lifecycle.Broadcast[*watcher]
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

	dead bool  // the upstream ended: nothing more comes
	err  error // the error that ended it (nil: stopped or the store closed)
	// trouble is the newest transient error of the head read before the
	// upstream started, troubleSeq counts them: subscribers waiting for
	// the start report each once, as a store's watch reports transient
	// trouble.
	trouble    error
	troubleSeq uint64
}

// changed wakes the subscribers; the caller holds h.mu and calls the
// function it returns once it has unlocked it (a notified subscriber
// polls at once, which locks h.mu).
func (h *hub) changed() (notify func()) { return h.wake.Fire() }

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

// add appends ev from the upstream; the caller holds h.mu and calls the
// function it returns once it has unlocked it.
func (h *hub) add(ev configsvc.Event) (notify func()) {
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
	return h.changed()
}

// ends reports whether err ends a watch (Store.Watch): everything but a
// transient ErrUnavailable.
func ends(err error) bool {
	return err != nil && !errors.Is(err, configsvc.ErrUnavailable)
}

// Watch delivers the events of configsvc.Store.Watch from the shared
// watch of ref (see the package comment), through a goroutine of its own;
// Subscribe does without. Revisions older than the ring are read with
// Store.Revision.
func (s *Store) Watch(ctx context.Context, ref configsvc.Ref, from int64, opts ...configsvc.WatchOption) <-chan configsvc.Event {
	w := s.subscribe(ctx, ref, from, opts)
	if w == nil { // closed
		return s.Store.Watch(ctx, ref, from, opts...)
	}
	out := make(chan configsvc.Event)
	if !s.bg.Go(func() {
		defer w.close()
		defer close(out)
		for {
			ev, ok, wake, retry, done := w.poll(ctx)
			switch {
			case ok:
				if !send(ctx, s, out, ev) {
					return
				}
			case done:
				return
			case !s.await(ctx, wake, after(retry)):
				return
			}
		}
	}) {
		w.close()
		close(out)
	}
	return out
}

// Subscription is one subscriber of a shared watch read without a
// goroutine of its own: what an event stream that already has one (its
// request's) uses. Next hands out the events Watch would send, in the
// same order. A Subscription is used by one goroutine at a time; Close
// must be called once it is no longer read.
type Subscription struct {
	w   *watcher
	ctx context.Context
}

// Subscribe opens a subscription to the shared watch of ref with
// Watch's from and options. head, when not nil, is the head of ref the
// caller read just before (an event stream checks it): it stands for the
// head Watch reads when it joins a running shared watch. ctx bounds the
// reads Poll makes (revisions older than the ring). It returns nil once
// the store is closed.
func (s *Store) Subscribe(ctx context.Context, ref configsvc.Ref, from int64, head *configsvc.Head, opts ...configsvc.WatchOption) *Subscription {
	w := s.subscribeWith(ctx, ref, from, head, opts)
	if w == nil {
		return nil
	}
	return &Subscription{w: w, ctx: ctx}
}

// Next returns the next event (ok) if there is one now. Otherwise it
// returns done once the subscription has ended (after its last event,
// e.g. one wrapping ErrCompacted), or what to wait for before calling it
// again: wake closes when the shared watch moved (Notify can tell of that
// instead, for a reader that waits without selecting on channels, such as
// an event stream blocked reading its connection); retryAt, when not zero,
// is when a failed read is to be tried again or a wait for the head has
// run out.
func (sub *Subscription) Next() (ev configsvc.Event, ok bool, wake <-chan struct{}, retryAt time.Time, done bool) {
	return sub.w.poll(sub.ctx)
}

// Notify calls f once wake, as the last Next returned it, has
// closed: at once, on the caller's goroutine, if it has already closed;
// otherwise on the goroutine that moves the shared watch, after it
// woke the subscribers that wait on channels. f must be quick and must not
// block or call into the subscription (it typically sets a flag and a
// read deadline). A later Notify replaces f; Close drops it. Notify and
// Next are called by one goroutine at a time.
func (sub *Subscription) Notify(wake <-chan struct{}, f func()) {
	if sub.w.closed {
		f()
		return
	}
	sub.w.h.wake.NotifyUnder(&sub.w.h.mu, sub.w, wake, f)
}

// Close ends the subscription. It is safe to call more than once.
func (sub *Subscription) Close() { sub.w.close() }

// after returns a channel that fires at t, or nil for the zero time.
func after(t time.Time) <-chan time.Time {
	if t.IsZero() {
		return nil
	}
	return time.After(time.Until(t))
}

// subscribe joins (or starts) the hub of ref for a new subscriber; nil
// once the store is closed. A subscriber joining a running hub reads the
// head first, here, so that its baseline is no older than the head at the
// call (the hub may not have seen a change made just before).
func (s *Store) subscribe(ctx context.Context, ref configsvc.Ref, from int64, opts []configsvc.WatchOption) *watcher {
	return s.subscribeWith(ctx, ref, from, nil, opts)
}

// subscribeWith is subscribe with the head the caller read (nil: none).
func (s *Store) subscribeWith(ctx context.Context, ref configsvc.Ref, from int64, known *configsvc.Head, opts []configsvc.WatchOption) *watcher {
	from = max(from, 0)
	o := configsvc.WatchOptionsOf(opts)
	h, fresh := s.join(ref)
	if h == nil {
		return nil
	}
	if fresh {
		s.start(h)
	}
	w := &watcher{s: s, h: h, ref: ref, next: from + 1, prev: configsvc.Identity{Generation: o.Expect.Generation}, synced: true}
	if from > 0 {
		w.prev.PublishID = o.Expect.PublishID
	}
	h.mu.Lock()
	w.joinSeq = h.next
	running := h.live
	h.mu.Unlock()
	if running && !fresh && known != nil {
		w.want, w.synced, w.syncBy = known, false, time.Now().Add(syncWait)
	} else if running && !fresh {
		head, err := s.Store.Head(ctx, ref)
		switch {
		case err == nil:
			w.want, w.synced, w.syncBy = &head, false, time.Now().Add(syncWait)
		case ends(err) && ctx.Err() == nil:
			w.queue = append(w.queue, configsvc.Event{Err: err})
			w.done = true
		}
	}
	return w
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
	h := &hub{ref: ref, ring: make([]configsvc.Event, s.ring)}
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

// forget removes h from the hubs, so that the next subscriber of its ref
// starts a new one.
func (s *Store) forget(h *hub) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.hubs[h.ref] == h {
		delete(s.hubs, h.ref)
	}
}

// end marks h ended by err (nil: stopped) and wakes its subscribers.
func (h *hub) end(err error) {
	h.mu.Lock()
	h.dead, h.err = true, err
	notify := h.changed()
	h.mu.Unlock()
	notify()
}

// start reads the head of h's ref and opens the upstream watch from it,
// before the Watch that created h returns, so that a change made after
// that Watch returns reaches its subscribers as a change. While the store
// is unavailable it tries again in the background, and subscribers are
// told of the trouble.
func (s *Store) start(h *hub) {
	ctx, cancel := context.WithCancel(context.Background())
	s.mu.Lock()
	h.cancel = cancel
	stopped := s.bg.Stopped() // Close ran meanwhile
	s.mu.Unlock()
	if stopped {
		cancel()
	}
	if s.open(ctx, h) {
		return
	}
	if !s.bg.Go(func() {
		for wait := retryWait; ; wait = min(2*wait, 10*time.Second) {
			if s.bg.Sleep(ctx, wait) != nil {
				s.forget(h)
				h.end(nil)
				return
			}
			if s.open(ctx, h) {
				return
			}
		}
	}) {
		s.forget(h)
		h.end(nil)
	}
}

// open makes one attempt at starting h's upstream watch. It reports false
// after a transient failure (to be tried again); true when h is running or
// has ended.
func (s *Store) open(ctx context.Context, h *hub) bool {
	head, err := s.Store.Head(ctx, h.ref)
	if err != nil {
		switch {
		case ctx.Err() != nil: // stopped: nothing more comes
			s.forget(h)
			h.end(nil)
		case errors.Is(err, configsvc.ErrUnavailable):
			h.mu.Lock()
			h.trouble = err
			h.troubleSeq++
			notify := h.changed()
			h.mu.Unlock()
			notify()
			return false
		default:
			s.forget(h)
			h.end(err)
		}
		return true
	}
	up := s.Store.Watch(ctx, h.ref, head.Revision, configsvc.Expect(head.Identity()))
	h.mu.Lock()
	h.started, h.lastRev, h.lastID = true, head.Revision, head.Identity()
	notify := h.changed()
	h.mu.Unlock()
	notify()
	pump := func() {
		var last error
		for ev := range up {
			if ends(ev.Err) {
				last = ev.Err
			}
			h.mu.Lock()
			notify := h.add(ev)
			h.mu.Unlock()
			notify()
		}
		s.forget(h)
		h.cancel()
		h.end(last)
	}
	if !s.bg.Go(pump) {
		h.cancel()
		for range up {
		}
		s.forget(h)
		h.end(nil)
	}
	return true
}

// watcher is one subscriber of a hub: a state machine that poll steps.
type watcher struct {
	s   *Store
	h   *hub
	ref configsvc.Ref
	// next is the next revision to deliver; prev the identity of the one
	// before it as the subscriber holds it.
	next    int64
	prev    configsvc.Identity
	joinSeq uint64 // the hub's next sequence number when it joined
	// want is the head read when it joined a running hub: the baseline
	// waits (until syncBy) for the hub to show its grays; nil once synced.
	want    *configsvc.Head
	synced  bool
	syncBy  time.Time
	retryAt time.Time // after a transient read failure
	seen    uint64    // the hub's troubleSeq already reported

	queue     []configsvc.Event // decided, not handed out yet
	following bool              // caught up: reading the ring from cursor
	cursor    uint64
	done      bool
	closed    bool
}

// close leaves the hub; safe to call more than once.
func (w *watcher) close() {
	if w.closed {
		return
	}
	w.h.mu.Lock()
	w.closed = true
	w.h.wake.Drop(w)
	w.h.mu.Unlock()
	w.s.leave(w.h)
}

// pop hands out the first event of the queue, which is not empty; an
// emptied queue keeps no array (a subscription lives long).
func (w *watcher) pop() configsvc.Event {
	ev := w.queue[0]
	if w.queue = w.queue[1:]; len(w.queue) == 0 {
		w.queue = nil
	}
	return ev
}

// poll is Subscription.Next.
func (w *watcher) poll(ctx context.Context) (ev configsvc.Event, ok bool, wake <-chan struct{}, retry time.Time, done bool) {
	for {
		if len(w.queue) > 0 {
			return w.pop(), true, nil, time.Time{}, false
		}
		if w.done || ctx.Err() != nil {
			return ev, false, nil, time.Time{}, true
		}
		if w.following {
			ev, ok, wake, done = w.follow()
			return ev, ok, wake, time.Time{}, done
		}
		if !w.retryAt.IsZero() {
			if time.Until(w.retryAt) > 0 {
				return ev, false, nil, w.retryAt, false
			}
			w.retryAt = time.Time{}
		}
		return w.catchUp(ctx)
	}
}

// catchUp takes one step towards the baseline: a revision from the ring
// or the store, or the baseline itself once the subscriber has every
// revision up to the hub's newest.
func (w *watcher) catchUp(ctx context.Context) (ev configsvc.Event, ok bool, wake <-chan struct{}, retry time.Time, done bool) {
	h := w.h
	h.mu.Lock()
	if !h.started && h.troubleSeq > w.seen {
		w.seen = h.troubleSeq
		err := h.trouble
		h.mu.Unlock()
		return configsvc.Event{Err: err}, true, nil, time.Time{}, false
	}
	if h.started && !w.prev.SameGeneration(h.lastID) {
		h.mu.Unlock()
		return w.fail(fmt.Errorf("fanout: %s: the store's generation is %s, not %s (restored or imported, then bumped): %w", w.ref, h.lastID.Generation, w.prev.Generation, configsvc.ErrRewritten))
	}
	if h.started && w.next <= h.lastRev {
		rev, inRing := h.revision(w.next)
		h.mu.Unlock()
		if !inRing {
			r, err := w.s.Store.Revision(ctx, w.ref, w.next)
			switch {
			case ctx.Err() != nil:
				return ev, false, nil, time.Time{}, true
			case ends(err):
				return w.fail(err)
			case err != nil:
				w.retryAt = time.Now().Add(retryWait)
				return configsvc.Event{Err: err}, true, nil, time.Time{}, false
			}
			rev = &r
		}
		if !rev.Follows(w.prev) {
			return w.fail(fmt.Errorf("fanout: %s: revision %d has parent %s, not %s (the revision before it): %w", w.ref, rev.Number, rev.Parent, w.prev.PublishID, configsvc.ErrRewritten))
		}
		w.next, w.prev = rev.Number+1, rev.Identity()
		return configsvc.Event{Revision: rev}, true, nil, time.Time{}, false
	}
	if h.dead {
		err := h.err
		h.mu.Unlock()
		if err != nil {
			return w.fail(err)
		}
		w.done = true
		return ev, false, nil, time.Time{}, true
	}
	if !w.synced && h.live && (h.lastRev > w.want.Revision || graysEqual(h.grays, w.want.Grays) || !time.Now().Before(w.syncBy)) {
		w.synced, w.want = true, nil // a subscription lives long: keep no head it no longer needs
	}
	if h.live && w.next == h.lastRev+1 && w.synced {
		if w.next > 1 && w.prev.PublishID != "" && h.lastID.PublishID != "" && w.prev.PublishID != h.lastID.PublishID {
			h.mu.Unlock()
			return w.fail(fmt.Errorf("fanout: %s: revision %d now has publish id %s, not %s (its number was issued again): %w", w.ref, h.lastRev, h.lastID.PublishID, w.prev.PublishID, configsvc.ErrRewritten))
		}
		if h.linksSeq > w.joinSeq {
			w.queue = append(w.queue, configsvc.Event{LinksChanged: true, Links: h.links})
		}
		w.queue = append(w.queue, configsvc.Event{GraysChanged: true, Grays: h.grays})
		w.following, w.cursor = true, h.next
		h.mu.Unlock()
		return w.pop(), true, nil, time.Time{}, false
	}
	wake = h.wake.Wait()
	h.mu.Unlock()
	if !w.synced {
		retry = w.syncBy
	}
	return ev, false, wake, retry, false
}

// fail hands out err as the subscriber's last event.
func (w *watcher) fail(err error) (ev configsvc.Event, ok bool, wake <-chan struct{}, retry time.Time, done bool) {
	w.done = true
	return configsvc.Event{Err: err}, true, nil, time.Time{}, false
}

// follow hands out the hub's event at the cursor; a subscriber that fell a
// whole ring behind is told to reload.
func (w *watcher) follow() (ev configsvc.Event, ok bool, wake <-chan struct{}, done bool) {
	h := w.h
	h.mu.Lock()
	defer h.mu.Unlock()
	// Revisions it already has (none, as it follows from the hub's newest).
	for w.cursor >= h.oldest() && w.cursor < h.next {
		if r := h.at(w.cursor).Revision; r == nil || r.Number >= w.next {
			break
		}
		w.cursor++
	}
	switch {
	case w.cursor < h.oldest():
		w.done = true
		return configsvc.Event{Err: fmt.Errorf("fanout: the watch of %s fell %d events behind the newest, more than the %d kept: reload: %w", w.ref, h.next-w.cursor, len(h.ring), configsvc.ErrCompacted)}, true, nil, false
	case w.cursor < h.next:
		ev = h.at(w.cursor)
		w.cursor++
		if ends(ev.Err) {
			w.done = true
		}
		if ev.Revision != nil {
			w.next, w.prev = ev.Revision.Number+1, ev.Revision.Identity()
		}
		return ev, true, nil, false
	case h.dead:
		w.done = true
		return ev, false, nil, true
	}
	return ev, false, h.wake.Wait(), false
}

// graysEqual reports whether a and b name the same grays at the same
// versions.
func graysEqual(a, b []configsvc.GraySummary) bool {
	return slices.EqualFunc(a, b, func(x, y configsvc.GraySummary) bool { return x.ID == y.ID && x.Version == y.Version })
}
