package breaker

import (
	"errors"
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

// errFailure and errIgnored carry a router.Outcome into gobreaker.
var (
	errFailure = errors.New("upstream failure")
	errIgnored = errors.New("client went away")
)

// NewBreaker returns a closed breaker that opens after
// cb.ConsecutiveFailures failures in a row, stays open for cb.OpenFor, then
// lets cb.HalfOpenRequests probes through: as many successes close it, one
// failure opens it again. Ignored outcomes count neither way. It
// implements router.BreakerResetter.
func (Breakers) NewBreaker(name string, cb router.CircuitBreaker, onChange func(from, to router.BreakerState)) router.Breaker {
	b := &breaker{onChange: onChange}
	n := uint32(cb.ConsecutiveFailures)
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

var _ router.BreakerResetter = (*breaker)(nil)

// breaker is a gobreaker, replaced by a fresh one on Reset (gobreaker
// cannot be closed from outside). Outcomes of requests admitted by a
// replaced one go to it and are lost with it.
type breaker struct {
	cb       atomic.Pointer[gobreaker.TwoStepCircuitBreaker[struct{}]]
	settings gobreaker.Settings
	onChange func(from, to router.BreakerState)
}

// newCB makes a gobreaker whose state changes are reported while it is the
// breaker in use.
func (b *breaker) newCB() *gobreaker.TwoStepCircuitBreaker[struct{}] {
	st := b.settings
	var cb *gobreaker.TwoStepCircuitBreaker[struct{}]
	if b.onChange != nil {
		st.OnStateChange = func(_ string, from, to gobreaker.State) {
			if b.cb.Load() == cb {
				b.onChange(state(from), state(to))
			}
		}
	}
	cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](st)
	return cb
}

func (b *breaker) Allow() (func(router.Outcome), error) {
	done, err := b.cb.Load().Allow()
	if err != nil {
		return nil, err
	}
	return func(o router.Outcome) {
		switch o {
		case router.Failure:
			done(errFailure)
		case router.Ignored:
			done(errIgnored)
		default:
			done(nil)
		}
	}, nil
}

func (b *breaker) State() router.BreakerState { return state(b.cb.Load().State()) }

// Reset closes the breaker with fresh counts, reporting the change when it
// was open or half-open.
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
