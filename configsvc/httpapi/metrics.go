package httpapi

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/configsvc"
)

// metrics are the server's Prometheus metrics, registered on Config.Registry.
// Every label value is bounded whatever clients send: route is a route
// pattern or unmatchedRoute, method one of knownMethods or otherMethod, code
// a status class.
type metrics struct {
	requests    *prometheus.CounterVec   // sluice_http_requests_total{route,method,code}
	latency     *prometheus.HistogramVec // sluice_http_request_duration_seconds{route,method}
	publishes   *prometheus.CounterVec   // sluice_publishes_total{kind}
	watchers    *prometheus.GaugeVec     // sluice_watch_subscribers{stream}
	storeErrors prometheus.Counter       // sluice_store_errors_total
	refusals    *prometheus.CounterVec   // sluice_http_refusals_total{reason}
	replays     prometheus.Counter       // sluice_http_idempotent_replays_total
	rewrites    *prometheus.CounterVec   // sluice_watch_rewrites_total{kind}
	behind      prometheus.Counter       // sluice_watch_behind_total
}

// The reason label values of sluice_http_refusals_total.
const (
	refusedUnauthenticated = "unauthenticated" // 401
	refusedForbidden       = "forbidden"       // 403
)

const (
	// unmatchedRoute is the route label of requests no route matched
	// (unknown paths, methods a path does not allow, console pages).
	unmatchedRoute = "unmatched"
	// otherMethod is the method label of every method not in knownMethods.
	otherMethod = "other"
)

// knownMethods are the method label values besides otherMethod: the methods
// of RFC 9110 and PATCH.
var knownMethods = map[string]bool{
	http.MethodGet: true, http.MethodHead: true, http.MethodPost: true, http.MethodPut: true,
	http.MethodPatch: true, http.MethodDelete: true, http.MethodConnect: true,
	http.MethodOptions: true, http.MethodTrace: true,
}

// codeClasses are the code label values: a status is counted by its class,
// as the proxy counts it (statuses outside 100–599 count as "5xx").
var codeClasses = [5]string{"1xx", "2xx", "3xx", "4xx", "5xx"}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_http_requests_total",
			Help: "Admin API requests by route pattern, method and status class (2xx, 4xx, 5xx …).",
		}, []string{"route", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sluice_http_request_duration_seconds",
			Help:    "Admin API request latency by route pattern and method (event streams: their whole life).",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"route", "method"}),
		publishes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_publishes_total",
			Help: "Revisions published through the admin API (publishes, file puts and deletes, rollbacks), by kind (service or group).",
		}, []string{"kind"}),
		watchers: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_watch_subscribers",
			Help: "Open event streams, by stream (revisions or instances).",
		}, []string{"stream"}),
		storeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_store_errors_total",
			Help: "Requests that failed because the store was unreachable, and audit entries that could not be written.",
		}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_http_refusals_total",
			Help: "Admin API requests refused, by reason: unauthenticated (401) or forbidden (403); every one, whether or not the sampled audit wrote it.",
		}, []string{"reason"}),
		replays: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_http_idempotent_replays_total",
			Help: "Mutating requests answered from the answer kept for their Idempotency-Key (nothing written).",
		}),
		rewrites: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_watch_rewrites_total",
			Help: "Revision streams ended because the store's history was rewritten (a restore or import and a generation bump, or revision numbers issued again), by kind (service or group); each stream's client reloads.",
		}, []string{"kind"}),
		behind: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_watch_behind_total",
			Help: "Revision streams refused with 503 behind: the client holds a revision the store does not have, even after a sync.",
		}),
	}
	// Both kinds exist from the start at 0, so an alert on their increase
	// sees the first rewrite (a series born at 40 has no increase).
	for _, k := range []configsvc.Kind{configsvc.KindService, configsvc.KindGroup} {
		m.rewrites.WithLabelValues(k.String())
	}
	for _, c := range []prometheus.Collector{m.requests, m.latency, m.publishes, m.watchers, m.storeErrors, m.refusals, m.replays, m.rewrites, m.behind} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("httpapi: register metrics: %w", err)
		}
	}
	return m, nil
}

// observe counts one request; route must already be a pattern or
// unmatchedRoute.
func (m *metrics) observe(route, method string, status int, d time.Duration) {
	if !knownMethods[method] {
		method = otherMethod
	}
	c := status/100 - 1
	if c < 0 || c >= len(codeClasses) {
		c = len(codeClasses) - 1
	}
	m.requests.WithLabelValues(route, method, codeClasses[c]).Inc()
	m.latency.WithLabelValues(route, method).Observe(d.Seconds())
}

func levelFor(status int) slog.Level {
	if status >= 500 {
		return slog.LevelWarn
	}
	return slog.LevelInfo
}

func slogStr(k, v string) slog.Attr               { return slog.String(k, v) }
func slogInt(k string, v int) slog.Attr           { return slog.Int(k, v) }
func slogDur(k string, v time.Duration) slog.Attr { return slog.Duration(k, v) }

func isNotFound(err error) bool { return errors.Is(err, configsvc.ErrNotFound) }
