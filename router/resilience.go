package router

import (
	"fmt"
	"strings"

	"github.com/sluicehq/sluice/configsvc"
)

// validateResilience checks a route's retries, outlier detection and
// health check.
func (r *Route) validateResilience(p string) error {
	if rp := r.Retries; rp != nil {
		if err := rp.validate(p+".retries", r.EffectiveTimeout()); err != nil {
			return err
		}
	}
	if od := r.OutlierDetection; od != nil {
		if err := od.validate(p + ".outlier_detection"); err != nil {
			return err
		}
	}
	if hc := r.HealthCheck; hc != nil {
		if err := hc.validate(p + ".health_check"); err != nil {
			return err
		}
	}
	return nil
}

// resilienceString renders a route's retries, outlier detection and health
// check for Table.String (after " retries=").
func (r *Route) resilienceString() string {
	var b strings.Builder
	if r.Retries == nil {
		b.WriteString("0")
	} else {
		b.WriteString(r.Retries.String())
	}
	if od := r.OutlierDetection; od != nil {
		fmt.Fprintf(&b, " outlier=%s", od)
	}
	if hc := r.HealthCheck; hc != nil {
		fmt.Fprintf(&b, " health_check=%q", hc.String())
	}
	return b.String()
}

// resilienceKey is the part of an instance's state key that changes with
// the route's outlier detection and health check: a change starts the
// instance's ejection and health state afresh.
func (r *Route) resilienceKey() string {
	var b strings.Builder
	if od := r.OutlierDetection; od != nil {
		b.WriteString(od.String())
	}
	b.WriteByte('|')
	if hc := r.HealthCheck; hc != nil {
		b.WriteString(hc.String())
	}
	return b.String()
}

// buildResilience compiles a route's retries, outlier detection and health
// check into rt and hands it the route's shared state. Caller holds r.mu.
func (r *Router) buildResilience(rt *routeRT, rc *Route, used usedState) {
	rt.retry = newRetryRT(rc.Retries)
	rt.res = nopMetrics{}
	if m, ok := rt.metrics.(ResilienceMetrics); ok {
		rt.res = m
	}
	sh, ok := r.shared[rc.Name]
	if !ok {
		sh = &routeShared{name: rc.Name}
		r.shared[rc.Name] = sh
	}
	used.shared[rc.Name] = true
	rt.shared = sh
	if od := rc.OutlierDetection; od != nil {
		c, base, maxT, pct, _ := od.Effective()
		rt.outlier = &outlierRT{consecutive: int64(c), base: base, max: maxT, maxPercent: pct}
	}
	rt.health = rc.OutlierDetection != nil || rc.HealthCheck != nil
}

// initHealth readies the outlier and health state of a new instance state
// and starts its health checks. Caller holds r.mu.
func (r *Router) initHealth(rt *routeRT, rc *Route, st *instState, id, addr string) {
	st.sh, st.id, st.od, st.breakerOpenFor = rt.shared, id, rt.outlier, rt.openFor
	if rc.HealthCheck != nil {
		hc := *rc.HealthCheck
		st.hc = &hc
		rt.res.Healthy(id, true) // export the series from the start
		r.startHealthCheck(st, addr)
	}
	if rt.outlier != nil {
		rt.res.Ejected(id, false)
	}
	if b, ok := st.breaker.(BreakerResetter); ok {
		st.reset = b.Reset
	}
}

// finishShared gives the route's shared state the members and metrics of
// the table being built and recomputes panic mode. Caller holds r.mu.
func (r *Router) finishShared(rt *routeRT, rc *Route) {
	sh := rt.shared
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.members = sh.members[:0]
	if rt.health {
		for _, in := range rt.insts {
			sh.members = append(sh.members, in.st)
		}
	}
	sh.metrics = rt.res
	sh.threshold = 0
	if rt.health {
		sh.threshold = DefaultPanicThreshold
		if od := rc.OutlierDetection; od != nil {
			_, _, _, _, sh.threshold = od.Effective()
		}
	}
	sh.recompute(r)
	if rt.health {
		sh.metrics.Panic(sh.panic.Load()) // export the series from the start
	}
}

// stateChanged tells Config.OnStateChange that an instance's ejection or
// health changed.
func (r *Router) stateChanged() {
	if f := r.cfg.OnStateChange; f != nil {
		f()
	}
}

// stop ends what runs for st: its health checks and its ejection timer.
// Called when st is retired or the router closed.
func (st *instState) stop() {
	if st.stopHC != nil {
		st.stopHC()
	}
	if sh := st.sh; sh != nil {
		sh.mu.Lock()
		if st.timer != nil {
			st.timer.Stop()
			st.timer = nil
		}
		sh.mu.Unlock()
	}
}

// isRetired reports whether st was dropped from the router.
func (st *instState) isRetired() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.retired
}

// stateTemplates are the parts of a route's State that change only with
// the table, made when it is built.
type stateTemplates struct {
	retries *configsvc.RetriesState
	outlier *configsvc.OutlierDetectionState
	health  *configsvc.HealthCheckState
	subsets []configsvc.SubsetState
	sticky  string
	force   string
}

