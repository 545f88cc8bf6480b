package router

import (
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/configsvc"
)

// Balancer names how a route spreads requests over its upstream instances.
type Balancer string

// The balancers a route may name. The zero value means BalancerRoundRobin.
const (
	// BalancerRoundRobin takes the instances in turn.
	BalancerRoundRobin Balancer = "round_robin"
	// BalancerLeastRequests picks two instances at random and sends the
	// request to the one with fewer requests in flight (power of two choices).
	BalancerLeastRequests Balancer = "least_requests"
	// BalancerWeighted picks an instance at random in proportion to its
	// weight: Upstream.Weights by instance id or static address, else the
	// instance label "weight", else 1.
	BalancerWeighted Balancer = "weighted"
)

// Defaults and bounds for route fields.
const (
	// DefaultTimeout is how long the proxy waits for an upstream's response
	// headers when a route sets no timeout.
	DefaultTimeout = 30 * time.Second
	// MaxRetries bounds RetryPolicy.Attempts.
	MaxRetries = 5
	// DefaultOpenFor is how long a tripped breaker stays open when the route
	// sets no open_for.
	DefaultOpenFor = 30 * time.Second
	// WeightLabel is the instance label the weighted balancer reads
	// (configsvc.WeightLabel: an integer from 0 to configsvc.MaxInstanceWeight).
	WeightLabel = configsvc.WeightLabel
)

// Route tells the proxy where to forward the requests it matches. Routes are
// the entries of sluice-system/routes.yaml (package routesfile parses them).
type Route struct {
	// Name identifies the route in metrics, logs and limiter/breaker state;
	// unique in a table, same rule as service names.
	Name string
	// Match selects the requests of the route.
	Match Match
	// Upstream is where they go.
	Upstream Upstream
	// StripPrefix removes Match.PathPrefix from the path sent upstream.
	StripPrefix bool
	// Timeout bounds the wait for the upstream's response headers; 0 means
	// DefaultTimeout. Streaming bodies (SSE, WebSocket) are not cut by it.
	Timeout time.Duration
	// Retries, when set, tries a failed request again on other instances
	// (see RetryPolicy); nil never retries.
	Retries *RetryPolicy
	// RateLimit, when set, limits the route's requests.
	RateLimit *RateLimit
	// CircuitBreaker, when set, gives every upstream instance a breaker.
	CircuitBreaker *CircuitBreaker
	// OutlierDetection, when set, ejects instances that fail in a row for
	// a while (see OutlierDetection).
	OutlierDetection *OutlierDetection
	// HealthCheck, when set, probes every instance actively; failing
	// instances leave the balancer (see HealthCheck).
	HealthCheck *HealthCheck
}

// Match selects requests. Empty fields match everything; a request must
// satisfy every field that is set.
type Match struct {
	// Hosts are host names compared case-insensitively without the port; a
	// leading "*." matches any subdomain ("*.example.com").
	Hosts []string
	// PathPrefix matches a path equal to it or continuing with "/" after it
	// (so "/orders" matches "/orders" and "/orders/7", not "/ordersx"); a
	// prefix ending in "/" matches any continuation. Empty means "/".
	PathPrefix string
	// Methods are HTTP methods, upper case.
	Methods []string
	// Headers must each be present with exactly this value.
	Headers map[string]string
}

// Upstream is a route's target: the registered instances of a service, or
// static addresses. Exactly one of Service and Static is set.
type Upstream struct {
	Service  string
	Static   []string // host:port
	Balancer Balancer // "" means BalancerRoundRobin
	// Weights sets the weighted balancer's weight per instance id (service)
	// or address (static); missing entries use the "weight" label, else 1.
	Weights map[string]int
	// Subsets, when set, split a service's requests across label subsets
	// of its instances by weight (canary and weighted routes; see Subset).
	// Instances in no subset get no traffic. Service upstreams only.
	Subsets []Subset
	// Sticky, with Subsets, sends the requests of one client to the same
	// subset (see Sticky); nil picks a subset at random per request.
	Sticky *Sticky
	// Force, with Subsets, lets a request name its subset (see Force).
	Force *Force
}

