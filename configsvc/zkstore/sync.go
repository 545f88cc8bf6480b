package zkstore

import (
	"context"
	"sync"
	"sync/atomic"
)

// syncer makes reads linearizable at the cost of one shared round trip.
//
// A ZooKeeper server answers reads from its own copy of the tree, which on
// a follower may not yet hold a write the leader has already acknowledged
// to another client; a sync makes the session's server catch up with the
// leader first, and the session's requests are answered in order, so a
// read sent after a sync completed sees every write acknowledged before
// the sync started. A read is linearizable when it waits for a sync that
// started after the read was invoked.
//
// syncer coalesces those syncs: at most one is in flight, and the readers
// that arrive while it is in flight wait for the next one, which starts as
// soon as the one in flight completes and serves all of them (etcd batches
// its ReadIndex requests the same way). Under load a read therefore costs
// between one and two sync round trips of waiting, shared with every other
// read of the same moment, plus its own read.
//
// A syncer is safe for concurrent use. Its zero value is not usable: use
// newSyncer.
type syncer struct {
	// round performs one sync and returns its error. It is called on a
	// goroutine start provides, one call at a time.
	round func() error
	// start runs fn on a new goroutine, or reports false when the store is
	// closing (the round then fails with errClosed).
	start     func(fn func()) bool
	errClosed error

	mu       sync.Mutex
	inFlight bool
	next     *syncRound // the round that starts after the one in flight; nil when nobody waits for one

	rounds atomic.Int64 // rounds started, for tests and figures
}

// syncRound is one sync: done is closed when it completed, with err.
type syncRound struct {
	done chan struct{}
	err  error
}

func newSyncer(round func() error, start func(fn func()) bool, errClosed error) *syncer {
	return &syncer{round: round, start: start, errClosed: errClosed}
}

// wait returns once a sync that started after wait was called has
// completed, with that sync's error, or ctx's error when ctx ends first.
func (y *syncer) wait(ctx context.Context) error {
	y.mu.Lock()
	r := y.next
	if r == nil {
		r = &syncRound{done: make(chan struct{})}
		y.next = r
	}
	if !y.inFlight {
		y.startLocked()
	}
	y.mu.Unlock()
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// startLocked starts the round in y.next. y.mu must be held.
func (y *syncer) startLocked() {
	r := y.next
	y.next = nil
	y.inFlight = true
	y.rounds.Add(1)
	ok := y.start(func() {
		r.err = y.round()
		y.finish(r)
	})
	if !ok {
		// The store is closing: fail the round's waiters at once (finish
		// would take y.mu, which the caller holds). A later wait starts a
		// round that fails the same way.
		r.err = y.errClosed
		y.inFlight = false
		close(r.done)
	}
}

// finish releases r's waiters and starts the next round if anyone waits
// for one.
func (y *syncer) finish(r *syncRound) {
	y.mu.Lock()
	if y.next != nil {
		y.startLocked()
	} else {
		y.inFlight = false
	}
	y.mu.Unlock()
	close(r.done)
}
