package router

import (
	"context"
	"errors"
	"time"

	"github.com/sluicehq/sluice/configsvc"
)

// This file holds the interfaces the router consumes and its adapters
// implement: where instances come from (configsvc.Store), rate limiters
// (router/ratelimit), circuit breakers (router/breaker) and metrics
// (router/prommetrics, including the measurements of retries, ejections
// and health checks). Interfaces belong to their consumer: the adapters
// import router, never the reverse.

// InstanceSource tells the router which instances a service has.
// configsvc.Store satisfies it.
type InstanceSource interface {
	// WatchInstances sends the full live instance list of svc now and after
	// every change until ctx ends, then closes the channel.
	WatchInstances(ctx context.Context, svc string) <-chan configsvc.InstancesEvent
}

// Decision is a Limiter's answer for one request.
type Decision struct {
	// OK is true when the request may proceed.
	OK bool
	// Remaining is how many requests the bucket still allows at once.
	Remaining int
	// RetryAfter is, when OK is false, how long until one is allowed.
	RetryAfter time.Duration
}

// Limiter is the rate limiter of one route. It must be safe for concurrent use.
type Limiter interface {
	// Allow takes one token for key at now. Key is "" for a global limit.
	Allow(key string, now time.Time) Decision
}

// Limiters makes the limiter of a route (package router/ratelimit adapts
// golang.org/x/time/rate). The router keeps a made limiter, with its
// state, for as long as the route's name and RateLimit stay the same.
type Limiters interface {
	// NewLimiter returns a limiter for rl. capHit is called whenever a
	// per-key limiter holding its cap of keys evicts a key whose bucket had
	// not refilled to make room for a new one.
	NewLimiter(route string, rl RateLimit, capHit func()) Limiter
}

// BreakerState is a circuit breaker's state.
type BreakerState int

// Breaker states, in the order of the metric values 0, 1, 2.
const (
	BreakerClosed BreakerState = iota
	BreakerHalfOpen
	BreakerOpen
)

// String returns "closed", "half-open" or "open".
func (s BreakerState) String() string {
	switch s {
	case BreakerClosed:
		return "closed"
	case BreakerHalfOpen:
		return "half-open"
	case BreakerOpen:
		return "open"
	}
	return "unknown"
}

// Outcome is what a request through a breaker came to.
type Outcome int

// Outcomes reported to a breaker.
const (
	// Success: a response below 500.
	Success Outcome = iota
	// Failure: a connection error, a timeout or a 5xx response.
	Failure
	// Ignored: the client went away first; the instance is not judged.
	Ignored
)

// Errors a Breaker's Allow returns, wrapped, when it refuses a try.
var (
	// ErrBreakerOpen: the breaker is open.
	ErrBreakerOpen = errors.New("circuit breaker is open")
	// ErrBreakerTooManyProbes: the breaker is half-open and as many probes
	// as it lets through are in flight.
	ErrBreakerTooManyProbes = errors.New("half-open circuit breaker has its probes in flight")
)

// Ticket is a Breaker's record of a try it admitted: Allow returns it and
// Done takes it back with the try's outcome. Its fields belong to the
// Breaker, which may keep words in A and B and a pointer in P; the router
// only carries it from Allow to Done, so a Breaker that keeps its record in
// the words allocates nothing.
type Ticket struct {
	A, B uint64
	P    any
}

// Breaker is the circuit breaker of one upstream instance of one route. It
// must be safe for concurrent use. A try goes through it in two steps,
// Allow before it is sent and Done when it has ended, so that an engine
// need not block on the try in between (an event loop). Allow and Done run
// on every request through it, so they should not allocate.
type Breaker interface {
	// Allow asks to send one try. When the breaker admits it, Allow returns a
	// Ticket that must be handed to Done exactly once with the try's outcome;
	// otherwise it returns an error wrapping ErrBreakerOpen (open) or
	// ErrBreakerTooManyProbes (half-open with its probes taken).
	Allow() (Ticket, error)
	// Done records the outcome of the try Allow admitted with t.
	Done(t Ticket, o Outcome)
	// State returns the current state.
	State() BreakerState
}

