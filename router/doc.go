// Package router is Sluice's proxy: route matching, load balancing, rate
// limits, circuit breakers and debug pinning, served as an http.Handler.
package router
