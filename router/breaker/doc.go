// Package breaker implements router.Breakers: one consecutive-failure
// circuit breaker per upstream instance of a route, with gobreaker's
// semantics (closed, open for open_for, half-open with a number of probes)
// but a two-step API that allocates nothing per request: Allow returns a
// ticket (the breaker's generation) instead of gobreaker's done closure.
package breaker
