package router_test

import (
	"fmt"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluicehq/sluice/router"
)

// flaky is a backend whose requests and health checks fail while broken.
type flaky struct {
	*backend
	broken   atomic.Bool
	hcBroken atomic.Bool
	reqs     atomic.Int64 // requests other than health checks
	checks   atomic.Int64 // health checks
}

func startFlaky(t *testing.T, name string) *flaky {
	t.Helper()
	f := &flaky{}
	f.backend = startBackend(t, name, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			f.checks.Add(1)
			if f.hcBroken.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
			return
		}
		f.reqs.Add(1)
		if f.broken.Load() {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		_, _ = w.Write([]byte(name))
	})
	return f
}

func pct(n int) *int { return &n }

// ejectedIDs returns the ids of the route's ejected instances.
func ejectedIDs(t *testing.T, r *router.Router, route string) []string {
	t.Helper()
	var out []string
	for _, in := range routeState(t, r, route).Instances {
		if in.Ejected {
			out = append(out, in.ID)
		}
	}
	return out
}

// TestFaultOutlierEjectionCapped: three of ten instances fail every
// request; max_ejection_percent 10 lets outlier detection eject only one
// of them, and the other two keep getting traffic.
func TestFaultOutlierEjectionCapped(t *testing.T) {
	var all []*flaky
	var addrs []string
	for i := range 10 {
		f := startFlaky(t, fmt.Sprintf("b%d", i))
		f.broken.Store(i < 3)
		all = append(all, f)
		addrs = append(addrs, f.addr)
	}
	rt := staticRoute("capped", "/", addrs...)
	rt.OutlierDetection = &router.OutlierDetection{Consecutive5xx: 2, BaseEjectionTime: time.Minute, MaxEjectionPercent: pct(10), PanicThreshold: pct(0)}
	p := newProxy(t, router.Config{}, []router.Route{rt})
	p.hammer(t, 200, 1, func(int) *http.Request { return p.getReq("/") })
	ejected := ejectedIDs(t, p.r, "capped")
	if len(ejected) != 1 {
		t.Fatalf("ejected %v, want exactly 1 of the 3 failing instances (10 %% of 10)", ejected)
	}
	if od := routeState(t, p.r, "capped").OutlierDetection; od == nil || od.Ejected != 1 || od.MaxEjectionPercent != 10 {
		t.Errorf("outlier state %+v, want 1 ejected, max 10 %%", od)
	}
	before := make([]int64, 3)
	for i := range 3 {
		before[i] = all[i].reqs.Load()
	}
	p.hammer(t, 100, 1, func(int) *http.Request { return p.getReq("/") })
	for i := range 3 {
		got := all[i].reqs.Load() - before[i]
		if all[i].addr == ejected[0] {
			if got != 0 {
				t.Errorf("ejected %s got %d requests", all[i].addr, got)
			}
		} else if got == 0 {
			t.Errorf("failing %s got no request: the cap must keep it in", all[i].addr)
		}
	}
	if on, _ := p.metrics.last(p.metrics.ejected, "capped/"+ejected[0]); !on {
		t.Errorf("ejection of %s not in the metrics", ejected[0])
	}
}

// TestFaultOutlierEjectionLeavesOneInstance: even at max_ejection_percent
// 100, the last instance of a route is never ejected.
func TestFaultOutlierEjectionLeavesOneInstance(t *testing.T) {
	a, b := startFlaky(t, "a"), startFlaky(t, "b")
	a.broken.Store(true)
	b.broken.Store(true)
	rt := staticRoute("last", "/", a.addr, b.addr)
	rt.OutlierDetection = &router.OutlierDetection{Consecutive5xx: 1, BaseEjectionTime: time.Minute, MaxEjectionPercent: pct(100), PanicThreshold: pct(0)}
	p := newProxy(t, router.Config{}, []router.Route{rt})
	statuses := p.hammer(t, 50, 1, func(int) *http.Request { return p.getReq("/") })
	if statuses[http.StatusInternalServerError] != 50 {
		t.Fatalf("statuses %v, want every request answered by an instance (500), none refused", statuses)
	}
	if ejected := ejectedIDs(t, p.r, "last"); len(ejected) != 1 {
		t.Fatalf("ejected %v, want 1 of 2: one instance always stays", ejected)
	}
}