// BreakerResetter is implemented by a Breaker that can be closed from
// outside (router/breaker's can): when an instance's health checks pass
// after its breaker tripped, the router closes the breaker instead of
// waiting for half-open probes.
type BreakerResetter interface {
	// Reset closes the breaker and clears its counts, calling its onChange
	// when it was not closed.
	Reset()
}

// Breakers makes breakers (package router/breaker adapts sony/gobreaker).
// The router keeps a breaker, with its state, for as long as the route's
// name and CircuitBreaker settings and the instance's id and address stay
// the same.
type Breakers interface {
	// NewBreaker returns a closed breaker. onChange is called on every state
	// change, from the goroutine of the request that caused it.
	NewBreaker(name string, cb CircuitBreaker, onChange func(from, to BreakerState)) Breaker
}

// Metrics receives the proxy's measurements. Handles are asked for when a
// table is built, so that serving a request only increments them. Methods
// may be called concurrently.
type Metrics interface {
	// Route returns the handle of a route; route "" counts requests that
	// matched no route.
	Route(route string) RouteMetrics
}

// RouteMetrics measures one route.
type RouteMetrics interface {
	// Upstream returns the handle of one upstream instance; instance "" is
	// used for answers the proxy gave itself (429, 403, 503 …).
	Upstream(instance string) UpstreamMetrics
	// Observe records one request's duration.
	Observe(d time.Duration)
	// RateLimited counts one request refused by the rate limit.
	RateLimited()
	// KeysCapHit counts one key a full per-key limiter evicted before its
	// bucket had refilled (see Limiters).
	KeysCapHit()
	// UpstreamRefused counts one connection the upstream policy refused.
	UpstreamRefused()
	// BreakerState records the state of an instance's breaker.
	BreakerState(instance string, s BreakerState)
	// Forget drops what was recorded for an instance that left the route
	// (its response counts and breaker state); the router also calls it
	// when a route drops its circuit breaker, and then asks for the
	// instance's Upstream handle again.
	Forget(instance string)
}

// UpstreamMetrics counts the answers of one upstream instance of a route.
type UpstreamMetrics interface {
	// Response counts one response by its status code.
	Response(status int)
}

// ResilienceMetrics measures a route's retries, outlier ejections, health
// checks and panic mode. The RouteMetrics a Metrics returns may implement
// it (router/prommetrics does); the router records these measurements for
// the handles that do. Methods may be called concurrently.
type ResilienceMetrics interface {
	// Retried counts one retry sent to another instance.
	Retried()
	// RetryBudgetExhausted counts one retry not sent because the route's
	// retry budget was used up.
	RetryBudgetExhausted()
	// Ejected records whether outlier detection ejected an instance; true
	// also counts one ejection.
	Ejected(instance string, ejected bool)
	// Healthy records whether an instance passes its health checks (false
	// also while, with health checks, its tripped breaker waits for them).
	Healthy(instance string, healthy bool)
	// Panic records whether the route balances in panic mode.
	Panic(on bool)
}

type nopMetrics struct{}

func (nopMetrics) Route(string) RouteMetrics         { return nopMetrics{} }
func (nopMetrics) Upstream(string) UpstreamMetrics   { return nopMetrics{} }
func (nopMetrics) Observe(time.Duration)             {}
func (nopMetrics) RateLimited()                      {}
func (nopMetrics) KeysCapHit()                       {}
func (nopMetrics) UpstreamRefused()                  {}
func (nopMetrics) BreakerState(string, BreakerState) {}
func (nopMetrics) Forget(string)                     {}
func (nopMetrics) Response(int)                      {}
func (nopMetrics) Retried()                          {}
func (nopMetrics) RetryBudgetExhausted()             {}
func (nopMetrics) Ejected(string, bool)              {}
func (nopMetrics) Healthy(string, bool)              {}
func (nopMetrics) Panic(bool)                        {}
