// Package ratelimit adapts golang.org/x/time/rate to router.Limiters:
// token buckets per route, global or per key (client address, header
// value), with the per-key buckets bounded in number.
package ratelimit