// TestFaultOutlierPanicMode: with three of four instances ejected, fewer
// than panic_threshold (50 %) are healthy, and the route balances across
// all four again; with panic mode off, only the healthy one is used.
func TestFaultOutlierPanicMode(t *testing.T) {
	for _, c := range []struct {
		name      string
		threshold int
		panic     bool
	}{
		{"threshold 50", 50, true},
		{"panic mode off", 0, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			var all []*flaky
			var addrs []string
			for i := range 4 {
				f := startFlaky(t, fmt.Sprintf("b%d", i))
				f.broken.Store(i > 0)
				all = append(all, f)
				addrs = append(addrs, f.addr)
			}
			rt := staticRoute("panic", "/", addrs...)
			rt.OutlierDetection = &router.OutlierDetection{Consecutive5xx: 1, BaseEjectionTime: time.Minute, MaxEjectionPercent: pct(100), PanicThreshold: pct(c.threshold)}
			p := newProxy(t, router.Config{}, []router.Route{rt})
			eventually(t, "three ejections", func() bool {
				p.get(t, "/")
				return len(ejectedIDs(t, p.r, "panic")) == 3
			})
			if got := routeState(t, p.r, "panic").Panic; got != c.panic {
				t.Fatalf("route state panic = %t, want %t", got, c.panic)
			}
			before := make([]int64, 4)
			for i := range 4 {
				before[i] = all[i].reqs.Load()
			}
			p.hammer(t, 40, 1, func(int) *http.Request { return p.getReq("/") })
			for i := range 4 {
				got := all[i].reqs.Load() - before[i]
				switch {
				case c.panic && (got < 5 || got > 15):
					t.Errorf("panic mode: %s got %d of 40 requests, want about 10", all[i].name, got)
				case !c.panic && i == 0 && got != 40:
					t.Errorf("no panic mode: the healthy instance got %d of 40 requests, want all", got)
				}
			}
			if on, ok := p.metrics.last(p.metrics.panic, "panic"); on != c.panic || !ok {
				t.Errorf("panic metric %t (set: %t), want %t", on, ok, c.panic)
			}
		})
	}
}

// TestOutlierEjectionEndsWithoutHealthCheck: without a health check an
// ejected instance returns when its ejection time is over.
func TestOutlierEjectionEndsWithoutHealthCheck(t *testing.T) {
	a, b := startFlaky(t, "a"), startFlaky(t, "b")
	b.broken.Store(true)
	rt := staticRoute("timed", "/", a.addr, b.addr)
	rt.OutlierDetection = &router.OutlierDetection{Consecutive5xx: 1, BaseEjectionTime: 200 * time.Millisecond, PanicThreshold: pct(0)}
	p := newProxy(t, router.Config{}, []router.Route{rt})
	eventually(t, "b ejected", func() bool {
		p.get(t, "/")
		return len(ejectedIDs(t, p.r, "timed")) == 1
	})
	b.broken.Store(false)
	eventually(t, "b back after its ejection time", func() bool {
		p.get(t, "/")
		return len(ejectedIDs(t, p.r, "timed")) == 0
	})
	n := b.reqs.Load()
	p.hammer(t, 10, 1, func(int) *http.Request { return p.getReq("/") })
	if b.reqs.Load() == n {
		t.Error("b is back, but gets no request")
	}
	if in := routeState(t, p.r, "timed").Instances; in[0].Ejections+in[1].Ejections != 1 {
		t.Errorf("instances %+v, want one ejection counted", in)
	}
}
