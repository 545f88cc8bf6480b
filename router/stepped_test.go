package router_test

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluicehq/sluice/router"
	"github.com/sluicehq/sluice/router/breaker"
	"github.com/sluicehq/sluice/router/ratelimit"
)

// The stepped exchange (FirstTry, TryDone, NextTry) driven directly, as an
// event-loop engine drives it: no Sender, no engine, no I/O. Static
// instances on ports nothing listens on are never dialled.

const (
	instA = "127.0.0.1:1"
	instB = "127.0.0.1:2"
	instC = "127.0.0.1:3"
)

// stepInbound is a request without headers, as an engine presents it.
type stepInbound struct{ method string }

func (s stepInbound) Method() string             { return s.method }
func (stepInbound) Host() string                 { return "step.local" }
func (stepInbound) Path() string                 { return "/x" }
func (stepInbound) Header(string) string         { return "" }
func (stepInbound) HeaderValues(string) []string { return nil }
func (stepInbound) Cookie(string) string         { return "" }
func (stepInbound) RemoteAddr() string           { return "127.0.0.1:5555" }
func (stepInbound) Context() context.Context     { return context.Background() }
func getIn() router.Inbound                      { return stepInbound{http.MethodGet} }
func methodIn(m string) router.Inbound           { return stepInbound{m} }
func newStepRouter(t *testing.T, rt router.Route) (*router.Router, *recMetrics) {
	t.Helper()
	m := newRecMetrics()
	r, err := router.New(router.Config{Limiters: ratelimit.New(ratelimit.Config{}), Breakers: breaker.New(), Metrics: m})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	if err := r.Update([]router.Route{rt}); err != nil {
		t.Fatalf("Update: %v", err)
	}
	return r, m
}

// begin begins a request on r and fails the test when the router answers
// it itself.
func begin(t *testing.T, r *router.Router, in router.Inbound) *router.Exchange {
	t.Helper()
	x, a := r.Begin(in)
	if a != nil {
		t.Fatalf("Begin answered %d %s", a.Status, a.Body)
	}
	return x
}

// firstTry is FirstTry, failing the test on an error.
func firstTry(t *testing.T, x *router.Exchange, replayable bool) router.Try {
	t.Helper()
	try, err := x.FirstTry(replayable)
	if err != nil {
		t.Fatalf("FirstTry: %v", err)
	}
	return try
}

// stepInstances returns the in-flight, request and failure counts of the
// route's instances by address.
func stepInstances(t *testing.T, r *router.Router, route string) map[string][3]int64 {
	t.Helper()
	out := map[string][3]int64{}
	for _, in := range routeState(t, r, route).Instances {
		out[in.Addr] = [3]int64{in.InFlight, int64(in.Requests), int64(in.Failures)}
	}
	return out
}

func retrying(t *testing.T, r *router.Router, route string) int64 {
	t.Helper()
	return routeState(t, r, route).Retries.Retrying
}

