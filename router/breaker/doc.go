// Package breaker implements router.Breakers on github.com/sony/gobreaker/v2:
// one consecutive-failure circuit breaker per upstream instance of a route
// (closed, open for open_for, half-open with a number of probes). The
// router asks Allow before each try and hands the Ticket it gets to Done
// with the try's outcome, so that an engine need not block on the try in
// between; the breaker asks gobreaker's TwoStepCircuitBreaker. Client
// cancellations are excluded (gobreaker's IsExcluded), and Reset replaces
// the gobreaker with a fresh one, whose new generation drops the outcomes
// of tries admitted before.
//
// A breaker that is closed with no failure since its last success is
// quiet: a success cannot change it, so Allow admits its tries without
// asking gobreaker (which takes a lock and reads the clock twice per try,
// and allocates the function that ends it) and Done tells gobreaker of
// their failures only; a try through a quiet breaker allocates nothing.
// Every state change is still gobreaker's; its Counts leave out a quiet
// breaker's successes. TestBreakerMatchesGobreaker holds the adapter to
// gobreaker asked about every try.
package breaker
