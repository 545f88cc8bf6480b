package router

import (
	"math"
	"sync/atomic"
	"time"
)

// Rate limit scopes (RateLimit.Scope).
const (
	// ScopeProxy: each proxy enforces the route's rate on its own (the
	// default, also meant by an empty Scope).
	ScopeProxy = "proxy"
	// ScopeCluster: the live proxies share the route's rate; each enforces
	// its share, RPS/N and Burst/N (rounded up, at least 1) for N proxies.
	ScopeCluster = "cluster"
)

// ClusterLimiters is a Limiters that shares the budget of cluster-scoped
// routes (RateLimit.Scope "cluster") among the live proxies: with N peers,
// each proxy's limiter for such a route admits RPS/N per second with a
// burst of Burst/N. Routes of any other scope get Inner's limiters
// unchanged.
//
// The peer count comes from SetPeers (package proxyserver feeds it from the
// proxies registered in the store). A limiter re-divides its budget on the
// first request after the count changed; the new share starts with a full
// bucket, so a membership change may let through up to one share's burst
// more than the rate. Proxies that see different peer counts for a moment
// (while a join or leave propagates) admit up to one share too much or too
// little in that moment; with an even load across proxies the cluster
// admits the route's rate.
//
// ClusterLimiters is safe for concurrent use.
type ClusterLimiters struct {
	inner Limiters
	peers atomic.Int64
}

// NewClusterLimiters returns a ClusterLimiters over inner with a peer count
// of 1 (this proxy alone) until SetPeers says otherwise.
func NewClusterLimiters(inner Limiters) *ClusterLimiters {
	c := &ClusterLimiters{inner: inner}
	c.peers.Store(1)
	return c
}

var _ Limiters = (*ClusterLimiters)(nil)

// SetPeers sets the number of live proxies sharing cluster-scoped rates,
// this one included; values below 1 count as 1.
func (c *ClusterLimiters) SetPeers(n int) {
	if n < 1 {
		n = 1
	}
	c.peers.Store(int64(n))
}

// Peers returns the peer count in force.
func (c *ClusterLimiters) Peers() int { return int(c.peers.Load()) }

// NewLimiter returns Inner's limiter for rl, divided among the peers when
// rl.Scope is ScopeCluster.
func (c *ClusterLimiters) NewLimiter(route string, rl RateLimit, capHit func()) Limiter {
	if rl.Scope != ScopeCluster {
		return c.inner.NewLimiter(route, rl, capHit)
	}
	l := &clusterLimiter{c: c, route: route, rl: rl, capHit: capHit}
	l.cur.Store(l.share(c.Peers()))
	return l
}

// ShareOf returns the part of rl one of n proxies enforces: RPS/n and
// EffectiveBurst/n rounded up (at least 1). n below 1 counts as 1.
func ShareOf(rl RateLimit, n int) RateLimit {
	if n < 1 {
		n = 1
	}
	burst := int(math.Ceil(float64(rl.EffectiveBurst()) / float64(n)))
	if burst < 1 {
		burst = 1
	}
	rl.RPS /= float64(n)
	rl.Burst = burst
	return rl
}

type clusterLimiter struct {
	c      *ClusterLimiters
	route  string
	rl     RateLimit
	capHit func()
	cur    atomic.Pointer[clusterShare]
}

// clusterShare is the limiter of one peer count.
type clusterShare struct {
	peers int
	lim   Limiter
}

func (l *clusterLimiter) share(n int) *clusterShare {
	return &clusterShare{peers: n, lim: l.c.inner.NewLimiter(l.route, ShareOf(l.rl, n), l.capHit)}
}

func (l *clusterLimiter) Allow(key string, now time.Time) Decision {
	s := l.cur.Load()
	if n := l.c.Peers(); s.peers != n {
		next := l.share(n)
		if l.cur.CompareAndSwap(s, next) {
			s = next
		} else {
			s = l.cur.Load()
		}
	}
	return s.lim.Allow(key, now)
}
