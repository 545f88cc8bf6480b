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
//	sluice_proxy_retries_total{route}                         counter: retries sent
//	sluice_proxy_retry_budget_exhausted_total{route}          counter: retries not sent, budget used up
//	sluice_proxy_outlier_ejected{route,upstream_instance}     gauge: 1 while ejected
//	sluice_proxy_outlier_ejections_total{route}               counter
//	sluice_proxy_upstream_healthy{route,upstream_instance}    gauge: 1 passing health checks, 0 not
//	sluice_proxy_panic_mode{route}                            gauge: 1 while balancing across all instances
//
// route is "none" (NoRoute) for requests no route matched; upstream_instance
// is "proxy" (ProxyInstance) for answers the proxy gave itself. Every label
// value comes from the route table or the instance list, never from a
// request, and the series of an instance that left a route are deleted
// (RouteMetrics.Forget). The route handles implement
// router.ResilienceMetrics. Safe for concurrent use.
type Metrics struct {
	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	limited     *prometheus.CounterVec
	capHits     *prometheus.CounterVec
	refused     *prometheus.CounterVec
	breakerStat *prometheus.GaugeVec
	retries     *prometheus.CounterVec
	exhausted   *prometheus.CounterVec
	ejected     *prometheus.GaugeVec
	ejections   *prometheus.CounterVec
	healthy     *prometheus.GaugeVec
	panicMode   *prometheus.GaugeVec
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
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_proxy_retries_total", Help: "Retries the proxy sent to another upstream instance, by route.",
		}, []string{LabelRoute}),
		exhausted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_proxy_retry_budget_exhausted_total", Help: "Retries not sent because the route's retry budget was used up.",
		}, []string{LabelRoute}),
		ejected: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_proxy_outlier_ejected", Help: "1 while outlier detection keeps an upstream instance out of a route's balancer.",
		}, []string{LabelRoute, LabelUpstreamInstance}),
		ejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_proxy_outlier_ejections_total", Help: "Upstream instances ejected by outlier detection, by route.",
		}, []string{LabelRoute}),
		healthy: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_proxy_upstream_healthy", Help: "1 while an upstream instance passes a route's active health checks, 0 while it does not.",
		}, []string{LabelRoute, LabelUpstreamInstance}),
		panicMode: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_proxy_panic_mode", Help: "1 while a route has fewer healthy instances than its panic threshold and balances across all of them.",
		}, []string{LabelRoute}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.limited, m.capHits, m.refused, m.breakerStat,
		m.retries, m.exhausted, m.ejected, m.ejections, m.healthy, m.panicMode} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("prommetrics: register: %w", err)
		}
	}
	return m, nil
}

var (
	_ router.Metrics           = (*Metrics)(nil)
	_ router.ResilienceMetrics = (*routeMetrics)(nil)
)

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

// The resilience series are taken when first used: most routes have no
// retries, outlier detection or health checks.

func (r *routeMetrics) Retried()              { r.m.retries.WithLabelValues(r.route).Inc() }
func (r *routeMetrics) RetryBudgetExhausted() { r.m.exhausted.WithLabelValues(r.route).Inc() }
func (r *routeMetrics) Ejected(instance string, ejected bool) {
	r.m.ejected.WithLabelValues(r.route, instance).Set(b2f(ejected))
	if ejected {
		r.m.ejections.WithLabelValues(r.route).Inc()
	}
}
func (r *routeMetrics) Healthy(instance string, healthy bool) {
	r.m.healthy.WithLabelValues(r.route, instance).Set(b2f(healthy))
}
func (r *routeMetrics) Panic(on bool) { r.m.panicMode.WithLabelValues(r.route).Set(b2f(on)) }

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
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
	r.m.ejected.Delete(l)
	r.m.healthy.Delete(l)
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