// TestSteppedRetryGoesToOtherInstance: a 503 the route retries asks for a
// retry with a backoff within the policy's bound; NextTry picks the other
// instance with the per-try timeout, moves the request's in-flight count
// there and holds a retry slot until its TryDone; the 200 it gets ends the
// exchange, with the counters, the metrics and the status End records.
func TestSteppedRetryGoesToOtherInstance(t *testing.T) {
	rt := staticRoute("step", "/", instA, instB)
	rt.Timeout = time.Second
	rt.Retries = &router.RetryPolicy{Attempts: 1, On: []router.RetryOn{"503"}, PerTryTimeout: 200 * time.Millisecond,
		Backoff: &router.Backoff{Base: 10 * time.Millisecond, Max: 40 * time.Millisecond}}
	r, m := newStepRouter(t, rt)
	for i := range 4 { // round robin starts on either instance
		x := begin(t, r, getIn())
		first := firstTry(t, x, true)
		if first.Addr != instA && first.Addr != instB || first.Timeout != 200*time.Millisecond {
			t.Fatalf("request %d: first try %+v, want an instance of the route and the 200ms per-try timeout", i, first)
		}
		if got := stepInstances(t, r, "step")[first.Addr][0]; got != 1 {
			t.Fatalf("request %d: %d in flight on %s during the first try, want 1", i, got, first.Addr)
		}
		wait, retry := x.TryDone(http.StatusServiceUnavailable, nil, false)
		if !retry || wait < 0 || wait > 10*time.Millisecond {
			t.Fatalf("request %d: TryDone(503) = %v, %v; want a retry after at most the 10ms first backoff", i, wait, retry)
		}
		next, ok := x.NextTry()
		if !ok {
			t.Fatalf("request %d: NextTry refused the retry", i)
		}
		if next.Addr == first.Addr || next.Timeout != 200*time.Millisecond {
			t.Fatalf("request %d: retry %+v after a first try on %s, want the other instance with the per-try timeout", i, next, first.Addr)
		}
		st := stepInstances(t, r, "step")
		if st[first.Addr][0] != 0 || st[next.Addr][0] != 1 {
			t.Fatalf("request %d: in flight %v, want the request counted on %s only", i, st, next.Addr)
		}
		if n := retrying(t, r, "step"); n != 1 {
			t.Fatalf("request %d: %d retrying while the retry is out, want 1", i, n)
		}
		if wait, retry := x.TryDone(http.StatusOK, nil, false); retry || wait != 0 {
			t.Fatalf("request %d: TryDone(200) = %v, %v; want the end", i, wait, retry)
		}
		if n := retrying(t, r, "step"); n != 0 {
			t.Fatalf("request %d: %d retrying after the retry ended, want 0", i, n)
		}
		if _, ok := x.NextTry(); ok {
			t.Fatalf("request %d: NextTry started a try TryDone did not ask for", i)
		}
		r.End(x, 0)
	}
	st := stepInstances(t, r, "step")
	if st[instA][0] != 0 || st[instB][0] != 0 || st[instA][1]+st[instB][1] != 8 || st[instA][2]+st[instB][2] != 4 {
		t.Errorf("in flight, requests, failures %v; want none in flight and 8 requests of which 4 failed", st)
	}
	if n := m.count(m.retried, "step"); n != 4 {
		t.Errorf("%d retries counted, want 4", n)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if n := m.responses["step/"+instA+"/OK"] + m.responses["step/"+instB+"/OK"]; n != 4 {
		t.Errorf("responses %v, want 4 × 200 recorded on the instances that answered", m.responses)
	}
}

// TestSteppedNoRetry: TryDone asks for no retry when the client went away
// (whatever the error; ErrorAnswer then answers 499 without a Sender), when
// the body cannot be sent again, for a method that is not idempotent, and
// when the outcome is not one the route retries on.
func TestSteppedNoRetry(t *testing.T) {
	rt := staticRoute("step", "/", instA, instB)
	rt.Retries = &router.RetryPolicy{Attempts: 2, On: []router.RetryOn{router.RetryConnectFailure, router.RetryReset, "503"}}
	r, _ := newStepRouter(t, rt)
	dial := &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}
	for _, c := range []struct {
		name       string
		in         router.Inbound
		replayable bool
		status     int
		err        error
		gone       bool
		answer     int // ErrorAnswer's status when err is not nil
	}{
		{"client gone", getIn(), true, 0, dial, true, 499},
		{"client gone on a 503", getIn(), true, http.StatusServiceUnavailable, nil, true, 0},
		{"body not replayable", getIn(), false, 0, dial, false, http.StatusBadGateway},
		{"POST", methodIn(http.MethodPost), true, http.StatusServiceUnavailable, nil, false, 0},
		{"500 not listed", getIn(), true, http.StatusInternalServerError, nil, false, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			x := begin(t, r, c.in)
			firstTry(t, x, c.replayable)
			if wait, retry := x.TryDone(c.status, c.err, c.gone); retry || wait != 0 {
				t.Fatalf("TryDone = %v, %v; want no retry", wait, retry)
			}
			if _, ok := x.NextTry(); ok {
				t.Fatal("NextTry started a retry TryDone did not ask for")
			}
			if c.err != nil {
				if a := x.ErrorAnswer(c.err); a.Status != c.answer {
					t.Errorf("ErrorAnswer %d, want %d", a.Status, c.answer)
				}
			}
			r.End(x, 0)
		})
	}
	if n := retrying(t, r, "step"); n != 0 {
		t.Errorf("%d retrying, want 0", n)
	}
}

