package breaker

import (
	"errors"

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
// failure opens it again. Ignored outcomes count neither way.
func (Breakers) NewBreaker(name string, cb router.CircuitBreaker, onChange func(from, to router.BreakerState)) router.Breaker {
	n := uint32(cb.ConsecutiveFailures)
	st := gobreaker.Settings{
		Name:         name,
		MaxRequests:  uint32(cb.EffectiveHalfOpen()),
		Timeout:      cb.EffectiveOpenFor(),
		ReadyToTrip:  func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= n },
		IsSuccessful: func(err error) bool { return err == nil },
		IsExcluded:   func(err error) bool { return err == errIgnored },
	}
	if onChange != nil {
		st.OnStateChange = func(_ string, from, to gobreaker.State) { onChange(state(from), state(to)) }
	}
	return &breaker{cb: gobreaker.NewTwoStepCircuitBreaker[struct{}](st)}
}

type breaker struct {
	cb *gobreaker.TwoStepCircuitBreaker[struct{}]
}

func (b *breaker) Allow() (func(router.Outcome), error) {
	done, err := b.cb.Allow()
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

func (b *breaker) State() router.BreakerState { return state(b.cb.State()) }

func state(s gobreaker.State) router.BreakerState {
	switch s {
	case gobreaker.StateOpen:
		return router.BreakerOpen
	case gobreaker.StateHalfOpen:
		return router.BreakerHalfOpen
	}
	return router.BreakerClosed
}
