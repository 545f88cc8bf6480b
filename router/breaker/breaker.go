package breaker

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/router"
)

// Breakers makes consecutive-failure circuit breakers. Its zero value is
// ready to use; it is safe for concurrent use.
type Breakers struct {
	// Now reads the clock that open_for is measured on; nil means time.Now.
	Now func() time.Time
}

// New returns a factory whose breakers read the wall clock.
func New() *Breakers { return &Breakers{} }

var _ router.Breakers = (*Breakers)(nil)

// Errors Allow returns when it refuses a request.
var (
	// ErrOpen: the breaker is open.
	ErrOpen = errors.New("breaker: circuit breaker is open")
	// ErrTooManyProbes: the breaker is half-open and its probes are taken.
	ErrTooManyProbes = errors.New("breaker: half-open circuit breaker has its probes in flight")
)

// NewBreaker returns a closed breaker that opens after
// cb.ConsecutiveFailures failures in a row, stays open for cb.OpenFor, then
// lets cb.HalfOpenRequests probes through: as many successes close it, one
// failure opens it again. Ignored outcomes count neither way. onChange, if
// not nil, is called with the breaker's lock held, so it must not call the
// breaker back. The breaker implements router.BreakerResetter.
func (f *Breakers) NewBreaker(_ string, cb router.CircuitBreaker, onChange func(from, to router.BreakerState)) router.Breaker {
	now := f.Now
	if now == nil {
		now = time.Now
	}
	b := &breaker{
		now:      now,
		onChange: onChange,
		trip:     max(1, cb.ConsecutiveFailures),
		openFor:  cb.EffectiveOpenFor(),
		probes:   cb.EffectiveHalfOpen(),
	}
	b.closedGen.Store(1) // closed, generation 0
	return b
}

var (
	_ router.Breaker         = (*breaker)(nil)
	_ router.BreakerResetter = (*breaker)(nil)
)

// breaker is one instance's breaker. Every state change starts a new
// generation; a ticket is the generation its request was admitted in, so
// outcomes of requests admitted before a change (or a Reset) are dropped.
//
// A closed breaker without failures is the common case and changes
// nothing on a request: Allow and a successful Done read two atomics and
// neither lock nor read the clock (requests are counted only when
// half-open, where probes are limited). Everything else takes the lock;
// the clock is read only when the breaker opens or is open.
type breaker struct {
	now      func() time.Time
	onChange func(from, to router.BreakerState)
	trip     int
	openFor  time.Duration
	probes   int

	closedGen atomic.Uint64 // generation+1 while closed, 0 otherwise
	failing   atomic.Bool   // closed with failures counted

	mu         sync.Mutex
	state      router.BreakerState
	generation uint64
	requests   int // half-open: probes admitted, less the ignored ones
	failures   int // consecutive failures
	successes  int // consecutive successes
	openUntil  time.Time
}

// Allow admits a request unless the breaker is open or half-open with
// its probes in flight (ErrOpen, ErrTooManyProbes). It allocates nothing.
func (b *breaker) Allow() (router.BreakerTicket, error) {
	if g := b.closedGen.Load(); g != 0 {
		return router.BreakerTicket(g - 1), nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.halfOpenIfDue()
	switch {
	case b.state == router.BreakerOpen:
		return 0, ErrOpen
	case b.state == router.BreakerHalfOpen:
		if b.requests >= b.probes {
			return 0, ErrTooManyProbes
		}
		b.requests++
	}
	return router.BreakerTicket(b.generation), nil
}

// Done reports the outcome of the request admitted with t.
func (b *breaker) Done(t router.BreakerTicket, o router.Outcome) {
	if o != router.Failure && b.closedGen.Load() == uint64(t)+1 && (o == router.Ignored || !b.failing.Load()) {
		return // closed and staying so, with no run of failures to reset
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.halfOpenIfDue()
	if uint64(t) != b.generation {
		return
	}
	switch o {
	case router.Ignored:
		if b.state == router.BreakerHalfOpen {
			b.requests-- // the probe's slot is free again
		}
	case router.Failure:
		b.failures++
		b.successes = 0
		if b.state == router.BreakerHalfOpen || b.failures >= b.trip {
			b.openUntil = b.now().Add(b.openFor)
			b.setState(router.BreakerOpen)
		} else {
			b.failing.Store(true)
		}
	default:
		b.successes++
		b.failures = 0
		b.failing.Store(false)
		if b.state == router.BreakerHalfOpen && b.successes >= b.probes {
			b.setState(router.BreakerClosed)
		}
	}
}

// State returns the breaker's state, half-opening it when open_for has
// passed.
func (b *breaker) State() router.BreakerState {
	if b.closedGen.Load() != 0 {
		return router.BreakerClosed
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.halfOpenIfDue()
	return b.state
}

// Reset closes the breaker with fresh counts, reporting the change when it
// was open or half-open. Outcomes of requests admitted before are dropped.
func (b *breaker) Reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.state != router.BreakerClosed {
		b.setState(router.BreakerClosed)
	}
}

// halfOpenIfDue half-opens an open breaker whose time is up. b.mu is held.
func (b *breaker) halfOpenIfDue() {
	if b.state == router.BreakerOpen && !b.now().Before(b.openUntil) {
		b.setState(router.BreakerHalfOpen)
	}
}

// setState starts a new generation in state to and reports the change.
// b.mu is held.
func (b *breaker) setState(to router.BreakerState) {
	from := b.state
	b.state = to
	b.generation++
	b.requests, b.failures, b.successes = 0, 0, 0
	b.failing.Store(false)
	if to == router.BreakerClosed {
		b.closedGen.Store(b.generation + 1)
	} else {
		b.closedGen.Store(0)
	}
	if b.onChange != nil {
		b.onChange(from, to)
	}
}
