package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
	"github.com/sluicehq/sluice/configsvc/lifecycle"
)

// pinsHub is the one reader of the stored pins that every pins stream of a
// Server shares (GET /v1/pins/watch): with N proxies connected the store is
// read once per PinsPollInterval, not N times. Its goroutine starts with
// the first stream and stops as soon as the last one has left, or when
// the Server closes; it runs in the
// Server's streamsG, which Close waits for. It reads every
// PinsPollInterval, at once after a change through this server (pinNews)
// and at once when a stream joins, so that a new stream's first event is
// no older than its request; each read is bounded by RequestTimeout (a
// store that does not answer is an error, not a stall of every stream).
// It keeps the newest outcome (the pins, or the
// error) under a version that moves only when the pins changed or an error
// started or ended, and wakes the streams then (a lifecycle.Broadcast, as
// configsvc/fanout's hubs do). Streams read it without a goroutine of their own
// (pinsSub) and each applies its principal's view.
type pinsHub struct {
	s *Server

	mu      sync.Mutex
	subs    int  // streams joined
	running bool // the reader goroutine runs
	dead    bool // the reader could not start: the Server is closing
	kick    chan struct{}
	// wake tells the streams of every change: those waiting on its
	// channel and those that wait without a goroutine (notify).
	wake lifecycle.Broadcast[*pinsSub]

	begun   uint64 // reads begun
	read    uint64 // reads finished (reads are sequential: begun or begun-1)
	pending uint64 // the read a joined stream waits for (0: none)
	version uint64 // moves on every change of all or err
	all     map[string]configsvc.Pin
	allJSON []byte // all as JSON, to tell a change
	err     error  // the newest read's error, nil when it succeeded
}

// newPinsHub returns the idle pins hub of s; the first stream starts it.
func newPinsHub(s *Server) *pinsHub {
	return &pinsHub{s: s, kick: make(chan struct{}, 1)}
}

// subscribe joins a stream with principal p whose context is ctx, starting
// the reader if it is not running, and asks for a read: the stream's first
// update comes from a read begun after it joined.
func (h *pinsHub) subscribe(ctx context.Context, p *access.Principal) *pinsSub {
	h.mu.Lock()
	sub := &pinsSub{h: h, ctx: ctx, p: p, need: h.begun + 1}
	h.subs++
	h.pending = sub.need
	start := !h.running && !h.dead
	h.running = h.running || start
	h.mu.Unlock()
	switch {
	case start && !h.s.streamsG.Go(h.run):
		h.mu.Lock()
		h.running, h.dead = false, true
		notify := h.wake.Fire()
		h.mu.Unlock()
		notify()
	case !start: // a reader that starts reads at once
		select {
		case h.kick <- struct{}{}:
		default: // a read is asked for already
		}
	}
	return sub
}

