package prommetrics

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/router"
)

// Label names. The upstream instance is "upstream_instance", never
// "instance": Prometheus reserves "instance" for the scrape target and
// renames a clashing exported label to "exported_instance", which no
// documented alert would match.
const (
	LabelRoute            = "route"
	LabelUpstreamInstance = "upstream_instance"
	LabelCode             = "code"
)

// Label values the proxy uses for itself.
const (
	// NoRoute is the route label of requests that matched no route.
	NoRoute = "none"
	// ProxyInstance is the upstream_instance label of answers the proxy
	// gave itself (429, 403, 503 …).
	ProxyInstance = "proxy"
)

// codeClasses are the values of the code label: a response status is
// counted by its class, so the label has five values whatever upstreams
// answer (statuses outside 100–599 count as "5xx").
var codeClasses = [5]string{"1xx", "2xx", "3xx", "4xx", "5xx"}

// Metrics implements router.Metrics with these collectors:
//
//	sluice_proxy_requests_total{route,upstream_instance,code}  counter; code is the class 1xx…5xx
//	sluice_proxy_request_duration_seconds{route}              histogram
//	sluice_proxy_rate_limited_total{route}                    counter
//	sluice_proxy_rate_limit_keys_cap_hits_total{route}        counter
//	sluice_proxy_upstream_refused_total{route}                counter
//	sluice_proxy_breaker_state{route,upstream_instance}       gauge: 0 closed, 1 half-open, 2 open
//
// route is "none" (NoRoute) for requests no route matched; upstream_instance
// is "proxy" (ProxyInstance) for answers the proxy gave itself. Every label
// value comes from the route table or the instance list, never from a
// request, and the series of an instance that left a route are deleted
// (RouteMetrics.Forget). Safe for concurrent use.
type Metrics struct {
	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	limited     *prometheus.CounterVec
	capHits     *prometheus.CounterVec
	refused     *prometheus.CounterVec
	breakerStat *prometheus.GaugeVec
}

// New creates the collectors and registers them with reg. It fails if reg
// already holds collectors of the same names.
func New(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_proxy_requests_total", Help: "Requests by route, upstream instance and status class.",
		}, []string{LabelRoute, LabelUpstreamInstance, LabelCode}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sluice_proxy_request_duration_seconds", Help: "Time to serve a request through the proxy, by route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{LabelRoute}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_proxy_rate_limited_total", Help: "Requests refused with 429 by a route's rate limit.",
		}, []string{LabelRoute}),
		capHits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_proxy_rate_limit_keys_cap_hits_total", Help: "Per-key rate-limit buckets evicted before they had refilled, to make room for a new key in a full per-key limiter.",
		}, []string{LabelRoute}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_proxy_upstream_refused_total", Help: "Upstream connections the proxy's upstream policy refused (answered 502).",
		}, []string{LabelRoute}),
		breakerStat: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_proxy_breaker_state", Help: "Circuit breaker state per route and upstream instance: 0 closed, 1 half-open, 2 open.",
		}, []string{LabelRoute, LabelUpstreamInstance}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.limited, m.capHits, m.refused, m.breakerStat} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("prommetrics: register: %w", err)
		}
	}
	return m, nil
}

var _ router.Metrics = (*Metrics)(nil)

// Route returns the handles of one route.
func (m *Metrics) Route(route string) router.RouteMetrics {
	if route == "" {
		route = NoRoute
	}
	return &routeMetrics{
		m: m, route: route,
		duration: m.duration.WithLabelValues(route),
		limited:  m.limited.WithLabelValues(route),
		capHits:  m.capHits.WithLabelValues(route),
		refused:  m.refused.WithLabelValues(route),
	}
}

type routeMetrics struct {
	m        *Metrics
	route    string
	duration prometheus.Observer
	limited  prometheus.Counter
	capHits  prometheus.Counter
	refused  prometheus.Counter
}

func (r *routeMetrics) Upstream(instance string) router.UpstreamMetrics {
	if instance == "" {
		instance = ProxyInstance
	}
	u := &upstream{}
	for i, class := range codeClasses {
		u.byClass[i] = r.m.requests.WithLabelValues(r.route, instance, class)
	}
	return u
}

func (r *routeMetrics) Observe(d time.Duration) { r.duration.Observe(d.Seconds()) }
func (r *routeMetrics) RateLimited()            { r.limited.Inc() }
func (r *routeMetrics) KeysCapHit()             { r.capHits.Inc() }
func (r *routeMetrics) UpstreamRefused()        { r.refused.Inc() }
func (r *routeMetrics) BreakerState(instance string, s router.BreakerState) {
	r.m.breakerStat.WithLabelValues(r.route, instance).Set(float64(s))
}

// Forget deletes every series of instance on this route.
func (r *routeMetrics) Forget(instance string) {
	l := prometheus.Labels{LabelRoute: r.route, LabelUpstreamInstance: instance}
	r.m.requests.DeletePartialMatch(l)
	r.m.breakerStat.Delete(l)
}

type upstream struct {
	byClass [len(codeClasses)]prometheus.Counter
}

func (u *upstream) Response(status int) {
	c := status/100 - 1
	if c < 0 || c >= len(codeClasses) {
		c = len(codeClasses) - 1
	}
	u.byClass[c].Inc()
}