// RateLimit is a token bucket: RPS tokens a second, up to Burst at once.
type RateLimit struct {
	RPS   float64
	Burst int // 0 means max(1, ceil(RPS))
	// Key splits the budget: "global" (or "") one bucket for the route,
	// "ip" one per client address, "header:NAME" one per value of a header.
	Key string
	// Scope says who shares the budget: "proxy" (or "") each proxy
	// enforces RPS and Burst on its own; "cluster" the live proxies share
	// them, each taking an equal share (see ClusterLimiters).
	Scope string
}

// KeyKind returns "global", "ip" or "header", and for "header" the header name.
func (rl RateLimit) KeyKind() (kind, header string) {
	switch {
	case rl.Key == "" || rl.Key == "global":
		return "global", ""
	case rl.Key == "ip":
		return "ip", ""
	case strings.HasPrefix(rl.Key, "header:"):
		return "header", http.CanonicalHeaderKey(strings.TrimPrefix(rl.Key, "header:"))
	}
	return "", ""
}

// EffectiveScope returns Scope, ScopeProxy when unset.
func (rl RateLimit) EffectiveScope() string {
	if rl.Scope == "" {
		return ScopeProxy
	}
	return rl.Scope
}

// EffectiveBurst returns Burst, or its default when Burst is 0.
func (rl RateLimit) EffectiveBurst() int {
	if rl.Burst > 0 {
		return rl.Burst
	}
	b := int(rl.RPS + 0.999999)
	if b < 1 {
		b = 1
	}
	return b
}

// CircuitBreaker configures the breaker each upstream instance of a route gets.
type CircuitBreaker struct {
	// ConsecutiveFailures trips the breaker (≥ 1). Failures are connection
	// errors, timeouts and 5xx answers; 4xx and client cancellations are not.
	ConsecutiveFailures int
	// OpenFor is how long a tripped breaker refuses requests before letting
	// HalfOpenRequests through; 0 means DefaultOpenFor.
	OpenFor time.Duration
	// HalfOpenRequests probe a half-open instance; 0 means 1. That many
	// successes close the breaker, one failure opens it again.
	HalfOpenRequests int
}

// EffectiveOpenFor returns OpenFor or its default.
func (cb CircuitBreaker) EffectiveOpenFor() time.Duration {
	if cb.OpenFor > 0 {
		return cb.OpenFor
	}
	return DefaultOpenFor
}

// EffectiveHalfOpen returns HalfOpenRequests or its default.
func (cb CircuitBreaker) EffectiveHalfOpen() int {
	if cb.HalfOpenRequests > 0 {
		return cb.HalfOpenRequests
	}
	return 1
}

// EffectiveTimeout returns Timeout or DefaultTimeout.
func (r *Route) EffectiveTimeout() time.Duration {
	if r.Timeout > 0 {
		return r.Timeout
	}
	return DefaultTimeout
}

// EffectiveBalancer returns the balancer, round_robin when unset.
func (u *Upstream) EffectiveBalancer() Balancer {
	if u.Balancer == "" {
		return BalancerRoundRobin
	}
	return u.Balancer
}

// ValidateRoutes checks a route table: names present and unique, every
// field in range. The error is a *configsvc.FieldError (errors.Is
// configsvc.ErrInvalid) whose Field is the path, e.g. "routes[2].rate_limit.rps".
func ValidateRoutes(routes []Route) error {
	seen := make(map[string]int, len(routes))
	for i := range routes {
		p := fmt.Sprintf("routes[%d]", i)
		if err := routes[i].validate(p); err != nil {
			return err
		}
		if j, dup := seen[routes[i].Name]; dup {
			return fieldErr(p+".name", routes[i].Name, fmt.Sprintf("duplicates routes[%d].name", j))
		}
		seen[routes[i].Name] = i
	}
	return nil
}

// validate checks r, whose field path is p ("routes[2]").
func (r *Route) validate(p string) error {
	if err := configsvc.ValidateServiceName(r.Name); err != nil {
		return fieldErr(p+".name", r.Name, err.(*configsvc.FieldError).Msg)
	}
	if err := r.Match.validate(p + ".match"); err != nil {
		return err
	}
	if err := r.Upstream.validate(p + ".upstream"); err != nil {
		return err
	}
	if r.Timeout < 0 {
		return fieldErr(p+".timeout", r.Timeout.String(), "must not be negative")
	}
	if err := r.validateResilience(p); err != nil {
		return err
	}
	if r.RateLimit != nil {
		if err := r.RateLimit.validate(p + ".rate_limit"); err != nil {
			return err
		}
	}
	if r.CircuitBreaker != nil {
		return r.CircuitBreaker.validate(p + ".circuit_breaker")
	}
	return nil
}

