// Package router is Sluice's proxy: route matching, load balancing over
// instances or weighted label subsets (canary), rate limits, circuit
// breakers, retries held to a retry budget, outlier ejection, active
// health checks and debug pinning, served as an http.Handler.
package router