// TestSteppedNoInstanceLeft: with two instances and two retries, the
// second retry finds every instance tried: NextTry returns false at once,
// gives its retry slot back, and the last try's 503 stands.
func TestSteppedNoInstanceLeft(t *testing.T) {
	rt := staticRoute("step", "/", instA, instB)
	rt.Retries = &router.RetryPolicy{Attempts: 2, On: []router.RetryOn{"503"}}
	r, m := newStepRouter(t, rt)
	x := begin(t, r, getIn())
	first := firstTry(t, x, true)
	if _, retry := x.TryDone(http.StatusServiceUnavailable, nil, false); !retry {
		t.Fatal("no retry after the first 503")
	}
	next, ok := x.NextTry()
	if !ok || next.Addr == first.Addr {
		t.Fatalf("NextTry = %+v, %v after a try on %s; want the other instance", next, ok, first.Addr)
	}
	if _, retry := x.TryDone(http.StatusServiceUnavailable, nil, false); !retry {
		t.Fatal("no retry asked after the second 503 (two attempts)")
	}
	if got, ok := x.NextTry(); ok {
		t.Fatalf("NextTry = %+v with both instances tried, want false", got)
	}
	if n := retrying(t, r, "step"); n != 0 {
		t.Fatalf("%d retrying after NextTry found no instance, want its slot given back", n)
	}
	st := stepInstances(t, r, "step")
	if st[next.Addr][0] != 1 || st[first.Addr][0] != 0 {
		t.Fatalf("in flight %v, want the request still counted on %s, whose answer stands", st, next.Addr)
	}
	r.End(x, 0)
	if st := stepInstances(t, r, "step"); st[next.Addr][0] != 0 {
		t.Fatalf("in flight %v after End, want 0", st)
	}
	if n := m.count(m.retried, "step"); n != 1 {
		t.Errorf("%d retries counted, want 1", n)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if n := m.responses["step/"+next.Addr+"/Service Unavailable"]; n != 1 {
		t.Errorf("responses %v, want the 503 recorded on %s", m.responses, next.Addr)
	}
}

// TestSteppedSkipsOpenBreaker: a failure through FirstTry/TryDone opens
// the instance's breaker (one failure trips it); FirstTry then skips it
// every time, and once both are open it refuses with the 503 that names
// the breakers.
func TestSteppedSkipsOpenBreaker(t *testing.T) {
	rt := staticRoute("step", "/", instA, instB)
	rt.CircuitBreaker = &router.CircuitBreaker{ConsecutiveFailures: 1, OpenFor: time.Hour}
	r, m := newStepRouter(t, rt)
	x := begin(t, r, getIn())
	broken := firstTry(t, x, false).Addr
	if _, retry := x.TryDone(http.StatusBadGateway, nil, false); retry {
		t.Fatal("retry without a retry policy")
	}
	r.End(x, 0)
	if !m.opened("step/" + broken) {
		t.Fatalf("breaker of %s not opened by its failure: %v", broken, m.breakerStates("step/"+broken))
	}
	var other string
	for i := range 6 {
		x := begin(t, r, getIn())
		try := firstTry(t, x, false)
		if try.Addr == broken {
			t.Fatalf("request %d went to %s, whose breaker is open", i, broken)
		}
		other = try.Addr
		if i < 5 {
			x.TryDone(http.StatusOK, nil, false)
		} else {
			x.TryDone(0, &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("connection refused")}, false)
		}
		r.End(x, 0)
	}
	x = begin(t, r, getIn())
	_, err := x.FirstTry(false)
	if err == nil {
		t.Fatal("FirstTry with both breakers open: no error")
	}
	a := x.ErrorAnswer(err)
	if a.Status != http.StatusServiceUnavailable || !strings.Contains(string(a.Body), "circuit breaker") {
		t.Fatalf("answer %d %s, want 503 naming the open breakers", a.Status, a.Body)
	}
	r.End(x, 0)
	if _, _, b := instanceState(t, r, "step", other); b != "open" {
		t.Fatalf("breaker of %s is %q after its failure, want open", other, b)
	}
}

// TestSteppedBudgetExhausted: with a retry budget of one retry at a time,
// a second request's retry is refused while the first one's is out, and
// counted; once that retry ended, retries go again.
func TestSteppedBudgetExhausted(t *testing.T) {
	rt := staticRoute("step", "/", instA, instB)
	rt.Retries = &router.RetryPolicy{Attempts: 1, On: []router.RetryOn{"503"}, Budget: &router.RetryBudget{Percent: 1, MinConcurrency: 1}}
	r, m := newStepRouter(t, rt)
	retryOut := func() *router.Exchange {
		t.Helper()
		x := begin(t, r, getIn())
		firstTry(t, x, true)
		if _, retry := x.TryDone(http.StatusServiceUnavailable, nil, false); !retry {
			t.Fatal("no retry after a 503")
		}
		return x
	}
	x1 := retryOut()
	if _, ok := x1.NextTry(); !ok {
		t.Fatal("the first retry was refused")
	}
	x2 := retryOut()
	if _, ok := x2.NextTry(); ok {
		t.Fatal("a second retry at once passed a budget of one")
	}
	if n := m.count(m.exhausted, "step"); n != 1 {
		t.Fatalf("%d retries counted as refused by the budget, want 1", n)
	}
	r.End(x2, 0)
	x1.TryDone(http.StatusOK, nil, false)
	r.End(x1, 0)
	x3 := retryOut()
	if _, ok := x3.NextTry(); !ok {
		t.Fatal("a retry after the first one ended was refused")
	}
	x3.TryDone(http.StatusOK, nil, false)
	r.End(x3, 0)
	if n := m.count(m.retried, "step"); n != 2 {
		t.Errorf("%d retries counted, want 2", n)
	}
}

