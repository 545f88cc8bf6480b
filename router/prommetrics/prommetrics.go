package prommetrics

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/router"
)

// Metrics implements router.Metrics with these collectors:
//
//	sluice_proxy_requests_total{route,instance,code}       counter; code is 1xx…5xx
//	sluice_proxy_request_duration_seconds{route}           histogram
//	sluice_proxy_rate_limited_total{route}                 counter
//	sluice_proxy_rate_limit_keys_cap_hits_total{route}     counter
//	sluice_proxy_upstream_refused_total{route}             counter
//	sluice_proxy_breaker_state{route,instance}             gauge: 0 closed, 1 half-open, 2 open
//
// route is "none" for requests no route matched; instance is "proxy" for
// answers the proxy gave itself. Safe for concurrent use.
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
		}, []string{"route", "instance", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "sluice_proxy_request_duration_seconds", Help: "Time to serve a request through the proxy, by route.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route"}),
		limited: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_proxy_rate_limited_total", Help: "Requests refused with 429 by a route's rate limit.",
		}, []string{"route"}),
		capHits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_proxy_rate_limit_keys_cap_hits_total", Help: "Per-key rate-limit buckets evicted before they had refilled, to make room for a new key in a full per-key limiter.",
		}, []string{"route"}),
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_proxy_upstream_refused_total", Help: "Upstream connections the proxy's upstream policy refused (answered 502).",
		}, []string{"route"}),
		breakerStat: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_proxy_breaker_state", Help: "Circuit breaker state per route and instance: 0 closed, 1 half-open, 2 open.",
		}, []string{"route", "instance"}),
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
		route = "none"
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
		instance = "proxy"
	}
	u := &upstream{}
	for i := range u.byClass {
		u.byClass[i] = r.m.requests.WithLabelValues(r.route, instance, fmt.Sprintf("%dxx", i+1))
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

type upstream struct{ byClass [5]prometheus.Counter }

func (u *upstream) Response(status int) {
	c := status/100 - 1
	if c < 0 || c > 4 {
		c = 4
	}
	u.byClass[c].Inc()
}
