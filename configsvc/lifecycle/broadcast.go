package lifecycle

import "sync"

// Broadcast wakes the readers of something shared that changes (a shared
// watch, a shared reader of the store) in two ways: a reader with a
// goroutine to spare selects on the channel Wait returns, which closes at
// the next Fire; a reader without one (an event stream parked in a read of
// its connection) registers a function with Notify, called once at the
// next Fire. K identifies a reader, so that a later Notify replaces its
// function and Drop removes it.
//
// A Broadcast is not safe for concurrent use: the owner's mutex guards it,
// together with the state whose changes it announces. The zero value is
// ready to use.
type Broadcast[K comparable] struct {
	ch      chan struct{}
	waiting map[K]func()
}

// Wait returns the channel the next Fire closes.
func (b *Broadcast[K]) Wait() <-chan struct{} {
	if b.ch == nil {
		b.ch = make(chan struct{})
	}
	return b.ch
}

// Fire closes the channel of Wait (the next Wait returns a new one) and
// returns the functions registered with Notify, each dropped: the caller
// calls the result once it has unlocked its mutex (a notified reader
// typically reads the shared state at once, which locks it).
func (b *Broadcast[K]) Fire() (notify func()) {
	if b.ch != nil {
		close(b.ch)
		b.ch = nil
	}
	fs := b.waiting
	b.waiting = nil
	return func() {
		for _, f := range fs {
			f()
		}
	}
}

// Notify registers f for reader k, to be called once at the next Fire,
// unless wake, a channel of an earlier Wait, has closed already: then it
// registers nothing and reports false, and the caller calls f itself
// (after unlocking its mutex). f must be quick and must not block: it runs
// on the goroutine that fired, one reader after another.
func (b *Broadcast[K]) Notify(k K, wake <-chan struct{}, f func()) bool {
	if wake != b.Wait() {
		return false
	}
	if b.waiting == nil {
		b.waiting = make(map[K]func())
	}
	b.waiting[k] = f
	return true
}

// NotifyUnder is Notify with mu, the mutex that guards b, held around it;
// when nothing was registered (wake has closed already) it calls f itself,
// after unlocking mu. It is what a subscription's Notify method is.
func (b *Broadcast[K]) NotifyUnder(mu sync.Locker, k K, wake <-chan struct{}, f func()) {
	mu.Lock()
	waits := b.Notify(k, wake, f)
	mu.Unlock()
	if !waits {
		f()
	}
}

// Drop removes the function reader k registered, if any.
func (b *Broadcast[K]) Drop(k K) { delete(b.waiting, k) }
