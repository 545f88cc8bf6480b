package configsvc

import "time"

// The proxy's published state: what every proxy (router/proxyserver) writes
// about its live route table so that the admin server, which does not link
// the proxy, can show it (GET /v1/routes). These are wire and record types:
// their JSON is the format of the "proxy-state" records.

// ProxyRoleLabel and ProxyRole are the label a proxy registers under as an
// instance of SystemService, so that proxies find their peers and the admin
// server tells proxies from other instances.
const (
	ProxyRoleLabel = "role"
	ProxyRole      = "proxy"
)

// ProxyStateCollection is the record collection (RecordStore) where
// every proxy publishes its ProxyState under its instance id, so that the
// admin server can show the live route tables of proxies running in other
// processes.
const ProxyStateCollection = "proxy-state"

// ProxyStateExpiry is how long the state record of a proxy that stopped
// without removing it (a crash) stays: proxies on the store and the admin
// servers delete records not updated for that long.
const ProxyStateExpiry = time.Hour

// TableState is a read-only snapshot of a router's live route table: the
// routes in force, in file order, each with its rate-limit and breaker
// state. It is what router.Router.State returns and what a proxy publishes (in
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
	// Retries is set when the route retries.
	Retries *RetriesState `json:"retries,omitempty"`
	// OutlierDetection is set when the route ejects failing instances.
	OutlierDetection *OutlierDetectionState `json:"outlier_detection,omitempty"`
	// HealthCheck is set when the route checks its instances actively.
	HealthCheck *HealthCheckState `json:"health_check,omitempty"`
	// Panic is true while fewer of the route's instances are healthy than
	// its panic threshold: it balances across all of them.
	Panic bool `json:"panic,omitempty"`
	// Instances are the upstream instances the route balances over (for a
	// service: its registered instances with an address; for static
	// upstreams: one per address), sorted by id.
	Instances []InstanceState `json:"instances"`
	// InstancesOmitted counts instances left out of Instances to keep a
	// published ProxyState within a record's size; 0 in router.Router.State.
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
	Balancer string `json:"balancer"`
	// Subsets split the service's traffic by instance labels (canary).
	Subsets []SubsetState `json:"subsets,omitempty"`
	// Sticky is how a client keeps its subset: "header:NAME",
	// "cookie:NAME" or "client_ip"; empty when requests pick at random.
	Sticky string `json:"sticky,omitempty"`
	// Force is how a request names its subset: "header:NAME",
	// "cookie:NAME" or both, comma-separated; empty when it cannot.
	Force string `json:"force,omitempty"`
}

// SubsetState is one subset of a route's upstream.
type SubsetState struct {
	// Name is the subset's name (its label values when not set).
	Name string `json:"name"`
	// Labels select its instances.
	Labels map[string]string `json:"labels"`
	// Weight is its share of the traffic.
	Weight int `json:"weight"`
	// Instances counts the route's instances in it; a subset without
	// instances gets no traffic.
	Instances int `json:"instances"`
}

// RetriesState is a route's retry policy in JSON form, with its counts.
type RetriesState struct {
	Attempts      int      `json:"attempts"`
	PerTryTimeout string   `json:"per_try_timeout,omitempty"` // e.g. "500ms"; empty: the route's timeout
	On            []string `json:"on"`                        // effective conditions
	NonIdempotent bool     `json:"non_idempotent,omitempty"`
	// Backoff is the effective wait before each retry.
	Backoff RetryBackoffState `json:"backoff"`
	// BudgetPercent and BudgetMinConcurrency are the effective retry budget.
	BudgetPercent        float64 `json:"budget_percent"`
	BudgetMinConcurrency int     `json:"budget_min_concurrency"`
	// Retrying is how many retries are waiting for their answer now.
	Retrying int64 `json:"retrying"`
}

// RetryBackoffState is a retry policy's effective backoff: the wait before
// retry n is random between 0 and min(Max, Base × 2^(n-1)).
type RetryBackoffState struct {
	Base string `json:"base"` // e.g. "25ms"
	Max  string `json:"max"`  // e.g. "250ms"
}

// OutlierDetectionState is a route's outlier detection in JSON form.
type OutlierDetectionState struct {
	Consecutive5xx     int    `json:"consecutive_5xx"`
	BaseEjectionTime   string `json:"base_ejection_time"`
	MaxEjectionTime    string `json:"max_ejection_time"`
	MaxEjectionPercent int    `json:"max_ejection_percent"`
	PanicThreshold     int    `json:"panic_threshold"`
	// Ejected counts the route's instances ejected now.
	Ejected int `json:"ejected"`
}

// HealthCheckState is a route's active health check in JSON form.
type HealthCheckState struct {
	Path               string `json:"path"`
	Interval           string `json:"interval"`
	Timeout            string `json:"timeout"`
	HealthyThreshold   int    `json:"healthy_threshold"`
	UnhealthyThreshold int    `json:"unhealthy_threshold"`
}

// RateLimitState is a route's rate limit with its refusals.
type RateLimitState struct {
	RPS   float64 `json:"rps"`
	Burst int     `json:"burst"` // effective burst
	// Key is "global", "ip" or "header:NAME".
	Key string `json:"key"`
	// Scope is "proxy" or "cluster" (router.ScopeProxy, router.ScopeCluster).
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
// current breaker settings (state kept across table swaps, see router.Router.Update).
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
	// Ejected is true while outlier detection keeps the instance out.
	Ejected bool `json:"ejected,omitempty"`
	// Ejections counts the times it was ejected.
	Ejections uint64 `json:"ejections,omitempty"`
	// Health is "healthy" or "unhealthy" when the route has a health check
	// (unhealthy also while a tripped breaker waits for the checks);
	// empty without one.
	Health string `json:"health,omitempty"`
}

// ProxyState is what a proxy publishes about itself in ProxyStateCollection:
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