func (m *Match) validate(p string) error {
	for i, h := range m.Hosts {
		if !validHost(h) {
			return fieldErr(fmt.Sprintf("%s.hosts[%d]", p, i), h, `must be a host name, optionally starting with "*."`)
		}
	}
	if m.PathPrefix != "" && (!strings.HasPrefix(m.PathPrefix, "/") || strings.ContainsAny(m.PathPrefix, "?# \t")) {
		return fieldErr(p+".path_prefix", m.PathPrefix, `must start with "/" and hold no query, fragment or space`)
	}
	for i, meth := range m.Methods {
		if !validToken(meth) || strings.ToUpper(meth) != meth {
			return fieldErr(fmt.Sprintf("%s.methods[%d]", p, i), meth, "must be an upper-case HTTP method")
		}
	}
	for k := range m.Headers {
		if !validToken(k) {
			return fieldErr(p+".headers", k, "must be an HTTP header name")
		}
	}
	return nil
}

func (u *Upstream) validate(p string) error {
	switch {
	case u.Service == "" && len(u.Static) == 0:
		return fieldErr(p, "", "must set service or static")
	case u.Service != "" && len(u.Static) > 0:
		return fieldErr(p, u.Service, "must set only one of service and static")
	case u.Service != "":
		if err := configsvc.ValidateServiceName(u.Service); err != nil {
			return fieldErr(p+".service", u.Service, err.(*configsvc.FieldError).Msg)
		}
	}
	for i, a := range u.Static {
		host, port, err := net.SplitHostPort(a)
		if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
			return fieldErr(fmt.Sprintf("%s.static[%d]", p, i), a, "must be host:port")
		}
	}
	switch u.Balancer {
	case "", BalancerRoundRobin, BalancerLeastRequests, BalancerWeighted:
	default:
		return fieldErr(p+".balancer", string(u.Balancer), "must be round_robin, least_requests or weighted")
	}
	for k, w := range u.Weights {
		if w < 0 || w > configsvc.MaxInstanceWeight {
			return fieldErr(p+".weights", k, fmt.Sprintf("must be between 0 and %d", configsvc.MaxInstanceWeight))
		}
	}
	return u.validateSubsets(p)
}

func (rl *RateLimit) validate(p string) error {
	if !(rl.RPS > 0 && rl.RPS <= 1e9) {
		return fieldErr(p+".rps", strconv.FormatFloat(rl.RPS, 'g', -1, 64), "must be above 0 and at most 1e9")
	}
	if rl.Burst < 0 || rl.Burst > 1e9 {
		return fieldErr(p+".burst", strconv.Itoa(rl.Burst), "must be between 0 and 1e9")
	}
	if kind, h := rl.KeyKind(); kind == "" || (kind == "header" && !validToken(h)) {
		return fieldErr(p+".key", rl.Key, "must be global, ip or header:NAME")
	}
	if rl.Scope != "" && rl.Scope != ScopeProxy && rl.Scope != ScopeCluster {
		return fieldErr(p+".scope", rl.Scope, "must be proxy or cluster")
	}
	return nil
}

func (cb *CircuitBreaker) validate(p string) error {
	if cb.ConsecutiveFailures < 1 || cb.ConsecutiveFailures > 1e6 {
		return fieldErr(p+".consecutive_failures", strconv.Itoa(cb.ConsecutiveFailures), "must be between 1 and 1000000")
	}
	if cb.OpenFor < 0 {
		return fieldErr(p+".open_for", cb.OpenFor.String(), "must not be negative")
	}
	if cb.HalfOpenRequests < 0 || cb.HalfOpenRequests > 1000 {
		return fieldErr(p+".half_open_requests", strconv.Itoa(cb.HalfOpenRequests), "must be between 0 and 1000")
	}
	return nil
}

func fieldErr(field, value, msg string) error {
	return &configsvc.FieldError{Field: field, Value: value, Msg: msg}
}

func validHost(h string) bool {
	h = strings.TrimPrefix(h, "*.")
	if h == "" || len(h) > 253 {
		return false
	}
	for i := 0; i < len(h); i++ {
		c := h[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '.', c == ':', c == '[', c == ']':
		default:
			return false
		}
	}
	return true
}

// validToken reports whether s is an RFC 9110 token (method, header name).
func validToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
