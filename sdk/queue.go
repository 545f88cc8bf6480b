package sdk

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
)

// fileQueue runs the OnChange callbacks of one file, one change at a time,
// on its own goroutine, so a slow callback never blocks the applier.
type fileQueue struct {
	mu      sync.Mutex
	subs    []*subscriber // copy-on-write
	pending []queued
	wake    chan struct{}
}

type queued struct {
	ch   Change
	subs []*subscriber // the callbacks registered when the change was applied
}

type subscriber struct {
	fn      func(Change)
	stopped atomic.Bool
}

func newFileQueue() *fileQueue { return &fileQueue{wake: make(chan struct{}, 1)} }

func (q *fileQueue) add(s *subscriber) {
	q.mu.Lock()
	q.subs = append(slices.Clip(q.subs), s)
	q.mu.Unlock()
}

func (q *fileQueue) remove(s *subscriber) {
	s.stopped.Store(true)
	q.mu.Lock()
	q.subs = slices.DeleteFunc(slices.Clone(q.subs), func(x *subscriber) bool { return x == s })
	q.mu.Unlock()
}

// push queues ch; it never blocks.
func (q *fileQueue) push(ch Change) {
	q.mu.Lock()
	if len(q.subs) > 0 {
		q.pending = append(q.pending, queued{ch: ch, subs: q.subs})
	}
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *fileQueue) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-q.wake:
		}
		for {
			q.mu.Lock()
			if len(q.pending) == 0 {
				q.pending = nil
				q.mu.Unlock()
				break
			}
			item := q.pending[0]
			q.pending[0] = queued{}
			q.pending = q.pending[1:]
			q.mu.Unlock()
			for _, s := range item.subs {
				if ctx.Err() != nil {
					return
				}
				if !s.stopped.Load() {
					s.fn(item.ch)
				}
			}
		}
	}
}
