package breaker_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/sluicehq/sluice/router"
	"github.com/sluicehq/sluice/router/breaker"
)

// run sends one try with outcome o through b, Allow then Done at once,
// and returns Allow's error.
func run(t *testing.T, b router.Breaker, o router.Outcome) error {
	t.Helper()
	tk, err := b.Allow()
	if err != nil {
		if tk != (router.Ticket{}) {
			t.Fatalf("Allow refused (%v) with a ticket %+v", err, tk)
		}
		return err
	}
	b.Done(tk, o)
	return nil
}

// probe is a try b admitted and that is held in flight until finish.
type probe struct {
	b  router.Breaker
	tk router.Ticket
}

// begin asks b to admit a try and returns it held in flight, or Allow's
// error.
func begin(b router.Breaker) (*probe, error) {
	tk, err := b.Allow()
	if err != nil {
		return nil, err
	}
	return &probe{b: b, tk: tk}, nil
}

// finish ends the try with outcome o.
func (p *probe) finish(t *testing.T, o router.Outcome) {
	t.Helper()
	p.b.Done(p.tk, o)
}

func TestBreakerLifecycle(t *testing.T) {
	var changes []string
	b := breaker.New().NewBreaker("r/i", router.CircuitBreaker{ConsecutiveFailures: 2, OpenFor: 50 * time.Millisecond, HalfOpenRequests: 1},
		func(from, to router.BreakerState) { changes = append(changes, from.String()+">"+to.String()) })
	report := func(o router.Outcome) {
		t.Helper()
		if err := run(t, b, o); err != nil {
			t.Fatalf("try in state %v: %v", b.State(), err)
		}
	}
	report(router.Failure)
	report(router.Ignored) // a client cancellation neither trips nor resets
	report(router.Success) // resets the run of failures
	report(router.Failure)
	if b.State() != router.BreakerClosed {
		t.Fatalf("state %v after 1 consecutive failure, want closed", b.State())
	}
	report(router.Failure)
	if b.State() != router.BreakerOpen {
		t.Fatalf("state %v after 2 consecutive failures, want open", b.State())
	}
	err := run(t, b, router.Success)
	if !errors.Is(err, router.ErrBreakerOpen) || !errors.Is(err, gobreaker.ErrOpenState) {
		t.Fatalf("open breaker's Allow: %v, want router.ErrBreakerOpen and gobreaker.ErrOpenState", err)
	}
	time.Sleep(60 * time.Millisecond)
	if b.State() != router.BreakerHalfOpen {
		t.Fatalf("state %v after open_for, want half-open", b.State())
	}
	p, err := begin(b)
	if err != nil {
		t.Fatal(err)
	}
	err = run(t, b, router.Success)
	if !errors.Is(err, router.ErrBreakerTooManyProbes) || !errors.Is(err, gobreaker.ErrTooManyRequests) {
		t.Fatalf("half-open breaker's second probe: %v, want router.ErrBreakerTooManyProbes and gobreaker.ErrTooManyRequests; half_open_requests is 1", err)
	}
	p.finish(t, router.Success)
	if b.State() != router.BreakerClosed {
		t.Fatalf("state %v after a successful probe, want closed", b.State())
	}
	if got, want := fmt.Sprint(changes), "[closed>open open>half-open half-open>closed]"; got != want {
		t.Fatalf("changes %s, want %s", got, want)
	}
}

