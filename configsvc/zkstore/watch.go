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
// change of a service is sent as an Event with LinksChanged. A slow
// receiver delays the watch; it never loses events.
func (s *Store) Watch(ctx context.Context, ref configsvc.Ref, from int64) <-chan configsvc.Event {
	if err := ref.Validate(); err != nil {
		return failedWatch(configsvc.Event{Err: fmt.Errorf("zkstore: watch: %w", err)})
	}
	out := make(chan configsvc.Event)
	w := &watcher{s: s, ctx: ctx, ref: ref, next: max(from, 0) + 1, out: out}
	if s.connected() {
		// The link set and the active grays when Watch is called are the
		// baseline, so a link or gray change made right after Watch returns
		// is reported even if it lands before the watch goroutine first
		// reads the head. Without a connection the goroutine takes its
		// first read as the baseline.
		rctx, cancel := s.opCtx(ctx)
		if h, st, err := s.readHead(rctx, ref); err == nil {
			w.czxid = st.Czxid
			w.grays, w.graysSeen = h.Grays, true
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

	// grays are the active grays last reported (gray.go); graysSeen: a
	// baseline was read.
	grays     []configsvc.GraySummary
	graysSeen bool
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
			if !w.unavailable(fmt.Errorf("connection to ZooKeeper lost (state %v)", w.s.conn.State())) {
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
		case errors.Is(err, configsvc.ErrNotFound), errors.Is(err, configsvc.ErrCompacted):
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
				if !w.unavailable(fmt.Errorf("connection to ZooKeeper lost (state %v)", w.s.conn.State())) {
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
		r, err := w.s.revs.get(a.czxid, n, load)
		if err != nil {
			return nil, err
		}
		w.down = false
		if !w.send(configsvc.Event{Revision: &r}) {
			return nil, errStopped
		}
		w.next++
	}
	if err := w.graysStep(h); err != nil {
		return nil, err
	}
	w.down = false
	return a.ch, nil
}
