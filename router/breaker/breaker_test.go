package breaker_test

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/router"
	"github.com/sluicehq/sluice/router/breaker"
)

func TestBreakerLifecycle(t *testing.T) {
	var changes []string
	b := breaker.New().NewBreaker("r/i", router.CircuitBreaker{ConsecutiveFailures: 2, OpenFor: 50 * time.Millisecond, HalfOpenRequests: 1},
		func(from, to router.BreakerState) { changes = append(changes, from.String()+">"+to.String()) })
	report := func(o router.Outcome) {
		t.Helper()
		ticket, err := b.Allow()
		if err != nil {
			t.Fatalf("Allow in state %v: %v", b.State(), err)
		}
		b.Done(ticket, o)
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
	if _, err := b.Allow(); !errors.Is(err, breaker.ErrOpen) {
		t.Fatalf("open breaker's Allow: %v, want ErrOpen", err)
	}
	time.Sleep(60 * time.Millisecond)
	if b.State() != router.BreakerHalfOpen {
		t.Fatalf("state %v after open_for, want half-open", b.State())
	}
	ticket, err := b.Allow()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Allow(); !errors.Is(err, breaker.ErrTooManyProbes) {
		t.Fatalf("half-open breaker's second probe: %v, want ErrTooManyProbes; half_open_requests is 1", err)
	}
	b.Done(ticket, router.Success)
	if b.State() != router.BreakerClosed {
		t.Fatalf("state %v after a successful probe, want closed", b.State())
	}
	want := []string{"closed>open", "open>half-open", "half-open>closed"}
	if len(changes) != len(want) {
		t.Fatalf("changes %v, want %v", changes, want)
	}
	for i := range want {
		if changes[i] != want[i] {
			t.Fatalf("changes %v, want %v", changes, want)
		}
	}
}

// TestBreakerReset: Reset closes an open breaker at once, reports the
// change, and outcomes of requests the old breaker admitted no longer move
// it.
func TestBreakerReset(t *testing.T) {
	var changes []string
	b := breaker.New().NewBreaker("r/i", router.CircuitBreaker{ConsecutiveFailures: 1, OpenFor: time.Hour},
		func(from, to router.BreakerState) { changes = append(changes, from.String()+">"+to.String()) })
	r, ok := b.(router.BreakerResetter)
	if !ok {
		t.Fatal("breaker does not implement router.BreakerResetter")
	}
	r.Reset() // closed: nothing to do
	late, err := b.Allow()
	if err != nil {
		t.Fatal(err)
	}
	ticket, err := b.Allow()
	if err != nil {
		t.Fatal(err)
	}
	b.Done(ticket, router.Failure)
	if b.State() != router.BreakerOpen {
		t.Fatalf("state %v after a failure, want open", b.State())
	}
	r.Reset()
	if b.State() != router.BreakerClosed {
		t.Fatalf("state %v after Reset, want closed", b.State())
	}
	b.Done(late, router.Failure) // admitted before the reset: dropped
	if b.State() != router.BreakerClosed {
		t.Fatalf("state %v after a failure admitted before Reset, want closed", b.State())
	}
	if got, want := fmt.Sprint(changes), "[closed>open open>closed]"; got != want {
		t.Fatalf("changes %s, want %s", got, want)
	}
}

// TestBreakerHalfOpenProbes: with a fake clock, an open breaker half-opens
// exactly when open_for has passed, lets half_open_requests probes through
// (an ignored probe gives its slot back), closes after as many successes,
// and a failing probe opens it again for another open_for.
func TestBreakerHalfOpenProbes(t *testing.T) {
	now := time.Unix(1000, 0)
	f := &breaker.Breakers{Now: func() time.Time { return now }}
	b := f.NewBreaker("r/i", router.CircuitBreaker{ConsecutiveFailures: 1, OpenFor: time.Minute, HalfOpenRequests: 2}, nil)
	allow := func() router.BreakerTicket {
		t.Helper()
		ticket, err := b.Allow()
		if err != nil {
			t.Fatalf("Allow in state %v: %v", b.State(), err)
		}
		return ticket
	}
	b.Done(allow(), router.Failure)
	now = now.Add(time.Minute - time.Nanosecond)
	if _, err := b.Allow(); !errors.Is(err, breaker.ErrOpen) {
		t.Fatalf("Allow a nanosecond before open_for: %v, want ErrOpen", err)
	}
	now = now.Add(time.Nanosecond)
	p1, p2 := allow(), allow()
	if _, err := b.Allow(); !errors.Is(err, breaker.ErrTooManyProbes) {
		t.Fatalf("third probe: %v, want ErrTooManyProbes", err)
	}
	b.Done(p2, router.Ignored) // gives its slot back
	p3 := allow()
	b.Done(p1, router.Success)
	if b.State() != router.BreakerHalfOpen {
		t.Fatalf("state %v after 1 of 2 successful probes, want half-open", b.State())
	}
	b.Done(p3, router.Failure)
	if b.State() != router.BreakerOpen {
		t.Fatalf("state %v after a failed probe, want open", b.State())
	}
	now = now.Add(time.Minute)
	p1, p2 = allow(), allow()
	b.Done(p1, router.Success)
	b.Done(p2, router.Success)
	if b.State() != router.BreakerClosed {
		t.Fatalf("state %v after 2 successful probes, want closed", b.State())
	}
}

// TestBreakerAllocations: a request through a breaker, closed or
// half-open, allocates nothing.
func TestBreakerAllocations(t *testing.T) {
	b := breaker.New().NewBreaker("r/i", router.CircuitBreaker{ConsecutiveFailures: 3}, func(from, to router.BreakerState) {})
	n := testing.AllocsPerRun(1000, func() {
		ticket, err := b.Allow()
		if err != nil {
			t.Fatal(err)
		}
		b.Done(ticket, router.Success)
	})
	if n != 0 {
		t.Fatalf("%.2f allocations per Allow and Done, want 0", n)
	}
}

// TestBreakerConcurrent: requests racing through a breaker trip it once,
// and a half-open breaker admits exactly half_open_requests of the probes
// that race for it.
func TestBreakerConcurrent(t *testing.T) {
	now := time.Unix(1000, 0)
	var mu sync.Mutex
	var changes []string
	f := &breaker.Breakers{Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }}
	b := f.NewBreaker("r/i", router.CircuitBreaker{ConsecutiveFailures: 5, OpenFor: time.Minute, HalfOpenRequests: 3},
		func(from, to router.BreakerState) { changes = append(changes, from.String()+">"+to.String()) }) // under the breaker's lock
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				if ticket, err := b.Allow(); err == nil {
					b.Done(ticket, router.Failure)
				}
			}
		})
	}
	wg.Wait()
	if got, want := fmt.Sprint(changes), "[closed>open]"; got != want {
		t.Fatalf("changes %s, want %s", got, want)
	}
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	var admitted atomic.Int32
	for range 8 {
		wg.Go(func() {
			if _, err := b.Allow(); err == nil {
				admitted.Add(1)
			}
		})
	}
	wg.Wait()
	if got := admitted.Load(); got != 3 {
		t.Fatalf("%d probes admitted, want 3", got)
	}
}