// TestBreakerReset: Reset closes an open breaker at once, reports the
// change, and outcomes of tries the old breaker admitted no longer move
// it.
func TestBreakerReset(t *testing.T) {
	var mu sync.Mutex
	var changes []string
	b := breaker.New().NewBreaker("r/i", router.CircuitBreaker{ConsecutiveFailures: 1, OpenFor: time.Hour},
		func(from, to router.BreakerState) {
			mu.Lock()
			defer mu.Unlock()
			changes = append(changes, from.String()+">"+to.String())
		})
	r, ok := b.(router.BreakerResetter)
	if !ok {
		t.Fatal("breaker does not implement router.BreakerResetter")
	}
	r.Reset() // closed: nothing to do
	late, err := begin(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := run(t, b, router.Failure); err != nil {
		t.Fatal(err)
	}
	if b.State() != router.BreakerOpen {
		t.Fatalf("state %v after a failure, want open", b.State())
	}
	r.Reset()
	if b.State() != router.BreakerClosed {
		t.Fatalf("state %v after Reset, want closed", b.State())
	}
	late.finish(t, router.Failure) // admitted before the reset: dropped
	if b.State() != router.BreakerClosed {
		t.Fatalf("state %v after a failure admitted before Reset, want closed", b.State())
	}
	mu.Lock()
	defer mu.Unlock()
	if got, want := fmt.Sprint(changes), "[closed>open open>closed]"; got != want {
		t.Fatalf("changes %s, want %s", got, want)
	}
}

// TestBreakerHalfOpenProbes: an open breaker refuses until open_for has
// passed, then lets half_open_requests probes through (an ignored probe
// gives its slot back), closes after as many successes, and a failing
// probe opens it again for another open_for. gobreaker reads the wall
// clock, so open_for is short and waited out.
func TestBreakerHalfOpenProbes(t *testing.T) {
	const openFor = 50 * time.Millisecond
	b := breaker.New().NewBreaker("r/i", router.CircuitBreaker{ConsecutiveFailures: 1, OpenFor: openFor, HalfOpenRequests: 2}, nil)
	admit := func() *probe {
		t.Helper()
		p, err := begin(b)
		if err != nil {
			t.Fatalf("probe in state %v: %v", b.State(), err)
		}
		return p
	}
	if err := run(t, b, router.Failure); err != nil {
		t.Fatal(err)
	}
	if err := run(t, b, router.Success); !errors.Is(err, router.ErrBreakerOpen) {
		t.Fatalf("Allow right after the trip: %v, want ErrBreakerOpen", err)
	}
	time.Sleep(openFor + 10*time.Millisecond)
	p1, p2 := admit(), admit()
	if _, err := begin(b); !errors.Is(err, router.ErrBreakerTooManyProbes) {
		t.Fatalf("third probe: %v, want ErrBreakerTooManyProbes", err)
	}
	p2.finish(t, router.Ignored) // gives its slot back
	p3 := admit()
	p1.finish(t, router.Success)
	if b.State() != router.BreakerHalfOpen {
		t.Fatalf("state %v after 1 of 2 successful probes, want half-open", b.State())
	}
	p3.finish(t, router.Failure)
	if b.State() != router.BreakerOpen {
		t.Fatalf("state %v after a failed probe, want open", b.State())
	}
	if err := run(t, b, router.Success); !errors.Is(err, router.ErrBreakerOpen) {
		t.Fatalf("Allow right after a failed probe: %v, want ErrBreakerOpen", err)
	}
	time.Sleep(openFor + 10*time.Millisecond)
	p1, p2 = admit(), admit()
	p1.finish(t, router.Success)
	p2.finish(t, router.Success)
	if b.State() != router.BreakerClosed {
		t.Fatalf("state %v after 2 successful probes, want closed", b.State())
	}
}

// TestBreakerAllocations: a try through a quiet breaker (closed, no
// failure since the last success), and a refusal by an open one, allocate
// nothing.
func TestBreakerAllocations(t *testing.T) {
	b := breaker.New().NewBreaker("r/i", router.CircuitBreaker{ConsecutiveFailures: 3, OpenFor: time.Hour}, func(from, to router.BreakerState) {})
	if n := testing.AllocsPerRun(1000, func() {
		tk, err := b.Allow()
		if err != nil {
			t.Fatal(err)
		}
		b.Done(tk, router.Success)
	}); n != 0 {
		t.Fatalf("%.2f allocations per try through a quiet breaker, want 0", n)
	}
	if n := testing.AllocsPerRun(1000, func() {
		tk, err := b.Allow()
		if err != nil {
			t.Fatal(err)
		}
		b.Done(tk, router.Ignored)
	}); n != 0 {
		t.Fatalf("%.2f allocations per ignored try through a quiet breaker, want 0", n)
	}
	for range 3 {
		if err := run(t, b, router.Failure); err != nil {
			t.Fatal(err)
		}
	}
	if n := testing.AllocsPerRun(1000, func() {
		if _, err := b.Allow(); !errors.Is(err, router.ErrBreakerOpen) {
			t.Fatalf("Allow: %v, want ErrBreakerOpen", err)
		}
	}); n != 0 {
		t.Fatalf("%.2f allocations per refusal by an open breaker, want 0", n)
	}
}

// TestBreakerTwoStep: tries admitted together and ended later, in any
// order, count as gobreaker counts them: the breaker opens on the
// ConsecutiveFailures-th failure reported (tries still in flight then are
// dropped), refuses while open, half-opens after open_for with
// HalfOpenRequests probes, and a zero Ticket handed to Done changes
// nothing.
func TestBreakerTwoStep(t *testing.T) {
	const openFor = 50 * time.Millisecond
	var changes []string
	b := breaker.New().NewBreaker("r/i", router.CircuitBreaker{ConsecutiveFailures: 3, OpenFor: openFor, HalfOpenRequests: 1},
		func(from, to router.BreakerState) { changes = append(changes, from.String()+">"+to.String()) })
	var held []*probe
	for range 5 {
		p, err := begin(b)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, p)
	}
	b.Done(router.Ticket{}, router.Failure) // not a ticket Allow gave: ignored
	held[4].finish(t, router.Failure)
	held[0].finish(t, router.Failure) // admitted while quiet, reported after a failure
	if b.State() != router.BreakerClosed {
		t.Fatalf("state %v after 2 failures, want closed", b.State())
	}
	held[2].finish(t, router.Failure)
	if b.State() != router.BreakerOpen {
		t.Fatalf("state %v after 3 failures, want open", b.State())
	}
	held[1].finish(t, router.Success) // admitted before the trip: dropped
	held[3].finish(t, router.Success)
	if b.State() != router.BreakerOpen {
		t.Fatalf("state %v after successes admitted before the trip, want open", b.State())
	}
	if _, err := b.Allow(); !errors.Is(err, router.ErrBreakerOpen) {
		t.Fatalf("Allow while open: %v, want ErrBreakerOpen", err)
	}
	time.Sleep(openFor + 10*time.Millisecond)
	if b.State() != router.BreakerHalfOpen {
		t.Fatalf("state %v after open_for, want half-open", b.State())
	}
	p, err := begin(b)
	if err != nil {
		t.Fatalf("probe: %v", err)
	}
	if _, err := b.Allow(); !errors.Is(err, router.ErrBreakerTooManyProbes) {
		t.Fatalf("second probe: %v, want ErrBreakerTooManyProbes", err)
	}
	p.finish(t, router.Success)
	if b.State() != router.BreakerClosed {
		t.Fatalf("state %v after a successful probe, want closed", b.State())
	}
	if got, want := fmt.Sprint(changes), "[closed>open open>half-open half-open>closed]"; got != want {
		t.Fatalf("changes %s, want %s", got, want)
	}
}

