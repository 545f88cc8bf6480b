// Package breaker implements router.Breakers on github.com/sony/gobreaker/v2:
// one consecutive-failure circuit breaker per upstream instance of a route
// (closed, open for open_for, half-open with a number of probes). The
// router hands each try to Run as a router.Attempt; Run runs it inside
// gobreaker's CircuitBreaker.Execute, which does not keep the closure it
// is given, so a request through a breaker allocates nothing. Client
// cancellations are excluded (gobreaker's IsExcluded), and Reset replaces
// the gobreaker with a fresh one, whose new generation drops the outcomes
// of tries admitted before.
//
// A breaker that is closed with no failure since its last success is
// quiet: a success cannot change it, so Run sends its tries without
// asking gobreaker (which takes a lock and reads the clock twice per try)
// and tells gobreaker of their failures only. Every state change is still
// gobreaker's; its Counts leave out a quiet breaker's successes.
// TestBreakerMatchesGobreaker holds the adapter to gobreaker asked about
// every try.
package breaker
