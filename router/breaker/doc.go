// Package breaker implements router.Breakers on github.com/sony/gobreaker/v2:
// one consecutive-failure circuit breaker per upstream instance of a route
// (closed, open for open_for, half-open with a number of probes). The
// router hands each try to Run as a router.Attempt; Run runs it inside
// gobreaker's CircuitBreaker.Execute, which does not keep the closure it
// is given, so a request through a breaker allocates nothing. Client
// cancellations are excluded (gobreaker's IsExcluded), and Reset replaces
// the gobreaker with a fresh one, whose new generation drops the outcomes
// of tries admitted before.
package breaker
