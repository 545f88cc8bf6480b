package router

import (
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults and bounds of outlier detection (Envoy's names and defaults).
const (
	// DefaultConsecutive5xx is OutlierDetection.Consecutive5xx when 0.
	DefaultConsecutive5xx = 5
	// DefaultBaseEjectionTime is OutlierDetection.BaseEjectionTime when 0.
	DefaultBaseEjectionTime = 30 * time.Second
	// DefaultMaxEjectionTime is OutlierDetection.MaxEjectionTime when 0.
	DefaultMaxEjectionTime = 300 * time.Second
	// DefaultMaxEjectionPercent is OutlierDetection.MaxEjectionPercent when nil.
	DefaultMaxEjectionPercent = 10
	// DefaultPanicThreshold is OutlierDetection.PanicThreshold when nil,
	// and the panic threshold of a route with a health check and no
	// outlier detection.
	DefaultPanicThreshold = 50
)

// OutlierDetection ejects, per route, an upstream instance that failed
// Consecutive5xx times in a row (5xx answers, and connection errors,
// resets and timeouts, which the proxy answers 502/504): it gets no
// requests for BaseEjectionTime × the times it was ejected (at most
// MaxEjectionTime; the multiplier drops by one for every BaseEjectionTime
// the instance stayed in). Without a HealthCheck the instance returns when
// that time is up; with one it returns only once that time is up and its
// active health checks pass (passive checks alone never bring it back).
//
// Guard rails: at most MaxEjectionPercent of the route's instances are
// ejected at once, and never all of them (at least one ejection is allowed
// when there are two instances or more); and when fewer than
// PanicThreshold % of the route's instances are healthy (not ejected, not
// failing health checks), the route balances across all of them, as if
// none were ejected (panic mode). Circuit breakers still apply in panic
// mode. Pinned requests do not count. Ejection times run on the wall
// clock, like a breaker's open_for (Config.Now does not move them).
type OutlierDetection struct {
	// Consecutive5xx is the failures in a row that eject; 0 means
	// DefaultConsecutive5xx.
	Consecutive5xx int
	// BaseEjectionTime is the first ejection's length; 0 means
	// DefaultBaseEjectionTime.
	BaseEjectionTime time.Duration
	// MaxEjectionTime caps an ejection's length; 0 means
	// DefaultMaxEjectionTime (at least BaseEjectionTime).
	MaxEjectionTime time.Duration
	// MaxEjectionPercent caps the ejected share of the route's instances
	// (0..100); nil means DefaultMaxEjectionPercent.
	MaxEjectionPercent *int
	// PanicThreshold is the share of healthy instances (0..100) below
	// which the route balances across all instances; nil means
	// DefaultPanicThreshold, 0 turns panic mode off.
	PanicThreshold *int
}

// Effective returns the settings with every default applied.
func (o OutlierDetection) Effective() (consecutive int, base, maxTime time.Duration, maxPercent, panicThreshold int) {
	consecutive, base, maxTime = o.Consecutive5xx, o.BaseEjectionTime, o.MaxEjectionTime
	maxPercent, panicThreshold = DefaultMaxEjectionPercent, DefaultPanicThreshold
	if consecutive <= 0 {
		consecutive = DefaultConsecutive5xx
	}
	if base <= 0 {
		base = DefaultBaseEjectionTime
	}
	if maxTime <= 0 {
		maxTime = DefaultMaxEjectionTime
	}
	maxTime = max(maxTime, base)
	if o.MaxEjectionPercent != nil {
		maxPercent = *o.MaxEjectionPercent
	}
	if o.PanicThreshold != nil {
		panicThreshold = *o.PanicThreshold
	}
	return consecutive, base, maxTime, maxPercent, panicThreshold
}

func (o *OutlierDetection) validate(path string) error {
	if o.Consecutive5xx < 0 || o.Consecutive5xx > 1e6 {
		return fieldErr(path+".consecutive_5xx", strconv.Itoa(o.Consecutive5xx), "must be between 1 and 1000000")
	}
	if o.BaseEjectionTime < 0 || o.BaseEjectionTime > 24*time.Hour {
		return fieldErr(path+".base_ejection_time", o.BaseEjectionTime.String(), "must be between 0 and 24h")
	}
	if o.MaxEjectionTime < 0 || o.MaxEjectionTime > 24*time.Hour {
		return fieldErr(path+".max_ejection_time", o.MaxEjectionTime.String(), "must be between 0 and 24h")
	}
	if p := o.MaxEjectionPercent; p != nil && (*p < 0 || *p > 100) {
		return fieldErr(path+".max_ejection_percent", strconv.Itoa(*p), "must be between 0 and 100")
	}
	if p := o.PanicThreshold; p != nil && (*p < 0 || *p > 100) {
		return fieldErr(path+".panic_threshold", strconv.Itoa(*p), "must be between 0 and 100")
	}
	return nil
}

// String renders the settings for Table.String, defaults applied.
func (o OutlierDetection) String() string {
	c, base, maxT, pct, panic := o.Effective()
	return fmt.Sprintf("%d/%s/%s/%d%%/panic<%d%%", c, base, maxT, pct, panic)
}

// outlierRT is a route's OutlierDetection compiled.
type outlierRT struct {
	consecutive int64
	base, max   time.Duration
	maxPercent  int
}

// Flags of instHealth.flags: why an instance is out of the balancer.
const (
	outEjected   uint32 = 1 << iota // outlier detection ejected it
	outUnhealthy                    // active health checks fail, or (with health checks) its breaker tripped
)

// instHealth is the outlier-detection and health-check state of one
// upstream instance of one route (part of instState, so it outlives table
// swaps while the route's name, resilience settings and the instance's id
// and address stay). Transitions happen under sh.mu; requests only read
// flags.
type instHealth struct {
	flags     atomic.Uint32 // outEjected | outUnhealthy; 0: in
	consec    atomic.Int64  // failures in a row
	ejections atomic.Uint64 // times ejected
	// heldUntil (unix ns) is when the ejection, or with health checks the
	// breaker's open_for, ends; a health check cannot bring the instance
	// back earlier.
	heldUntil atomic.Int64
	// gen counts passive events (ejection, breaker trip), so that a health
	// check in flight when one happened does not count toward the return.
	gen atomic.Uint64

	// Set once when the state is made.
	sh    *routeShared
	id    string
	od    *outlierRT
	hc    *HealthCheck
	reset func() // closes the instance's breaker; nil without one
	// breakerOpenFor is the route's open_for: with health checks, the
	// earliest return of an instance whose breaker tripped.
	breakerOpenFor time.Duration

	// Guarded by sh.mu.
	mult     int         // ejection multiplier
	lastBack time.Time   // when the last ejection ended
	timer    *time.Timer // ends the ejection (routes without health checks)
}

// observe counts one try's outcome toward outlier detection, ejecting the
// instance after od.consecutive failures in a row.
func (r *Router) observe(rt *routeRT, st *instState, failed bool) {
	if !failed {
		if st.consec.Load() != 0 {
			st.consec.Store(0)
		}
		return
	}
	if st.consec.Add(1) >= rt.outlier.consecutive && st.flags.Load()&outEjected == 0 {
		r.eject(st)
	}
}

// eject takes st out of the balancer unless the route's ejection cap is
// reached (then the next failure asks again).
func (r *Router) eject(st *instState) {
	sh, od := st.sh, st.od
	now := time.Now()
	sh.mu.Lock()
	if st.flags.Load()&outEjected != 0 || st.isRetired() {
		sh.mu.Unlock()
		return
	}
	n, ejected := len(sh.members), 0
	for _, m := range sh.members {
		if m.flags.Load()&outEjected != 0 {
			ejected++
		}
	}
	if ejected >= maxEjected(n, od.maxPercent) {
		st.consec.Store(0) // ask again after as many failures, not on every one
		sh.mu.Unlock()
		r.log.Debug("outlier ejection capped", "route", sh.name, "instance", st.id, "ejected", ejected, "instances", n, "max_ejection_percent", od.maxPercent)
		return
	}
	if st.mult > 0 && !st.lastBack.IsZero() {
		st.mult = max(0, st.mult-int(now.Sub(st.lastBack)/od.base))
	}
	st.mult++
	d := min(od.base*time.Duration(st.mult), od.max)
	st.ejections.Add(1)
	st.heldUntil.Store(max(st.heldUntil.Load(), now.Add(d).UnixNano()))
	st.flags.Or(outEjected)
	st.consec.Store(0)
	if st.hc != nil {
		st.gen.Add(1) // only health checks from now on bring it back
	} else {
		st.timer = time.AfterFunc(d, func() { r.restore(st, "ejection time over") })
	}
	sh.recompute(r)
	st.record(func() { sh.metrics.Ejected(st.id, true) })
	sh.mu.Unlock()
	r.log.Warn("outlier ejected", "route", sh.name, "instance", st.id, "for", d, "times", st.mult)
	r.stateChanged()
}

// record runs f, which updates st's metric series, unless st is retired:
// its series may be deleted, or taken over by its successor, by then.
func (st *instState) record(f func()) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.retired {
		f()
	}
}

// maxEjected is how many of n instances may be ejected at once: percent of
// them, at least one, and never all.
func maxEjected(n, percent int) int {
	return min(n-1, max(1, n*percent/100))
}

// markUnhealthy takes st out of the balancer until its health checks pass:
// they failed (passive false), or its breaker tripped (passive true; the
// earliest return is then the breaker's open_for from now).
func (r *Router) markUnhealthy(st *instState, passive bool, hold time.Duration) {
	sh := st.sh
	sh.mu.Lock()
	if st.isRetired() {
		sh.mu.Unlock()
		return
	}
	if passive {
		st.gen.Add(1)
		st.heldUntil.Store(max(st.heldUntil.Load(), time.Now().Add(hold).UnixNano()))
	}
	old := st.flags.Or(outUnhealthy)
	if old&outUnhealthy == 0 {
		sh.recompute(r)
		st.record(func() { sh.metrics.Healthy(st.id, false) })
	}
	sh.mu.Unlock()
	if old&outUnhealthy == 0 {
		what := "failing health checks"
		if passive {
			what = "breaker open"
		}
		r.log.Warn("instance out until its health checks pass", "route", sh.name, "instance", st.id, "reason", what)
		r.stateChanged()
	}
}

// restore brings st back into the balancer: its ejection time is over (no
// health check), or its health checks passed (its breaker is then closed
// too).
func (r *Router) restore(st *instState, why string) {
	sh := st.sh
	sh.mu.Lock()
	if st.isRetired() {
		sh.mu.Unlock()
		return
	}
	was := st.flags.Swap(0)
	if was == 0 {
		sh.mu.Unlock()
		return
	}
	if was&outEjected != 0 {
		st.lastBack = time.Now()
		if st.timer != nil {
			st.timer.Stop()
			st.timer = nil
		}
	}
	st.consec.Store(0)
	sh.recompute(r)
	st.record(func() {
		if was&outEjected != 0 {
			sh.metrics.Ejected(st.id, false)
		}
		if was&outUnhealthy != 0 {
			sh.metrics.Healthy(st.id, true)
		}
	})
	sh.mu.Unlock()
	if st.hc != nil && st.reset != nil {
		st.reset() // outside sh.mu: a breaker calls back under its own lock
	}
	r.log.Info("instance back in the balancer", "route", sh.name, "instance", st.id, "reason", why)
	r.stateChanged()
}

// routeShared is the state of a route that outlives table swaps for as
// long as a route of that name exists: its retry budget, and the member
// list that ejection caps and panic mode count.
type routeShared struct {
	name   string
	budget retryBudget
	panic  atomic.Bool // fewer healthy instances than the panic threshold

	mu        sync.Mutex
	members   []*instState      // the route's instances in the table in force
	threshold int               // panic threshold, percent; 0: never
	metrics   ResilienceMetrics // of the table in force
}

// recompute sets the panic flag from the members' flags. Caller holds mu.
func (sh *routeShared) recompute(r *Router) {
	n, healthy := len(sh.members), 0
	for _, m := range sh.members {
		if m.flags.Load() == 0 {
			healthy++
		}
	}
	on := n > 0 && healthy*100 < sh.threshold*n
	if sh.panic.Swap(on) != on {
		sh.metrics.Panic(on)
		if on {
			r.log.Warn("panic mode: too few healthy instances, balancing across all", "route", sh.name, "healthy", healthy, "instances", n, "panic_threshold", sh.threshold)
		} else {
			r.log.Info("panic mode over", "route", sh.name, "healthy", healthy, "instances", n)
		}
	}
}
