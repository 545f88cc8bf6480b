package breaker_test

import (
	"fmt"
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
		done, err := b.Allow()
		if err != nil {
			t.Fatalf("Allow in state %v: %v", b.State(), err)
		}
		done(o)
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
	if _, err := b.Allow(); err == nil {
		t.Fatal("open breaker allowed a request")
	}
	time.Sleep(60 * time.Millisecond)
	if b.State() != router.BreakerHalfOpen {
		t.Fatalf("state %v after open_for, want half-open", b.State())
	}
	done, err := b.Allow()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Allow(); err == nil {
		t.Fatal("half-open breaker let a second probe through; half_open_requests is 1")
	}
	done(router.Success)
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
	done, err := b.Allow()
	if err != nil {
		t.Fatal(err)
	}
	done(router.Failure)
	if b.State() != router.BreakerOpen {
		t.Fatalf("state %v after a failure, want open", b.State())
	}
	r.Reset()
	if b.State() != router.BreakerClosed {
		t.Fatalf("state %v after Reset, want closed", b.State())
	}
	late(router.Failure) // admitted before the reset: reported to the old breaker
	if b.State() != router.BreakerClosed {
		t.Fatalf("state %v after a failure admitted before Reset, want closed", b.State())
	}
	if got, want := fmt.Sprint(changes), "[closed>open open>closed]"; got != want {
		t.Fatalf("changes %s, want %s", got, want)
	}
}
