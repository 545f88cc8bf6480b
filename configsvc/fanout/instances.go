package fanout

import (
	"context"
	"sync"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/lifecycle"
)

// instHub is the shared instance watch of one service: the newest event
// of the upstream WatchInstances.
type instHub struct {
	svc    string
	cancel context.CancelFunc
	refs   refs // guarded by Store.mu

	mu     sync.Mutex
	wake   lifecycle.Broadcast[*InstancesSubscription]
	latest configsvc.InstancesEvent
	ver    uint64 // counts the upstream's events; 0: none yet
	dead   bool
}

// changed wakes the subscribers; the caller holds h.mu and calls the
// function it returns once it has unlocked it.
func (h *instHub) changed() (notify func()) { return h.wake.Fire() }

// WatchInstances delivers the instance lists of svc from the shared
// instance watch of svc: the newest list at once (when the shared watch
// has one), then each new one. As with configsvc.Store.WatchInstances, a
// slow receiver may miss intermediate lists, never the newest.
// SubscribeInstances does without the goroutine it runs.
func (s *Store) WatchInstances(ctx context.Context, svc string) <-chan configsvc.InstancesEvent {
	sub := s.SubscribeInstances(svc)
	if sub == nil { // closed
		return s.Store.WatchInstances(ctx, svc)
	}
	out := make(chan configsvc.InstancesEvent)
	if !s.bg.Go(func() {
		defer sub.Close()
		defer close(out)
		for {
			ev, ok, wake, done := sub.Next()
			switch {
			case ok:
				if !send(ctx, s, out, ev) {
					return
				}
			case done:
				return
			case !s.await(ctx, wake, nil):
				return
			}
		}
	}) {
		sub.Close()
		close(out)
	}
	return out
}

// InstancesSubscription is one subscriber of a shared instance watch read
// without a goroutine of its own (see Subscription). It is used by one
// goroutine at a time; Close must be called once it is no longer read.
type InstancesSubscription struct {
	s      *Store
	h      *instHub
	seen   uint64
	closed bool
}

// SubscribeInstances opens a subscription to the shared instance watch of
// svc (WatchInstances' events); nil once the store is closed.
func (s *Store) SubscribeInstances(svc string) *InstancesSubscription {
	h, fresh := s.joinInstances(svc)
	if h == nil {
		return nil
	}
	if fresh {
		s.startInstances(h)
	}
	return &InstancesSubscription{s: s, h: h}
}

// Next returns the newest instance list if the subscriber has not had it
// (ok); otherwise done once the shared watch has ended, or wake, which
// closes when it has a newer list (Notify can tell of that instead).
func (sub *InstancesSubscription) Next() (ev configsvc.InstancesEvent, ok bool, wake <-chan struct{}, done bool) {
	h := sub.h
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.ver > sub.seen:
		sub.seen = h.ver
		return h.latest, true, nil, false
	case h.dead:
		return ev, false, nil, true
	}
	return ev, false, h.wake.Wait(), false
}

// Notify calls f once wake, as the last Next returned it, has closed, as
// Subscription.Notify does.
func (sub *InstancesSubscription) Notify(wake <-chan struct{}, f func()) {
	if sub.closed {
		f()
		return
	}
	sub.h.wake.NotifyUnder(&sub.h.mu, sub, wake, f)
}

// Close ends the subscription. It is safe to call more than once.
func (sub *InstancesSubscription) Close() {
	if sub.closed {
		return
	}
	h := sub.h
	h.mu.Lock()
	sub.closed = true
	h.wake.Drop(sub)
	h.mu.Unlock()
	sub.s.mu.Lock()
	defer sub.s.mu.Unlock()
	sub.s.release(&h.refs, func() { sub.s.retireInstances(h) })
}

func (s *Store) joinInstances(svc string) (*instHub, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bg.Stopped() {
		return nil, false
	}
	if h := s.insts[svc]; h != nil {
		h.refs.subs++
		return h, false
	}
	h := &instHub{svc: svc}
	h.refs.subs = 1
	s.insts[svc] = h
	return h, true
}

// retireInstances stops h and forgets it. The caller holds s.mu.
func (s *Store) retireInstances(h *instHub) {
	if s.insts[h.svc] == h {
		delete(s.insts, h.svc)
	}
	if h.cancel != nil {
		h.cancel()
	}
}

// startInstances opens the upstream instance watch of h before the
// WatchInstances that created h returns.
func (s *Store) startInstances(h *instHub) {
	ctx, cancel := context.WithCancel(context.Background())
	s.mu.Lock()
	h.cancel = cancel
	stopped := s.bg.Stopped()
	s.mu.Unlock()
	if stopped {
		cancel()
	}
	up := s.Store.WatchInstances(ctx, h.svc)
	pump := func() {
		for ev := range up {
			h.mu.Lock()
			h.latest = ev
			h.ver++
			notify := h.changed()
			h.mu.Unlock()
			notify()
		}
		s.mu.Lock()
		if s.insts[h.svc] == h {
			delete(s.insts, h.svc)
		}
		s.mu.Unlock()
		cancel()
		h.end()
	}
	if !s.bg.Go(pump) {
		cancel()
		for range up {
		}
		h.end()
	}
}

// end marks h ended and wakes its subscribers.
func (h *instHub) end() {
	h.mu.Lock()
	h.dead = true
	notify := h.changed()
	h.mu.Unlock()
	notify()
}
