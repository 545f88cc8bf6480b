package fasthttpengine

import (
	"net"
	"sync/atomic"
	"time"
)

// Read deadlines kept by the engine.
//
// A socket's read deadline is a runtime timer: setting it takes the
// descriptor's lock and moves the timer in its P's heap, which the
// scheduler then keeps in order. A keep-alive request set three (the wait
// for the request, its header, the upstream's answer), each pushed back
// before it could fire. The engine instead keeps each connection's
// deadline in an atomic, and its watchdog goroutine looks at all of them
// every tick (Options.TimerTick): for one that has passed, it sets the
// socket's read deadline in the past, so that the read in progress, or
// the next one, fails with a timeout exactly as if the socket's own
// deadline had fired. A request then costs a few atomic stores.
//
// Only timeouts of ten ticks or more are kept this way (the defaults: a
// header's 10 s, a keep-alive connection's 2 min, a route's 30 s); they
// fire up to two ticks late, never early. Shorter ones are set on the
// socket, exactly. A deadline that fired dooms its connection: whatever
// the connection does next, its next read fails, and an upstream
// connection is not used again.

// fired is a deadline's value once the watchdog cut it.
const fired = -1

// aLongTimeAgo is a read deadline in the past: the read fails at once.
var aLongTimeAgo = time.Unix(1, 0)

// deadline is a connection's read deadline, kept by the engine: a time on
// the engine's clock (nanoseconds), 0 for none, or fired.
type deadline struct{ at atomic.Int64 }

// set replaces the deadline with at (0: none). It reports false when the
// one it replaces had fired: the socket's read deadline is, or is about to
// be, in the past.
func (d *deadline) set(at int64) bool { return d.at.Swap(at) != fired }

// fire cuts c's read when the deadline passed by now; the watchdog calls
// it.
func (d *deadline) fire(now int64, c net.Conn) {
	if at := d.at.Load(); at > 0 && now >= at && d.at.CompareAndSwap(at, fired) {
		_ = c.SetReadDeadline(aLongTimeAgo)
	}
}

// readBound bounds the reads of a connection: d, and armed, which says a
// read deadline is set on the socket itself. It is owned by the
// goroutine using the connection (armed is not synchronized).
type readBound struct {
	d      deadline
	armed  bool
	doomed bool // a deadline fired: the socket's stays in the past
}

// bound bounds c's reads to timeout from now (0: unbounded; a deadline
// armed on the socket before is left as it is, as fasthttp does for a
// request without a body). Once a deadline fired, the socket's stays in
// the past, so that the connection's next read fails, and bound changes
// nothing more.
func (e *Engine) bound(b *readBound, c net.Conn, timeout time.Duration) {
	if b.doomed {
		return
	}
	var ok bool
	switch {
	case timeout >= e.coarseMin:
		if b.armed {
			_ = c.SetReadDeadline(time.Time{})
			b.armed = false
		}
		ok = b.d.set(e.deadlineIn(timeout))
	case timeout > 0:
		ok = b.d.set(0)
		_ = c.SetReadDeadline(time.Now().Add(timeout))
		b.armed = true
	default:
		ok = b.d.set(0)
	}
	if !ok {
		b.doom(c)
	}
}

// doom keeps c's read deadline in the past: a deadline fired.
func (b *readBound) doom(c net.Conn) {
	_ = c.SetReadDeadline(aLongTimeAgo)
	b.armed, b.doomed = true, true
}

// deadlineIn returns the engine's deadline timeout from now: the clock
// lags real time by up to a tick, so a tick more.
func (e *Engine) deadlineIn(timeout time.Duration) int64 {
	return e.clock.Load() + int64(timeout) + int64(e.tick)
}

// watch keeps the engine's clock and deadlines every tick, and closes idle
// upstream connections past their time, until Shutdown.
func (e *Engine) watch() {
	defer e.wg.Done()
	t := time.NewTicker(e.tick)
	defer t.Stop()
	nextSweep := time.Now().Add(upstreamIdleFor / 6)
	for {
		select {
		case <-e.stop:
			return
		case now := <-t.C:
			ns := now.UnixNano()
			e.clock.Store(ns)
			e.conns.Range(func(k, v any) bool {
				en := v.(*connEntry)
				en.client.d.fire(ns, k.(net.Conn))
				if u := en.up.Load(); u != nil {
					u.rb.d.fire(ns, u.Conn)
				}
				return true
			})
			if now.After(nextSweep) {
				e.pools.sweep(ns)
				nextSweep = now.Add(upstreamIdleFor / 6)
			}
		}
	}
}
