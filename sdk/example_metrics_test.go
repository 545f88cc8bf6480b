package sdk_test

import (
	"context"
	"fmt"
	"log"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/sdk"
)

// promMetrics adapts sdk.Metrics to Prometheus counters registered on the
// service's own registry.
type promMetrics struct {
	applied, rejected, reconnects, rewrites, cacheFailures *prometheus.CounterVec
}

func newPromMetrics(reg prometheus.Registerer) *promMetrics {
	m := &promMetrics{
		applied:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_sdk_revisions_applied_total", Help: "Revisions applied."}, []string{"ref"}),
		rejected:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_sdk_revisions_rejected_total", Help: "File revisions rejected by a binding."}, []string{"file"}),
		reconnects:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_sdk_reconnects_total", Help: "Watch reconnects."}, []string{"transport"}),
		rewrites:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_sdk_history_rewrites_total", Help: "Rewritten store histories reloaded."}, []string{"ref"}),
		cacheFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sluice_sdk_cache_write_failures_total", Help: "Failed writes of the local cache."}, nil),
	}
	reg.MustRegister(m.applied, m.rejected, m.reconnects, m.rewrites, m.cacheFailures)
	return m
}

func (m *promMetrics) RevisionApplied(ref string, _ int64)   { m.applied.WithLabelValues(ref).Inc() }
func (m *promMetrics) RevisionRejected(file string, _ int64) { m.rejected.WithLabelValues(file).Inc() }
func (m *promMetrics) Reconnect(transport string)            { m.reconnects.WithLabelValues(transport).Inc() }
func (m *promMetrics) HistoryRewritten(ref string, _, _ int64) {
	m.rewrites.WithLabelValues(ref).Inc()
}
func (m *promMetrics) CacheWriteFailed(error) { m.cacheFailures.WithLabelValues().Inc() }

// Feed the SDK's counters into Prometheus; the SDK registers nothing globally.
func ExampleMetrics() {
	st, cleanup := exampleStore()
	defer cleanup()
	reg := prometheus.NewRegistry()
	m := newPromMetrics(reg)
	c, err := sdk.Open(context.Background(), sdk.Config{Service: "orders", Store: st, NoRegister: true, Metrics: m, Logger: quiet()})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	sdk.Bind[DBConfig](c, "db.yaml")

	done := make(chan struct{})
	c.OnChange("features.json", func(sdk.Change) { close(done) })
	_, err = st.Publish(context.Background(), configsvc.Service("orders"), configsvc.Changeset{Base: 1, Changes: []configsvc.Change{
		{File: "db.yaml", Content: []byte("host: db1\nport: 99999\n")}, // rejected by Validate
		{File: "features.json", Content: []byte(`{"beta":true}`)},
	}})
	if err != nil {
		log.Fatal(err)
	}
	<-done
	families, err := reg.Gather()
	if err != nil {
		log.Fatal(err)
	}
	for _, f := range families {
		for _, s := range f.GetMetric() {
			fmt.Println(f.GetName(), s.GetLabel()[0].GetValue(), s.GetCounter().GetValue())
		}
	}
	// Output:
	// sluice_sdk_revisions_applied_total service/orders 1
	// sluice_sdk_revisions_rejected_total db.yaml 1
}