// run is the reader goroutine: it reads the pins, publishes the outcome
// and waits for the next interval, a change through this server or a
// stream joining, until the Server closes or no stream is left.
func (h *pinsHub) run() {
	ctx := h.s.ctx
	defer func() { // on the Server's Close: the next stream finds the group stopped
		if ctx.Err() != nil {
			h.mu.Lock()
			h.running = false
			h.mu.Unlock()
		}
	}()
	for {
		news := h.s.pinNews.wait()
		h.mu.Lock()
		h.begun++
		h.mu.Unlock()
		rctx, cancel := context.WithTimeout(ctx, h.s.cfg.RequestTimeout)
		all, err := h.s.pins.ByKey(rctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		h.publish(all, err)
		t := time.NewTimer(PinsPollInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		case <-news:
			t.Stop()
		case <-h.kick:
			t.Stop()
		}
		h.mu.Lock()
		if h.subs == 0 {
			h.running = false
			h.mu.Unlock()
			return
		}
		h.mu.Unlock()
	}
}

// publish records the outcome of the read just finished and wakes the
// streams when it changed something, or when a stream waits for it.
func (h *pinsHub) publish(all map[string]configsvc.Pin, err error) {
	var b []byte
	if err == nil {
		b, _ = json.Marshal(all)
	}
	h.mu.Lock()
	h.read = h.begun
	changed := false
	switch {
	case err != nil:
		changed = h.err == nil
		h.err = err
	case h.err != nil || !bytes.Equal(b, h.allJSON):
		changed = true
		h.err, h.all, h.allJSON = nil, all, b
	}
	if changed {
		h.version++
	}
	// A stream that joined waits for a read begun after it did, which this
	// one may be: wake them all (those still waiting wait on).
	notify := func() {}
	if changed || h.pending != 0 {
		if h.pending <= h.read {
			h.pending = 0
		}
		notify = h.wake.Fire()
	}
	h.mu.Unlock()
	notify()
}

// pinsSub is one pins stream reading a pinsHub: what it has seen of the
// hub and what it last sent. It is used by one goroutine at a time (the
// stream's); close must be called once it is no longer read.
type pinsSub struct {
	h   *pinsHub
	ctx context.Context
	p   *access.Principal

	need    uint64 // the hub's read its first update comes from
	seen    uint64 // the hub's version it has looked at (0: none yet)
	last    []byte // the JSON of the pins it last sent (its view)
	failing bool   // it sent an error and no list since
	closed  bool   // set by close
}

// source returns sub as a stream's source (streamSSE).
func (sub *pinsSub) source() source[pinsUpdate] {
	return source[pinsUpdate]{poll: sub.poll, notify: sub.notify, close: sub.close}
}

// poll returns the next update for the stream if the hub holds a newer
// outcome than it has seen that changes what the stream shows (an error
// once when failing starts, the stream's view of the pins when it changed
// or after an error); else the channel that closes at the hub's next
// change; done once the stream's context has ended or the hub cannot run.
func (sub *pinsSub) poll() (u pinsUpdate, ok bool, wake <-chan struct{}, retry time.Time, done bool) {
	h := sub.h
	for {
		if sub.ctx.Err() != nil {
			return u, false, nil, time.Time{}, true
		}
		h.mu.Lock()
		if h.dead {
			h.mu.Unlock()
			return u, false, nil, time.Time{}, true
		}
		if h.read < sub.need || sub.seen == h.version {
			wake = h.wake.Wait()
			h.mu.Unlock()
			return u, false, wake, time.Time{}, false
		}
		sub.seen = h.version
		all, err := h.all, h.err
		h.mu.Unlock()
		if err != nil {
			if sub.failing {
				continue
			}
			sub.failing = true
			return pinsUpdate{err: err}, true, nil, time.Time{}, false
		}
		data := sub.h.s.visiblePins(sub.p, all)
		b, _ := json.Marshal(data)
		if !sub.failing && bytes.Equal(b, sub.last) {
			continue // a change outside the stream's view
		}
		sub.failing, sub.last = false, b
		return pinsUpdate{data: data}, true, nil, time.Time{}, false
	}
}

// notify calls f once wake, as the last poll returned it, has closed: at
// once, on the caller's goroutine, if it has already; otherwise on the
// hub's goroutine after it unlocked the hub. f must be quick and must not
// call into sub. A later notify replaces f; close drops it.
func (sub *pinsSub) notify(wake <-chan struct{}, f func()) {
	if sub.closed {
		f()
		return
	}
	sub.h.wake.NotifyUnder(&sub.h.mu, sub, wake, f)
}

// close leaves the hub; safe to call more than once. The hub's reader
// stops as soon as the last stream has left.
func (sub *pinsSub) close() {
	if sub.closed {
		return
	}
	sub.closed = true
	h := sub.h
	h.mu.Lock()
	h.wake.Drop(sub)
	h.subs--
	last := h.subs == 0
	h.mu.Unlock()
	if last {
		select {
		case h.kick <- struct{}{}: // the reader wakes, finds no stream and stops
		default:
		}
	}
}