// buildStateTemplates makes rt's state templates. Caller holds r.mu.
func buildStateTemplates(rt *routeRT, rc *Route) {
	t := &rt.tmpl
	if rp := rc.Retries; rp != nil {
		pct, minc := rp.EffectiveBudget()
		base, limit := rp.EffectiveBackoff()
		t.retries = &configsvc.RetriesState{Attempts: rp.Attempts, NonIdempotent: rp.NonIdempotent, BudgetPercent: pct, BudgetMinConcurrency: minc,
			Backoff: configsvc.RetryBackoffState{Base: base.String(), Max: limit.String()}}
		if rp.PerTryTimeout > 0 {
			t.retries.PerTryTimeout = rp.PerTryTimeout.String()
		}
		for _, o := range rp.EffectiveOn() {
			t.retries.On = append(t.retries.On, string(o))
		}
	}
	if od := rc.OutlierDetection; od != nil {
		c, base, maxT, pct, panic := od.Effective()
		t.outlier = &configsvc.OutlierDetectionState{Consecutive5xx: c, BaseEjectionTime: base.String(), MaxEjectionTime: maxT.String(), MaxEjectionPercent: pct, PanicThreshold: panic}
	}
	if hc := rc.HealthCheck; hc != nil {
		e := hc.Effective()
		t.health = &configsvc.HealthCheckState{Path: e.Path, Interval: e.Interval.String(), Timeout: e.Timeout.String(), HealthyThreshold: e.HealthyThreshold, UnhealthyThreshold: e.UnhealthyThreshold}
	}
	if ss := rt.subsets; ss != nil {
		for i, s := range ss.all {
			t.subsets = append(t.subsets, configsvc.SubsetState{Name: s.name, Labels: rc.Upstream.Subsets[i].Labels, Weight: s.weight, Instances: len(s.pool.insts)})
		}
		if st := rc.Upstream.Sticky; st != nil {
			t.sticky = stickyString(st)
		}
		if f := rc.Upstream.Force; f != nil {
			t.force = forceString(f)
		}
	}
}

// resilienceCounts sizes and hands out the per-route parts of a State.
type resilienceCounts struct {
	nr, no, nh int
	retries    []configsvc.RetriesState
	outliers   []configsvc.OutlierDetectionState
	healths    []configsvc.HealthCheckState
}

func (c *resilienceCounts) count(rt *routeRT) {
	if rt.tmpl.retries != nil {
		c.nr++
	}
	if rt.tmpl.outlier != nil {
		c.no++
	}
	if rt.tmpl.health != nil {
		c.nh++
	}
}

func (c *resilienceCounts) alloc() {
	c.retries = make([]configsvc.RetriesState, c.nr)
	c.outliers = make([]configsvc.OutlierDetectionState, c.no)
	c.healths = make([]configsvc.HealthCheckState, c.nh)
}

// fill sets rs's retries, outlier detection, health check, panic flag and
// subsets.
func (c *resilienceCounts) fill(rs *configsvc.RouteState, rt *routeRT) {
	t := &rt.tmpl
	if t.retries != nil {
		c.retries[0] = *t.retries
		c.retries[0].Retrying = rt.shared.budget.retrying.Load()
		rs.Retries, c.retries = &c.retries[0], c.retries[1:]
	}
	if t.outlier != nil {
		c.outliers[0] = *t.outlier
		for _, in := range rt.insts {
			if in.st.flags.Load()&outEjected != 0 {
				c.outliers[0].Ejected++
			}
		}
		rs.OutlierDetection, c.outliers = &c.outliers[0], c.outliers[1:]
	}
	if t.health != nil {
		c.healths[0] = *t.health
		rs.HealthCheck, c.healths = &c.healths[0], c.healths[1:]
	}
	rs.Panic = rt.health && rt.shared.panic.Load()
	rs.Upstream.Subsets, rs.Upstream.Sticky, rs.Upstream.Force = t.subsets, t.sticky, t.force
}

// fillInstance sets an instance's ejection and health state.
func fillInstance(is *configsvc.InstanceState, rt *routeRT, st *instState) {
	f := st.flags.Load()
	if rt.outlier != nil {
		is.Ejected = f&outEjected != 0
		is.Ejections = st.ejections.Load()
	}
	if rt.route.HealthCheck != nil {
		is.Health = "healthy"
		if f&outUnhealthy != 0 {
			is.Health = "unhealthy"
		}
	}
}

// exportInstance sets the gauges of in that rt has: breaker state,
// ejection, health.
func exportInstance(rt *routeRT, in *inst) {
	if b := in.st.breaker; b != nil {
		rt.metrics.BreakerState(in.id, b.State())
	}
	f := in.st.flags.Load()
	if rt.outlier != nil {
		rt.res.Ejected(in.id, f&outEjected != 0)
	}
	if rt.route.HealthCheck != nil {
		rt.res.Healthy(in.id, f&outUnhealthy == 0)
	}
}
