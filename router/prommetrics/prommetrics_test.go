package prommetrics_test

import (
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/router"
	"github.com/sluicehq/sluice/router/prommetrics"
)

func TestMetricsExport(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	m, err := prommetrics.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	r := m.Route("orders")
	up := r.Upstream("orders-1")
	up.Response(200)
	up.Response(204)
	up.Response(503)
	r.Upstream("").Response(429)
	r.RateLimited()
	r.KeysCapHit()
	r.Observe(3 * time.Millisecond)
	r.BreakerState("orders-1", router.BreakerOpen)
	m.Route("").Upstream("").Response(404)
	for _, odd := range []int{0, 99, 600, 999} {
		r.Upstream("orders-2").Response(odd)
	}

	got := gather(t, reg)
	if v := got[`sluice_proxy_requests_total{code="5xx",route="orders",upstream_instance="orders-2"}`]; v != 4 {
		t.Errorf("statuses outside 100-599 counted %v times as 5xx, want 4", v)
	}
	for series := range got {
		if strings.Contains(series, `{instance=`) || strings.Contains(series, `,instance=`) {
			t.Errorf("%s: the label instance is Prometheus' own (the scrape target)", series)
		}
	}
	for series, want := range map[string]float64{
		`sluice_proxy_requests_total{code="2xx",route="orders",upstream_instance="orders-1"}`: 2,
		`sluice_proxy_requests_total{code="5xx",route="orders",upstream_instance="orders-1"}`: 1,
		`sluice_proxy_requests_total{code="4xx",route="orders",upstream_instance="proxy"}`:    1,
		`sluice_proxy_requests_total{code="4xx",route="none",upstream_instance="proxy"}`:      1,
		`sluice_proxy_rate_limited_total{route="orders"}`:                                     1,
		`sluice_proxy_rate_limit_keys_cap_hits_total{route="orders"}`:                         1,
		`sluice_proxy_breaker_state{route="orders",upstream_instance="orders-1"}`:             2,
		`sluice_proxy_request_duration_seconds_count{route="orders"}`:                         1,
	} {
		if v, ok := got[series]; !ok || v != want {
			t.Errorf("%s = %v (present %t), want %v", series, v, ok, want)
		}
	}
	if _, err := prommetrics.New(reg); err == nil {
		t.Error("registering twice succeeded")
	}
}

// gather flattens the registry into "name{label="v",…}" → value.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+`="`+l.GetValue()+`"`)
			}
			sort.Strings(labels)
			key := "{" + strings.Join(labels, ",") + "}"
			switch {
			case m.Counter != nil:
				out[mf.GetName()+key] = m.Counter.GetValue()
			case m.Gauge != nil:
				out[mf.GetName()+key] = m.Gauge.GetValue()
			case m.Histogram != nil:
				out[mf.GetName()+"_count"+key] = float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return out
}
