package router_test

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc/testkit"
	"github.com/sluicehq/sluice/router"
)

// canaryProxy runs a route "shop" over service shop with instances
// stable-1, stable-2 (track=stable) and canary-1 (track=canary), split by
// subsets, and returns the proxy and a function counting which track
// answered each request.
func canaryProxy(t *testing.T, cfg router.Config, up router.Upstream) (*proxyEnv, func(*http.Response) string) {
	t.Helper()
	src := newFakeInstances()
	var list []string
	for _, id := range []string{"stable-1", "stable-2", "canary-1"} {
		b := startBackend(t, id, nil)
		track := id[:len(id)-2]
		src.lists["shop"] = append(src.lists["shop"], labelled("shop", id, b.addr, "track", track))
		list = append(list, id)
	}
	cfg.Instances = src
	up.Service = "shop"
	p := newProxy(t, cfg, []router.Route{{Name: "shop", Upstream: up}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	testkit.EventuallyTrue(t, 5*time.Second, "instances", func() bool { return len(routeState(t, p.r, "shop").Instances) == len(list) })
	track := func(resp *http.Response) string {
		b := resp.Header.Get("X-Backend")
		if len(b) < 2 {
			return ""
		}
		return b[:len(b)-2]
	}
	return p, track
}

// tracks sends n requests (req builds request i, conc at once) and counts
// the track that answered each.
func tracks(t *testing.T, p *proxyEnv, track func(*http.Response) string, n, conc int, req func(i int) *http.Request) map[string]int {
	t.Helper()
	var mu sync.Mutex
	counts := map[string]int{}
	var wg sync.WaitGroup
	next := make(chan int)
	errs := make(chan error, conc)
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				resp, err := p.client.Do(req(i))
				if err != nil {
					errs <- err
					continue
				}
				resp.Body.Close()
				k := track(resp)
				if resp.StatusCode != 200 {
					k = fmt.Sprint(resp.StatusCode)
				}
				mu.Lock()
				counts[k]++
				mu.Unlock()
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	return counts
}

var canaryStable = []router.Subset{
	{Labels: map[string]string{"track": "canary"}, Weight: 5},
	{Labels: map[string]string{"track": "stable"}, Weight: 95},
}

// TestSubsetSplitRatio: 10,000 requests split 5/95 between the canary and
// the stable subset within ±3 %, and the stable requests spread over both
// stable instances.
func TestSubsetSplitRatio(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		p, track := canaryProxy(t, router.Config{}, router.Upstream{Subsets: canaryStable})
		const n = 10000
		var mu sync.Mutex
		byInstance := map[string]int{}
		counts := tracks(t, p, func(resp *http.Response) string {
			mu.Lock()
			byInstance[resp.Header.Get("X-Backend")]++
			mu.Unlock()
			return track(resp)
		}, n, 8, func(int) *http.Request { return p.getReq("/") })
		canary := float64(counts["canary"]) / n * 100
		t.Logf("canary %.2f %%, stable %.2f %% (%v; by instance %v)", canary, float64(counts["stable"])/n*100, counts, byInstance)
		if counts["canary"]+counts["stable"] != n {
			t.Fatalf("answers %v, want %d from the two tracks", counts, n)
		}
		if canary < 5-3 || canary > 5+3 {
			t.Errorf("canary got %.2f %% of the requests, want 5 ± 3", canary)
		}
		if byInstance["stable-1"] < n/4 || byInstance["stable-2"] < n/4 {
			t.Errorf("stable requests by instance %v, want both stable instances used", byInstance)
		}
		rs := routeState(t, p.r, "shop")
		if len(rs.Upstream.Subsets) != 2 || rs.Upstream.Subsets[0].Name != "canary" || rs.Upstream.Subsets[0].Instances != 1 || rs.Upstream.Subsets[1].Instances != 2 {
			t.Errorf("subsets state %+v, want canary (1 instance) and stable (2)", rs.Upstream.Subsets)
		}
	})
}