// TestSteppedEndWithoutTryDone: a request ended while its try is out
// (the engine gave it up) gives back what the try held: its retry slot
// and its in-flight count, and its breaker counts it as a try the client
// left.
func TestSteppedEndWithoutTryDone(t *testing.T) {
	rt := staticRoute("step", "/", instA, instB)
	rt.Retries = &router.RetryPolicy{Attempts: 1, On: []router.RetryOn{"503"}}
	rt.CircuitBreaker = &router.CircuitBreaker{ConsecutiveFailures: 1, OpenFor: time.Hour}
	r, _ := newStepRouter(t, rt)
	x := begin(t, r, getIn())
	firstTry(t, x, true)
	x.TryDone(http.StatusServiceUnavailable, nil, false) // trips the first instance's breaker
	next, ok := x.NextTry()
	if !ok {
		t.Fatal("NextTry refused the retry")
	}
	r.End(x, 0)
	if n := retrying(t, r, "step"); n != 0 {
		t.Fatalf("%d retrying after End, want the abandoned retry's slot back", n)
	}
	for addr, c := range stepInstances(t, r, "step") {
		if c[0] != 0 {
			t.Fatalf("%s: %d in flight after End, want 0", addr, c[0])
		}
	}
	if _, _, b := instanceState(t, r, "step", next.Addr); b != "closed" {
		t.Fatalf("breaker of %s is %q after an abandoned try, want closed (not the instance's fault)", next.Addr, b)
	}
}

// TestSteppedAbandonedProbe: a half-open breaker's probe abandoned by End
// gives its slot back, so the next request gets to probe and closes it.
func TestSteppedAbandonedProbe(t *testing.T) {
	const openFor = 50 * time.Millisecond
	rt := staticRoute("step", "/", instA)
	rt.CircuitBreaker = &router.CircuitBreaker{ConsecutiveFailures: 1, OpenFor: openFor, HalfOpenRequests: 1}
	r, _ := newStepRouter(t, rt)
	x := begin(t, r, getIn())
	firstTry(t, x, false)
	x.TryDone(http.StatusServiceUnavailable, nil, false)
	r.End(x, 0)
	if _, _, b := instanceState(t, r, "step", instA); b != "open" {
		t.Fatalf("breaker %q after a failure, want open", b)
	}
	time.Sleep(openFor + 20*time.Millisecond)
	x = begin(t, r, getIn())
	firstTry(t, x, false)
	r.End(x, 0) // abandoned
	x = begin(t, r, getIn())
	if _, err := x.FirstTry(false); err != nil {
		t.Fatalf("probe after an abandoned one: %v, want it let through", err)
	}
	x.TryDone(http.StatusOK, nil, false)
	r.End(x, 0)
	if _, _, b := instanceState(t, r, "step", instA); b != "closed" {
		t.Fatalf("breaker %q after a successful probe, want closed", b)
	}
}

// TestSteppedAllocations: a request through the stepped exchange on a
// route with a breaker and retries allocates nothing when its first try
// succeeds.
func TestSteppedAllocations(t *testing.T) {
	rt := staticRoute("step", "/", instA, instB, instC)
	rt.CircuitBreaker = &router.CircuitBreaker{ConsecutiveFailures: 5, OpenFor: time.Hour}
	rt.Retries = &router.RetryPolicy{Attempts: 2, On: []router.RetryOn{"503"}}
	r, err := router.New(router.Config{Limiters: ratelimit.New(ratelimit.Config{}), Breakers: breaker.New()})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.Update([]router.Route{rt}); err != nil {
		t.Fatal(err)
	}
	in := getIn()
	if n := testing.AllocsPerRun(1000, func() {
		x, a := r.Begin(in)
		if a != nil {
			t.Fatalf("answer %d", a.Status)
		}
		if _, err := x.FirstTry(true); err != nil {
			t.Fatal(err)
		}
		if _, retry := x.TryDone(http.StatusOK, nil, false); retry {
			t.Fatal("retry after a 200")
		}
		r.End(x, 0)
	}); n != 0 {
		t.Fatalf("%.2f allocations per request, want 0", n)
	}
}
