package breaker

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/sony/gobreaker/v2"

	"github.com/sluicehq/sluice/router"
)

// Breakers makes gobreaker-backed breakers. It holds no state and is safe
// for concurrent use. gobreaker reads the wall clock itself, so open_for is
// measured in real time.
type Breakers struct{}

// New returns the factory.
func New() *Breakers { return &Breakers{} }

var _ router.Breakers = (*Breakers)(nil)

// The refusals Run returns: each wraps the router's error and gobreaker's.
var (
	errOpen          = fmt.Errorf("breaker: %w (gobreaker: %w)", router.ErrBreakerOpen, gobreaker.ErrOpenState)
	errTooManyProbes = fmt.Errorf("breaker: %w (gobreaker: %w)", router.ErrBreakerTooManyProbes, gobreaker.ErrTooManyRequests)
)

// errFailure and errIgnored carry a router.Outcome into gobreaker.
var (
	errFailure = errors.New("upstream failure")
	errIgnored = errors.New("client went away")
)

// NewBreaker returns a closed breaker that opens after
// cb.ConsecutiveFailures failures in a row, stays open for cb.OpenFor, then
// lets cb.HalfOpenRequests probes through: as many successes close it, one
// failure opens it again. Ignored outcomes count neither way (gobreaker's
// IsExcluded); an ignored probe gives its slot back. onChange, if not nil,
// is called with gobreaker's lock held, so it must not call the breaker
// back. The breaker implements router.BreakerResetter.
func (Breakers) NewBreaker(name string, cb router.CircuitBreaker, onChange func(from, to router.BreakerState)) router.Breaker {
	b := &breaker{onChange: onChange}
	n := uint32(max(1, cb.ConsecutiveFailures))
	b.settings = gobreaker.Settings{
		Name:         name,
		MaxRequests:  uint32(cb.EffectiveHalfOpen()),
		Timeout:      cb.EffectiveOpenFor(),
		ReadyToTrip:  func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= n },
		IsSuccessful: func(err error) bool { return err == nil },
		IsExcluded:   func(err error) bool { return err == errIgnored },
	}
	b.cb.Store(b.newCB())
	return b
}

var (
	_ router.Breaker         = (*breaker)(nil)
	_ router.BreakerResetter = (*breaker)(nil)
)

// breaker is a gobreaker, replaced by a fresh one on Reset (gobreaker
// cannot be closed from outside). Outcomes of tries a replaced one
// admitted go to it and are lost with it, as gobreaker drops those of an
// earlier generation.
type breaker struct {
	cb       atomic.Pointer[gobreaker.CircuitBreaker[struct{}]]
	settings gobreaker.Settings
	onChange func(from, to router.BreakerState)
}

// newCB makes a gobreaker whose state changes are reported while it is the
// breaker in use.
func (b *breaker) newCB() *gobreaker.CircuitBreaker[struct{}] {
	st := b.settings
	var cb *gobreaker.CircuitBreaker[struct{}]
	if b.onChange != nil {
		st.OnStateChange = func(_ string, from, to gobreaker.State) {
			if b.cb.Load() == cb {
				b.onChange(state(from), state(to))
			}
		}
	}
	cb = gobreaker.NewCircuitBreaker[struct{}](st)
	return cb
}

// Run runs a through gobreaker's Execute, which does not keep the function
// it runs: the closure stays on Run's stack and a request allocates
// nothing. A refusal wraps router.ErrBreakerOpen or
// router.ErrBreakerTooManyProbes (and gobreaker's ErrOpenState or
// ErrTooManyRequests).
func (b *breaker) Run(a router.Attempt) error {
	_, err := b.cb.Load().Execute(func() (struct{}, error) {
		switch a.Try() {
		case router.Failure:
			return struct{}{}, errFailure
		case router.Ignored:
			return struct{}{}, errIgnored
		}
		return struct{}{}, nil
	})
	switch err {
	case nil, errFailure, errIgnored:
		return nil
	case gobreaker.ErrOpenState:
		return errOpen
	case gobreaker.ErrTooManyRequests:
		return errTooManyProbes
	}
	return err
}

// State returns the breaker's state, half-opening it when open_for has
// passed.
func (b *breaker) State() router.BreakerState { return state(b.cb.Load().State()) }

// Reset closes the breaker with fresh counts, reporting the change when it
// was open or half-open. Outcomes of tries admitted before are dropped.
func (b *breaker) Reset() {
	old := b.cb.Load()
	from := state(old.State())
	if from == router.BreakerClosed {
		return
	}
	if b.cb.CompareAndSwap(old, b.newCB()) && b.onChange != nil {
		b.onChange(from, router.BreakerClosed)
	}
}

func state(s gobreaker.State) router.BreakerState {
	switch s {
	case gobreaker.StateOpen:
		return router.BreakerOpen
	case gobreaker.StateHalfOpen:
		return router.BreakerHalfOpen
	}
	return router.BreakerClosed
}
