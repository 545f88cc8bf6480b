package router_test

import (
	"testing"
	"time"

	"github.com/sluicehq/sluice/router"
	"github.com/sluicehq/sluice/router/ratelimit"
)

func TestShareOf(t *testing.T) {
	tests := []struct {
		name      string
		rl        router.RateLimit
		n         int
		wantRPS   float64
		wantBurst int
	}{
		{"alone", router.RateLimit{RPS: 100, Burst: 50}, 1, 100, 50},
		{"two", router.RateLimit{RPS: 100, Burst: 50}, 2, 50, 25},
		{"three rounds the burst up", router.RateLimit{RPS: 90, Burst: 50}, 3, 30, 17},
		{"default burst divided", router.RateLimit{RPS: 10}, 4, 2.5, 3},
		{"burst never below one", router.RateLimit{RPS: 2, Burst: 1}, 5, 0.4, 1},
		{"zero peers count as one", router.RateLimit{RPS: 10, Burst: 10}, 0, 10, 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := router.ShareOf(tc.rl, tc.n)
			if got.RPS != tc.wantRPS || got.Burst != tc.wantBurst {
				t.Fatalf("ShareOf(%+v, %d) = rps %v burst %d, want %v and %d", tc.rl, tc.n, got.RPS, got.Burst, tc.wantRPS, tc.wantBurst)
			}
		})
	}
}

// admitted counts how many of reqs requests spread evenly over d (starting
// with an empty history at t0) a limiter admits.
func admitted(l router.Limiter, t0 time.Time, d time.Duration, reqs int) int {
	n := 0
	for i := range reqs {
		if l.Allow("", t0.Add(d*time.Duration(i)/time.Duration(reqs))).OK {
			n++
		}
	}
	return n
}

func TestClusterLimitersDivideClusterScopedRates(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		scope string
		peers int
		want  int // admitted of 1000 requests in 10 s at rps 20, burst 10
	}{
		{"cluster scope alone", router.ScopeCluster, 1, 10 + 200},
		{"cluster scope with two peers", router.ScopeCluster, 2, 5 + 100},
		{"cluster scope with four peers", router.ScopeCluster, 4, 3 + 50},
		{"proxy scope ignores peers", router.ScopeProxy, 4, 10 + 200},
		{"empty scope ignores peers", "", 4, 10 + 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := router.NewClusterLimiters(ratelimit.New(ratelimit.Config{}))
			c.SetPeers(tc.peers)
			l := c.NewLimiter("orders", router.RateLimit{RPS: 20, Burst: 10, Scope: tc.scope}, nil)
			if got := admitted(l, t0, 10*time.Second, 1000); got < tc.want-1 || got > tc.want+1 {
				t.Fatalf("admitted %d of 1000 in 10 s, want %d±1", got, tc.want)
			}
		})
	}
}

func TestClusterLimitersRedivideWhenPeersChange(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 0, 0, 0, 0, time.UTC)
	c := router.NewClusterLimiters(ratelimit.New(ratelimit.Config{}))
	if c.Peers() != 1 {
		t.Fatalf("initial peers = %d, want 1", c.Peers())
	}
	l := c.NewLimiter("orders", router.RateLimit{RPS: 20, Burst: 10, Scope: router.ScopeCluster}, nil)
	first := admitted(l, t0, 10*time.Second, 1000)
	c.SetPeers(2) // a proxy joined: the same limiter now enforces half
	second := admitted(l, t0.Add(10*time.Second), 10*time.Second, 1000)
	c.SetPeers(0) // counts as 1: the other proxy left
	third := admitted(l, t0.Add(20*time.Second), 10*time.Second, 1000)
	if first < 209 || first > 211 || second < 104 || second > 106 || third < 209 || third > 211 {
		t.Fatalf("admitted %d, %d, %d in three 10 s windows (1, 2, 1 peers), want ≈210, ≈105, ≈210", first, second, third)
	}
}
