package lifecycle

import (
	"context"
	"errors"
	"sync"
	"time"
)

// ErrStopped is returned by Group.Sleep when the group stopped first.
var ErrStopped = errors.New("stopped")

// Sleep waits d, or until ctx ends. It returns nil after the full wait,
// ctx's error when ctx ended first. A d of zero or less returns at once
// (ctx's error when it has already ended).
func Sleep(ctx context.Context, d time.Duration) error {
	return sleep(ctx, d, nil)
}

// sleep is Sleep that also ends, with ErrStopped, when stop is closed (a
// nil stop never is).
func sleep(ctx context.Context, d time.Duration, stop <-chan struct{}) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-stop:
		return ErrStopped
	}
}

// Group tracks the goroutines a component starts, so that its Close can
// stop them and wait for them: after Stop, Go starts nothing more and Done
// is closed; Wait returns once every goroutine Go started has returned.
// The zero value is ready to use. A Group is safe for concurrent use; it
// must not be copied after first use.
type Group struct {
	// mu guards stopped and done, and orders every wg.Add before Stop, so
	// that Wait never races a new goroutine.
	mu      sync.RWMutex
	stopped bool
	done    chan struct{}
	wg      sync.WaitGroup
}

// Go runs fn on a new goroutine that Wait waits for. It reports false, and
// does not run fn, once the group is stopped.
func (g *Group) Go(fn func()) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.stopped {
		return false
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		fn()
	}()
	return true
}

// Done returns a channel that is closed when the group stops: the signal
// for its goroutines to return.
func (g *Group) Done() <-chan struct{} {
	g.mu.RLock()
	d := g.done
	g.mu.RUnlock()
	if d != nil {
		return d
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.done == nil {
		g.done = make(chan struct{})
		if g.stopped {
			close(g.done)
		}
	}
	return g.done
}

// Stopped reports whether Stop was called.
func (g *Group) Stopped() bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.stopped
}

// Stop stops the group: Go starts nothing more and Done is closed. It does
// not wait (see Wait). It reports whether this call stopped the group:
// false when it was stopped already.
func (g *Group) Stop() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.stopped {
		return false
	}
	g.stopped = true
	if g.done == nil {
		g.done = make(chan struct{})
	}
	close(g.done)
	return true
}

// Wait waits until every goroutine Go started has returned. Call it after
// Stop, or it may wait for goroutines started after it was called.
func (g *Group) Wait() { g.wg.Wait() }

// Sleep waits d, or until ctx ends (ctx's error) or the group stops
// (ErrStopped).
func (g *Group) Sleep(ctx context.Context, d time.Duration) error {
	return sleep(ctx, d, g.Done())
}
