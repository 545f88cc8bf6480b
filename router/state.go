package router

import "github.com/sluicehq/sluice/configsvc"

// State returns a snapshot of the live route table: every route with its
// rate limit (and refusal count), retries, outlier detection, health check
// and subsets, and every upstream instance with its breaker, ejection and
// health state and counters. It takes no lock that requests take and
// allocates seven slices (routes, instances, rate limits, breakers,
// retries, outlier detections, health checks), however many routes and
// instances there are; it is safe to call
// concurrently with requests and updates. Asking a breaker its state may
// move it from open to half-open when its open_for has passed, as a
// request would.
func (r *Router) State() configsvc.TableState {
	s := r.snap.Load()
	n, nrl, ncb := 0, 0, 0
	var res resilienceCounts
	for _, rt := range s.routes {
		n += len(rt.insts)
		if rt.route.RateLimit != nil {
			nrl++
		}
		if rt.route.CircuitBreaker != nil {
			ncb++
		}
		res.count(rt)
	}
	res.alloc()
	routes := make([]configsvc.RouteState, len(s.routes))
	insts := make([]configsvc.InstanceState, n)
	rls := make([]configsvc.RateLimitState, nrl)
	cbs := make([]configsvc.CircuitBreakerState, ncb)
	for i, rt := range s.routes {
		rc := rt.route
		rs := &routes[i]
		rs.Name = rc.Name
		rs.Match = configsvc.MatchState{Hosts: rc.Match.Hosts, PathPrefix: rc.Match.PathPrefix, Methods: rc.Match.Methods, Headers: rc.Match.Headers}
		if rs.Match.PathPrefix == "" {
			rs.Match.PathPrefix = "/"
		}
		rs.Upstream = configsvc.UpstreamState{Service: rc.Upstream.Service, Static: rc.Upstream.Static, Balancer: string(rc.Upstream.EffectiveBalancer())}
		res.fill(rs, rt)
		if rl := rc.RateLimit; rl != nil {
			key := rl.Key
			if key == "" {
				key = "global"
			}
			rls[0] = configsvc.RateLimitState{RPS: rl.RPS, Burst: rl.EffectiveBurst(), Key: key, Scope: rl.EffectiveScope()}
			rs.RateLimit, rls = &rls[0], rls[1:]
			if rt.lim != nil {
				rs.RateLimit.Rejected = rt.lim.rejected.Load()
			}
		}
		if cb := rc.CircuitBreaker; cb != nil {
			cbs[0] = configsvc.CircuitBreakerState{ConsecutiveFailures: cb.ConsecutiveFailures, OpenFor: rt.openStr, HalfOpenRequests: cb.EffectiveHalfOpen()}
			rs.CircuitBreaker, cbs = &cbs[0], cbs[1:]
		}
		rs.Instances = insts[:len(rt.insts):len(rt.insts)]
		insts = insts[len(rt.insts):]
		for j, in := range rt.insts {
			is := &rs.Instances[j]
			is.ID, is.Addr = in.id, in.addr
			if b := in.st.breaker; b != nil {
				is.Breaker = b.State().String()
			}
			is.Opened = in.st.trips.Load()
			is.InFlight = in.st.inflight.Load()
			is.Requests = in.st.requests.Load()
			is.Failures = in.st.failures.Load()
			fillInstance(is, rt, in.st)
		}
	}
	return configsvc.TableState{Routes: routes}
}
