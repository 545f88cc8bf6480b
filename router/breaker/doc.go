// Package breaker adapts sony/gobreaker to router.Breakers: one two-step
// circuit breaker per upstream instance of a route, tripping after a number
// of consecutive failures.
package breaker