// TestBreakerConcurrent: tries racing through a breaker trip it once, and
// a half-open breaker admits exactly half_open_requests of the probes that
// race for it.
func TestBreakerConcurrent(t *testing.T) {
	const openFor = 300 * time.Millisecond // outlasts the racing failures
	var changes []string
	b := breaker.New().NewBreaker("r/i", router.CircuitBreaker{ConsecutiveFailures: 5, OpenFor: openFor, HalfOpenRequests: 3},
		func(from, to router.BreakerState) { changes = append(changes, from.String()+">"+to.String()) }) // under gobreaker's lock
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				if tk, err := b.Allow(); err == nil { // refused once open
					b.Done(tk, router.Failure)
				}
			}
		})
	}
	wg.Wait()
	if got, want := fmt.Sprint(changes), "[closed>open]"; got != want {
		t.Fatalf("changes %s, want %s", got, want)
	}
	time.Sleep(openFor + 20*time.Millisecond)
	var mu sync.Mutex
	var admitted []*probe
	for range 8 {
		wg.Go(func() {
			if p, err := begin(b); err == nil {
				mu.Lock()
				admitted = append(admitted, p)
				mu.Unlock()
			} else if !errors.Is(err, router.ErrBreakerTooManyProbes) {
				t.Errorf("refused probe: %v, want ErrBreakerTooManyProbes", err)
			}
		})
	}
	wg.Wait()
	if len(admitted) != 3 {
		t.Fatalf("%d probes admitted, want 3", len(admitted))
	}
	for _, p := range admitted {
		p.finish(t, router.Success)
	}
	if got, want := fmt.Sprint(changes), "[closed>open open>half-open half-open>closed]"; got != want {
		t.Fatalf("changes %s, want %s", got, want)
	}
}

// refBreaker is the model TestBreakerMatchesGobreaker holds the adapter to:
// every try through gobreaker's Execute, a fresh gobreaker on Reset when
// the current one is not closed.
type refBreaker struct {
	settings gobreaker.Settings
	cb       *gobreaker.CircuitBreaker[struct{}]
}

