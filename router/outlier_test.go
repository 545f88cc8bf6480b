package router_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/sluicehq/sluice/configsvc/testkit"
	"github.com/sluicehq/sluice/router"
)

// TestFaultOutlierEjectionCapped: three of ten instances fail every
// request; max_ejection_percent 10 lets outlier detection eject only one
// of them, and the other two keep getting traffic.
func TestFaultOutlierEjectionCapped(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		all, addrs := startFlakies(t, 10, func(i int) bool { return i < 3 })
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
		got := requestsDuring(all[:3], func() { p.hammer(t, 100, 1, func(int) *http.Request { return p.getReq("/") }) })
		for i, got := range got {
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
	})
}

// TestFaultOutlierEjectionLeavesOneInstance: even at max_ejection_percent
// 100, the last instance of a route is never ejected.
func TestFaultOutlierEjectionLeavesOneInstance(t *testing.T) {
	forEngines(t, func(t *testing.T) {
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
	})
}

// TestFaultOutlierPanicMode: with three of four instances ejected, fewer
// than panic_threshold (50 %) are healthy, and the route balances across
// all four again; with panic mode off, only the healthy one is used.
func TestFaultOutlierPanicMode(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		for _, c := range []struct {
			name      string
			threshold int
			panic     bool
		}{
			{"threshold 50", 50, true},
			{"panic mode off", 0, false},
		} {
			t.Run(c.name, func(t *testing.T) {
				all, addrs := startFlakies(t, 4, func(i int) bool { return i > 0 })
				rt := staticRoute("panic", "/", addrs...)
				rt.OutlierDetection = &router.OutlierDetection{Consecutive5xx: 1, BaseEjectionTime: time.Minute, MaxEjectionPercent: pct(100), PanicThreshold: pct(c.threshold)}
				p := newProxy(t, router.Config{}, []router.Route{rt})
				testkit.EventuallyTrue(t, 5*time.Second, "three ejections", func() bool {
					p.get(t, "/")
					return len(ejectedIDs(t, p.r, "panic")) == 3
				})
				if got := routeState(t, p.r, "panic").Panic; got != c.panic {
					t.Fatalf("route state panic = %t, want %t", got, c.panic)
				}
				got := requestsDuring(all, func() { p.hammer(t, 40, 1, func(int) *http.Request { return p.getReq("/") }) })
				for i, got := range got {
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
	})
}

// TestOutlierEjectionEndsWithoutHealthCheck: without a health check an
// ejected instance returns when its ejection time is over.
func TestOutlierEjectionEndsWithoutHealthCheck(t *testing.T) {
	forEngines(t, func(t *testing.T) {
		a, b := startFlaky(t, "a"), startFlaky(t, "b")
		b.broken.Store(true)
		rt := staticRoute("timed", "/", a.addr, b.addr)
		rt.OutlierDetection = &router.OutlierDetection{Consecutive5xx: 1, BaseEjectionTime: 200 * time.Millisecond, PanicThreshold: pct(0)}
		p := newProxy(t, router.Config{}, []router.Route{rt})
		testkit.EventuallyTrue(t, 5*time.Second, "b ejected", func() bool {
			p.get(t, "/")
			return len(ejectedIDs(t, p.r, "timed")) == 1
		})
		b.broken.Store(false)
		testkit.EventuallyTrue(t, 5*time.Second, "b back after its ejection time", func() bool {
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
	})
}
