package breaker

import (
	"errors"
	"sync"
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
	return &breaker{
		now:      now,
		onChange: onChange,
		trip:     max(1, cb.ConsecutiveFailures),
		openFor:  cb.EffectiveOpenFor(),
		probes:   cb.EffectiveHalfOpen(),
	}
}

var (
	_ router.Breaker         = (*breaker)(nil)
	_ router.BreakerResetter = (*breaker)(nil)
)

// breaker is one instance's breaker. Every state change starts a new
// generation; a ticket is the generation its request was admitted in, so
// outcomes of requests admitted before a change (or a Reset) are dropped.
// The clock is read only when the breaker opens or is open: a closed
// breaker's Allow and Done take the lock and nothing else.
type breaker struct {
	now      func() time.Time
	onChange func(from, to router.BreakerState)
	trip     int
	openFor  time.Duration
	probes   int

	mu         sync.Mutex
	state      router.BreakerState
	generation uint64
	requests   int // admitted in this generation, less the ignored ones
	failures   int // consecutive failures
	successes  int // consecutive successes
	openUntil  time.Time
}

// Allow admits a request unless the breaker is open or half-open with
// its probes in flight (ErrOpen, ErrTooManyProbes). It allocates nothing.
func (b *breaker) Allow() (router.BreakerTicket, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.halfOpenIfDue()
	switch {
	case b.state == router.BreakerOpen:
		return 0, ErrOpen
	case b.state == router.BreakerHalfOpen && b.requests >= b.probes:
		return 0, ErrTooManyProbes
	}
	b.requests++
	return router.BreakerTicket(b.generation), nil
}

// Done reports the outcome of the request admitted with t.
func (b *breaker) Done(t router.BreakerTicket, o router.Outcome) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.halfOpenIfDue()
	if uint64(t) != b.generation {
		return
	}
	switch o {
	case router.Ignored:
		b.requests--
	case router.Failure:
		b.failures++
		b.successes = 0
		if b.state == router.BreakerHalfOpen || b.failures >= b.trip {
			b.openUntil = b.now().Add(b.openFor)
			b.setState(router.BreakerOpen)
		}
	default:
		b.successes++
		b.failures = 0
		if b.state == router.BreakerHalfOpen && b.successes >= b.probes {
			b.setState(router.BreakerClosed)
		}
	}
}

// State returns the breaker's state, half-opening it when open_for has
// passed.
func (b *breaker) State() router.BreakerState {
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
	if b.onChange != nil {
		b.onChange(from, to)
	}
}