// TestSubsetSticky: requests with the same sticky key land in the same
// subset every time, whichever key it is; different keys use both.
func TestSubsetSticky(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		half := []router.Subset{
			{Labels: map[string]string{"track": "canary"}, Weight: 50},
			{Labels: map[string]string{"track": "stable"}, Weight: 50},
		}
		for _, c := range []struct {
			name   string
			sticky router.Sticky
			cfg    router.Config
			key    func(req *http.Request, user string)
		}{
			{"header", router.Sticky{Header: "X-User"}, router.Config{}, func(req *http.Request, u string) { req.Header.Set("X-User", u) }},
			{"cookie", router.Sticky{Cookie: "session"}, router.Config{}, func(req *http.Request, u string) { req.AddCookie(&http.Cookie{Name: "session", Value: u}) }},
			{"client address", router.Sticky{ClientIP: true}, router.Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}},
				func(req *http.Request, u string) { req.Header.Set("X-Forwarded-For", "10.1.0."+u) }},
		} {
			t.Run(c.name, func(t *testing.T) {
				sticky := c.sticky
				p, track := canaryProxy(t, c.cfg, router.Upstream{Subsets: half, Sticky: &sticky})
				const users, each = 100, 5
				seen := map[string]map[string]bool{}
				var mu sync.Mutex
				tracks(t, p, func(resp *http.Response) string {
					u := resp.Request.Header.Get("X-Test-User")
					mu.Lock()
					if seen[u] == nil {
						seen[u] = map[string]bool{}
					}
					seen[u][track(resp)] = true
					mu.Unlock()
					return track(resp)
				}, users*each, 4, func(i int) *http.Request {
					u := fmt.Sprint(i % users)
					req := p.getReq("/", "X-Test-User", u)
					c.key(req, u)
					return req
				})
				per := map[string]int{}
				for u, ts := range seen {
					if len(ts) != 1 {
						t.Fatalf("user %s landed in %v, want one subset", u, ts)
					}
					for k := range ts {
						per[k]++
					}
				}
				if len(seen) != users || per["canary"] < users/5 || per["stable"] < users/5 {
					t.Errorf("%d users by subset %v, want %d users spread over both", len(seen), per, users)
				}
			})
		}
	})
}

// TestSubsetForced: the force header sends a request to the subset it
// names, even one of weight 0; a name no subset has is ignored; a forced
// subset without instances answers 503.
func TestSubsetForced(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		subsets := []router.Subset{
			{Labels: map[string]string{"track": "canary"}, Weight: 0},
			{Labels: map[string]string{"track": "stable"}, Weight: 1},
			{Name: "gone", Labels: map[string]string{"track": "retired"}, Weight: 1},
		}
		p, track := canaryProxy(t, router.Config{}, router.Upstream{Subsets: subsets, Force: &router.Force{Header: "X-Sluice-Subset", Cookie: "subset"}})
		if got := tracks(t, p, track, 50, 1, func(int) *http.Request { return p.getReq("/") }); got["stable"] != 50 {
			t.Fatalf("unforced %v, want every request on stable (canary has weight 0, gone no instance)", got)
		}
		if got := tracks(t, p, track, 50, 1, func(int) *http.Request { return p.getReq("/", "X-Sluice-Subset", "canary") }); got["canary"] != 50 {
			t.Fatalf("forced by header %v, want every request on canary", got)
		}
		got := tracks(t, p, track, 50, 1, func(int) *http.Request {
			req := p.getReq("/")
			req.AddCookie(&http.Cookie{Name: "subset", Value: "canary"})
			return req
		})
		if got["canary"] != 50 {
			t.Fatalf("forced by cookie %v, want every request on canary", got)
		}
		if got := tracks(t, p, track, 20, 1, func(int) *http.Request { return p.getReq("/", "X-Sluice-Subset", "nosuch") }); got["stable"] != 20 {
			t.Fatalf("forced to an unknown subset %v, want the normal split", got)
		}
		res := p.do(t, "GET", "/", map[string]string{"X-Sluice-Subset": "gone"})
		if code, msg, _ := errorOf(t, res); res.status != http.StatusServiceUnavailable || code != "unavailable" {
			t.Fatalf("forced to an empty subset: %d %s %q, want 503", res.status, code, msg)
		}
	})
}
