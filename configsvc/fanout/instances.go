package fanout

import (
	"context"
	"sync"

	"github.com/sluicehq/sluice/configsvc"
)

// instHub is the shared instance watch of one service: the newest event
// of the upstream WatchInstances.
type instHub struct {
	svc    string
	cancel context.CancelFunc
	refs   refs // guarded by Store.mu

	mu     sync.Mutex
	wake   chan struct{}
	latest configsvc.InstancesEvent
	ver    uint64 // counts the upstream's events; 0: none yet
	dead   bool
}

// WatchInstances delivers the instance lists of svc from the shared
// instance watch of svc: the newest list at once (when the shared watch
// has one), then each new one. As with configsvc.Store.WatchInstances, a
// slow receiver may miss intermediate lists, never the newest.
func (s *Store) WatchInstances(ctx context.Context, svc string) <-chan configsvc.InstancesEvent {
	h, fresh := s.joinInstances(svc)
	if h == nil { // closed
		return s.Store.WatchInstances(ctx, svc)
	}
	if fresh {
		s.startInstances(h)
	}
	out := make(chan configsvc.InstancesEvent)
	leave := func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.release(&h.refs, func() { s.retireInstances(h) })
	}
	if !s.bg.Go(func() {
		defer leave()
		defer close(out)
		var seen uint64
		for {
			h.mu.Lock()
			if h.ver > seen {
				ev := h.latest
				seen = h.ver
				h.mu.Unlock()
				if !send(ctx, s, out, ev) {
					return
				}
				continue
			}
			if h.dead {
				h.mu.Unlock()
				return
			}
			wake := h.wake
			h.mu.Unlock()
			if !s.await(ctx, wake, nil) {
				return
			}
		}
	}) {
		leave()
		close(out)
	}
	return out
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
	h := &instHub{svc: svc, wake: make(chan struct{})}
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
			close(h.wake)
			h.wake = make(chan struct{})
			h.mu.Unlock()
		}
		s.mu.Lock()
		if s.insts[h.svc] == h {
			delete(s.insts, h.svc)
		}
		s.mu.Unlock()
		cancel()
		h.mu.Lock()
		h.dead = true
		close(h.wake)
		h.wake = make(chan struct{})
		h.mu.Unlock()
	}
	if !s.bg.Go(pump) {
		cancel()
		for range up {
		}
		h.mu.Lock()
		h.dead = true
		close(h.wake)
		h.wake = make(chan struct{})
		h.mu.Unlock()
	}
}
