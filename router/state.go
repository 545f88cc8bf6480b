package router

import (
	"time"
)

// StateCollection is the record collection (configsvc.RecordStore) where
// every proxy publishes its ProxyState under its instance id, so that the
// admin server can show the live route tables of proxies running in other
// processes.
const StateCollection = "proxy-state"

// TableState is a read-only snapshot of a router's live route table: the
// routes in force, in file order, each with its rate-limit and breaker
// state. It is what (*Router).State returns and what a proxy publishes (in
// ProxyState). Slices inside a TableState may share memory with the route
// table and must not be modified.
type TableState struct {
	// Routes are the routes in force, in the order of the route file.
	Routes []RouteState `json:"routes"`
}

// RouteState is the live state of one route.
type RouteState struct {
	// Name is the route's name.
	Name string `json:"name"`
	// Match is what the route selects.
	Match MatchState `json:"match"`
	// Upstream is where its requests go.
	Upstream UpstreamState `json:"upstream"`
	// RateLimit is set when the route has a rate limit.
	RateLimit *RateLimitState `json:"rate_limit,omitempty"`
	// CircuitBreaker is set when the route gives its instances breakers.
	CircuitBreaker *CircuitBreakerState `json:"circuit_breaker,omitempty"`
	// Instances are the upstream instances the route balances over (for a
	// service: its registered instances with an address; for static
	// upstreams: one per address), sorted by id.
	Instances []InstanceState `json:"instances"`
	// InstancesOmitted counts instances left out of Instances to keep a
	// published ProxyState within a record's size; 0 in (*Router).State.
	InstancesOmitted int `json:"instances_omitted,omitempty"`
}

// MatchState is a route's Match in JSON form.
type MatchState struct {
	Hosts      []string          `json:"hosts,omitempty"`
	PathPrefix string            `json:"path_prefix"` // "/" when the route sets none
	Methods    []string          `json:"methods,omitempty"`
	Headers    map[string]string `json:"headers,omitempty"`
}

// UpstreamState is a route's Upstream in JSON form.
type UpstreamState struct {
	// Service is set for a service upstream, Static for static addresses.
	Service string   `json:"service,omitempty"`
	Static  []string `json:"static,omitempty"`
	// Balancer is the effective balancer (round_robin when unset).
	Balancer Balancer `json:"balancer"`
}

// RateLimitState is a route's rate limit with its refusals.
type RateLimitState struct {
	RPS   float64 `json:"rps"`
	Burst int     `json:"burst"` // effective burst
	// Key is "global", "ip" or "header:NAME".
	Key string `json:"key"`
	// Scope is "proxy" or "cluster" (see ScopeCluster).
	Scope string `json:"scope"`
	// Rejected counts the requests this router refused with 429 since the
	// limiter was made: at start, or when the route's name or rate-limit
	// settings last changed.
	Rejected uint64 `json:"rejected"`
}

// CircuitBreakerState is a route's breaker settings in JSON form.
type CircuitBreakerState struct {
	ConsecutiveFailures int    `json:"consecutive_failures"`
	OpenFor             string `json:"open_for"` // effective, e.g. "30s"
	HalfOpenRequests    int    `json:"half_open_requests"`
}

// InstanceState is one upstream instance of a route. Its counters run
// since the router first used the instance for the route with the route's
// current breaker settings (state kept across table swaps, see Update).
type InstanceState struct {
	// ID is the instance id (the address for static upstreams).
	ID   string `json:"id"`
	Addr string `json:"addr"`
	// Breaker is "closed", "open" or "half-open"; empty when the route has
	// no circuit breaker.
	Breaker string `json:"breaker,omitempty"`
	// Opened counts the times the breaker tripped open.
	Opened uint64 `json:"opened"`
	// InFlight is the number of requests being forwarded to it now.
	InFlight int64 `json:"in_flight"`
	// Requests counts the requests sent to it (each retry counts).
	Requests uint64 `json:"requests"`
	// Failures counts those that ended in a connection error, a timeout or
	// a 5xx answer (what a breaker counts as failure).
	Failures uint64 `json:"failures"`
}

// ProxyState is what a proxy publishes about itself in StateCollection:
// its live route table, when it took the snapshot and which revision of
// the route file is in force.
type ProxyState struct {
	// ID is the proxy's instance id (the record's id).
	ID string `json:"id"`
	// Addr is the address the proxy serves on.
	Addr string `json:"addr"`
	// Updated is when the proxy took the snapshot; readers treat a state
	// not updated for a while as stale.
	Updated time.Time `json:"updated"`
	// Revision is the revision of sluice-system whose routes.yaml is in
	// force; 0 before any was loaded.
	Revision int64 `json:"revision"`
	// Peers is how many proxies share cluster-scoped rate limits.
	Peers int `json:"peers"`
	// Routes is the route table (TableState.Routes).
	Routes []RouteState `json:"routes"`
	// RoutesOmitted counts routes left out to keep the record within its
	// size limit.
	RoutesOmitted int `json:"routes_omitted,omitempty"`
}

// State returns a snapshot of the live route table: every route with its
// rate limit (and refusal count) and every upstream instance with its
// breaker state and counters. It takes no lock that requests take and
// allocates four slices (routes, instances, rate limits, breakers), however
// many routes and instances there are; it is safe to call
// concurrently with requests and updates. Asking a breaker its state may
// move it from open to half-open when its open_for has passed, as a
// request would.
func (r *Router) State() TableState {
	s := r.snap.Load()
	n, nrl, ncb := 0, 0, 0
	for _, rt := range s.routes {
		n += len(rt.insts)
		if rt.route.RateLimit != nil {
			nrl++
		}
		if rt.route.CircuitBreaker != nil {
			ncb++
		}
	}
	routes := make([]RouteState, len(s.routes))
	insts := make([]InstanceState, n)
	rls := make([]RateLimitState, nrl)
	cbs := make([]CircuitBreakerState, ncb)
	for i, rt := range s.routes {
		rc := rt.route
		rs := &routes[i]
		rs.Name = rc.Name
		rs.Match = MatchState{Hosts: rc.Match.Hosts, PathPrefix: rc.Match.PathPrefix, Methods: rc.Match.Methods, Headers: rc.Match.Headers}
		if rs.Match.PathPrefix == "" {
			rs.Match.PathPrefix = "/"
		}
		rs.Upstream = UpstreamState{Service: rc.Upstream.Service, Static: rc.Upstream.Static, Balancer: rc.Upstream.EffectiveBalancer()}
		if rl := rc.RateLimit; rl != nil {
			scope := rl.Scope
			if scope == "" {
				scope = ScopeProxy
			}
			key := rl.Key
			if key == "" {
				key = "global"
			}
			rls[0] = RateLimitState{RPS: rl.RPS, Burst: rl.EffectiveBurst(), Key: key, Scope: scope}
			rs.RateLimit, rls = &rls[0], rls[1:]
			if rt.lim != nil {
				rs.RateLimit.Rejected = rt.lim.rejected.Load()
			}
		}
		if cb := rc.CircuitBreaker; cb != nil {
			cbs[0] = CircuitBreakerState{ConsecutiveFailures: cb.ConsecutiveFailures, OpenFor: rt.openStr, HalfOpenRequests: cb.EffectiveHalfOpen()}
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
		}
	}
	return TableState{Routes: routes}
}