func (r *refBreaker) reset() {
	if r.cb.State() != gobreaker.StateClosed {
		r.cb = gobreaker.NewCircuitBreaker[struct{}](r.settings)
	}
}

// run runs a try with outcome o; wait, when not nil, holds it in flight
// until it returns. It reports whether the try was admitted.
func (r *refBreaker) run(o router.Outcome, wait func()) bool {
	_, err := r.cb.Execute(func() (struct{}, error) {
		if wait != nil {
			wait()
		}
		switch o {
		case router.Failure:
			return struct{}{}, errors.New("failure")
		case router.Ignored:
			return struct{}{}, errIgnoredRef
		}
		return struct{}{}, nil
	})
	return !errors.Is(err, gobreaker.ErrOpenState) && !errors.Is(err, gobreaker.ErrTooManyRequests)
}

var errIgnoredRef = errors.New("ignored")

// TestBreakerMatchesGobreaker: the adapter, which does not ask gobreaker
// about the tries of a quiet breaker and asks gobreaker's two-step breaker
// about the others, admits and refuses the same tries
// and goes through the same states as gobreaker asked about every try,
// over random runs of outcomes, tries held in flight across state changes,
// and Resets.
func TestBreakerMatchesGobreaker(t *testing.T) {
	const failures = 3
	for seed := range uint64(1000) {
		rng := rand.New(rand.NewPCG(seed, 1))
		b := breaker.New().NewBreaker("r/i", router.CircuitBreaker{ConsecutiveFailures: failures, OpenFor: time.Hour}, nil)
		ref := &refBreaker{settings: gobreaker.Settings{
			Name:         "ref",
			Timeout:      time.Hour,
			ReadyToTrip:  func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= failures },
			IsSuccessful: func(err error) bool { return err == nil },
			IsExcluded:   func(err error) bool { return errors.Is(err, errIgnoredRef) },
		}}
		ref.cb = gobreaker.NewCircuitBreaker[struct{}](ref.settings)
		type held struct {
			p       *probe
			o       router.Outcome
			release chan struct{}
			refDone chan bool
		}
		var inFlight []held
		var steps []string
		for step := range 60 {
			outcome := []router.Outcome{router.Success, router.Success, router.Failure, router.Failure, router.Ignored}[rng.IntN(5)]
			switch k := rng.IntN(10); {
			case k < 6: // a try that ends at once
				steps = append(steps, fmt.Sprint("run ", outcome))
				err := run(t, b, outcome)
				if got, want := err == nil, ref.run(outcome, nil); got != want {
					t.Fatalf("seed %d step %d (%v): adapter admitted %v, gobreaker %v", seed, step, steps, got, want)
				}
			case k < 8 && len(inFlight) < 3: // a try held in flight
				steps = append(steps, "begin")
				p, err := begin(b)
				h := held{p: p, o: outcome, release: make(chan struct{}), refDone: make(chan bool, 1)}
				refStarted := make(chan struct{})
				go func() {
					h.refDone <- ref.run(outcome, func() { close(refStarted); <-h.release })
				}()
				refAdmitted := true
				select {
				case <-refStarted:
				case refAdmitted = <-h.refDone:
				}
				if got := err == nil; got != refAdmitted {
					t.Fatalf("seed %d step %d (%v): adapter admitted %v (%v), gobreaker %v", seed, step, steps, got, err, refAdmitted)
				}
				if refAdmitted {
					inFlight = append(inFlight, h)
				}
			case k < 9 && len(inFlight) > 0: // a held try ends
				i := rng.IntN(len(inFlight))
				h := inFlight[i]
				inFlight = append(inFlight[:i], inFlight[i+1:]...)
				steps = append(steps, fmt.Sprint("finish ", h.o))
				h.p.finish(t, h.o)
				close(h.release)
				<-h.refDone
			default:
				steps = append(steps, "reset")
				b.(router.BreakerResetter).Reset()
				ref.reset()
			}
			if got, want := b.State(), breaker.StateOf(ref.cb.State()); got != want {
				t.Fatalf("seed %d step %d (%v): adapter %v, gobreaker %v", seed, step, steps, got, want)
			}
		}
		for _, h := range inFlight {
			h.p.finish(t, h.o)
			close(h.release)
			<-h.refDone
		}
	}
}
