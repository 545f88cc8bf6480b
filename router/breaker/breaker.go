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

// The refusals Allow returns: each wraps the router's error and gobreaker's.
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
	b.quiet.Store(1) // closed, no failure
	return b
}

var (
	_ router.Breaker         = (*breaker)(nil)
	_ router.BreakerResetter = (*breaker)(nil)
)

// breaker is a gobreaker two-step breaker, replaced by a fresh one on
// Reset (gobreaker cannot be closed from outside). Outcomes of tries a
// replaced one admitted go to it and are lost with it, as gobreaker drops
// those of an earlier generation.
type breaker struct {
	cb       atomic.Pointer[gobreaker.TwoStepCircuitBreaker[struct{}]]
	settings gobreaker.Settings
	onChange func(from, to router.BreakerState)
	// quiet's bit 0 is set while the gobreaker in use is closed with no
	// failure since its last success. A success cannot change such a
	// breaker (it trips on consecutive failures only), so Allow does not
	// ask gobreaker about a try then, nor Done tell it of a success:
	// gobreaker takes its lock and reads the clock twice per try (and its
	// Allow allocates the function that ends the try). The other bits
	// count the failures told (tell), so that a success sets the bit
	// only when no failure was told since it looked (calm).
	quiet atomic.Uint64
	// gen counts the state changes of the gobreaker in use and the
	// Resets: gobreaker starts a new generation on each, and drops the
	// outcomes of tries an earlier one admitted. A quiet try's failure is
	// dropped the same way.
	gen atomic.Uint64
}

// newCB makes a gobreaker whose state changes are reported while it is the
// breaker in use.
func (b *breaker) newCB() *gobreaker.TwoStepCircuitBreaker[struct{}] {
	st := b.settings
	var cb *gobreaker.TwoStepCircuitBreaker[struct{}]
	st.OnStateChange = func(_ string, from, to gobreaker.State) {
		if b.cb.Load() == cb {
			b.gen.Add(1)
			if b.onChange != nil {
				b.onChange(state(from), state(to))
			}
		}
	}
	cb = gobreaker.NewTwoStepCircuitBreaker[struct{}](st)
	return cb
}

// pending is the record of a try gobreaker admitted (a breaker that was
// not quiet), kept in the Ticket's P: the function that gives gobreaker
// its outcome and the gobreaker that admitted it. The Ticket's A holds
// quiet as Allow read it.
type pending struct {
	done func(err error)
	cb   *gobreaker.TwoStepCircuitBreaker[struct{}]
}

// Allow admits a try or refuses it. A refusal wraps router.ErrBreakerOpen
// or router.ErrBreakerTooManyProbes (and gobreaker's ErrOpenState or
// ErrTooManyRequests) and allocates nothing.
//
// While the breaker is quiet (closed, no failure since the last success)
// Allow admits the try without gobreaker, allocating nothing: its Ticket
// holds quiet (A, bit 0 set) and the generation (B). Done then tells
// gobreaker only of a failure, as a try it admits and fails at once: the
// state changes (closed, open, half-open) and their times are gobreaker's
// all the same, but its Counts leave out the successes of a quiet
// breaker. A failure of a try admitted before a state change or a Reset
// is dropped, as gobreaker drops the outcome of a try an earlier
// generation admitted. Otherwise Allow asks gobreaker's two-step breaker,
// and the Ticket's P holds what Done needs (one allocation besides
// gobreaker's own).
func (b *breaker) Allow() (router.Ticket, error) {
	if w := b.quiet.Load(); w&1 != 0 {
		return router.Ticket{A: w, B: b.gen.Load()}, nil
	}
	w := b.quiet.Load()
	cb := b.cb.Load()
	done, err := cb.Allow()
	switch err {
	case nil:
		return router.Ticket{A: w, P: &pending{done: done, cb: cb}}, nil
	case gobreaker.ErrOpenState:
		return router.Ticket{}, errOpen
	case gobreaker.ErrTooManyRequests:
		return router.Ticket{}, errTooManyProbes
	}
	return router.Ticket{}, err
}

// Done records the outcome o of the try Allow admitted with t. A Ticket
// Allow did not return (the zero Ticket) is ignored.
func (b *breaker) Done(t router.Ticket, o router.Outcome) {
	p, _ := t.P.(*pending)
	if p == nil {
		if t.A&1 == 0 {
			return // not a quiet ticket either
		}
		if o == router.Ignored || o == router.Success && b.quiet.Load() == t.A {
			return // changes nothing
		}
		b.tell(t.B, o)
		return
	}
	err := outcomeErr(o)
	p.done(err)
	b.after(p.cb, t.A, err)
}

// outcomeErr is the error gobreaker is given for outcome o.
func outcomeErr(o router.Outcome) error {
	switch o {
	case router.Failure:
		return errFailure
	case router.Ignored:
		return errIgnored
	}
	return nil
}

// tell tells gobreaker outcome o of a try a quiet breaker admitted in
// generation g (a failure, or a success after a failure was told since
// the try began): as a try gobreaker admits and ends at once, unless the
// generation changed since (then gobreaker drops it, or it is excluded
// here).
func (b *breaker) tell(g uint64, o router.Outcome) {
	w := b.quiet.Load()
	cb := b.cb.Load()
	done, err := cb.Allow()
	if err != nil {
		return // open, or half-open with its probes taken: nothing to tell
	}
	err = outcomeErr(o)
	if b.gen.Load() != g {
		err = errIgnored
	}
	done(err)
	b.after(cb, w, err)
}

// after follows up a try gobreaker counted with err, quiet having read w
// before it: a failure makes the breaker not quiet, a success may make it
// quiet.
func (b *breaker) after(cb *gobreaker.TwoStepCircuitBreaker[struct{}], w uint64, err error) {
	switch err {
	case nil:
		b.calm(cb, w)
	case errFailure:
		b.told()
	}
}

// told notes, after gobreaker counted it, a failure: the breaker is not
// quiet, and a success that looked before cannot make it so.
func (b *breaker) told() {
	for {
		w := b.quiet.Load()
		if b.quiet.CompareAndSwap(w, (w+2)&^1) {
			return
		}
	}
}

// calm makes the breaker quiet after a success on cb when cb, still the
// breaker in use, is closed with no consecutive failure, and no failure
// was told since quiet read w (before the try).
func (b *breaker) calm(cb *gobreaker.TwoStepCircuitBreaker[struct{}], w uint64) {
	if cb.State() == gobreaker.StateClosed && cb.Counts().ConsecutiveFailures == 0 && b.cb.Load() == cb {
		b.quiet.CompareAndSwap(w, w|1)
	}
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
	b.gen.Add(1) // before the swap: a quiet try admitted before is dropped
	if b.cb.CompareAndSwap(old, b.newCB()) {
		b.told() // not quiet until a success on the new one
		if b.onChange != nil {
			b.onChange(from, router.BreakerClosed)
		}
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
