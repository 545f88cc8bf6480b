package deploy_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
	"github.com/sluicehq/sluice/configsvc/boltstore"
	"github.com/sluicehq/sluice/configsvc/boltstore/bolttest"
	"github.com/sluicehq/sluice/configsvc/httpapi"
	"github.com/sluicehq/sluice/configsvc/testkit"
	"github.com/sluicehq/sluice/router/proxyserver"
)

// stackRoutes is the route file of the stack: orders over two instances,
// one of which fails (its breaker opens after 3 failures); payments over
// one failing instance (its breaker opens at once, then the proxy answers
// 503 itself); limited, a per-client rate limit whose buckets never refill
// during a test (the stack caps the keys at 2, so new clients hit the cap).
// open_for outlasts every test. %s is the address of a healthy backend.
const stackRoutes = `routes:
  - name: orders
    match: {path_prefix: /orders}
    upstream: {service: orders}
    circuit_breaker: {consecutive_failures: 3, open_for: 10m}
  - name: payments
    match: {path_prefix: /payments}
    upstream: {service: payments}
    circuit_breaker: {consecutive_failures: 1, open_for: 10m}
  - name: limited
    match: {path_prefix: /limited}
    upstream: {static: [%q]}
    rate_limit: {rps: 0.001, burst: 1, key: "header:X-Client"}
`

// stack is an admin server and a proxy on one bbolt store, served on
// 127.0.0.1 with their /metrics, as `sluice server` and `sluice proxy
// --metrics-addr` serve them.
type stack struct {
	admin        string // admin server base URL; its /metrics too
	proxy        string // proxy base URL
	proxyMetrics string // the proxy's metrics URL
	token        string // bootstrap admin token
	client       *http.Client
	storeDown    *atomic.Bool // the admin server's store fails Ping (so /readyz answers 503)
	clients      atomic.Int64 // the last X-Client of the limited route
}

// flakyStore is a store whose Ping fails while down is set: the admin
// server then answers /readyz with 503 and counts a store error.
type flakyStore struct {
	configsvc.Store
	down *atomic.Bool
}

func (s flakyStore) Ping(ctx context.Context) error {
	if s.down.Load() {
		return fmt.Errorf("test: store made unreachable: %w", configsvc.ErrUnavailable)
	}
	return s.Store.Ping(ctx)
}

// startStack starts the stack and waits until the proxy routes to every
// instance; everything stops at t.Cleanup.
func startStack(t *testing.T) *stack {
	t.Helper()
	ctx := context.Background()
	store := bolttest.MustOpen(t, boltstore.Options{})
	down := &atomic.Bool{}
	adminReg := prometheus.NewRegistry()
	api, err := httpapi.New(httpapi.Config{Store: flakyStore{store, down}, Registry: adminReg, RequestTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	adminSrv := httptest.NewServer(api)
	t.Cleanup(func() {
		_ = api.Close()
		adminSrv.Close()
	})
	token, _, err := access.NewTokens(store.Records(), nil).Bootstrap(ctx, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := &stack{admin: adminSrv.URL, token: token, storeDown: down,
		client: &http.Client{Transport: &http.Transport{}, Timeout: 10 * time.Second}}
	t.Cleanup(s.client.CloseIdleConnections)

	// Routes are published through the admin API, as an operator does.
	for _, svc := range []string{configsvc.SystemService, "orders", "payments"} {
		if st := s.do(t, "PUT", s.admin+"/v1/services/"+svc, token, ""); st != http.StatusCreated && st != http.StatusConflict {
			t.Fatalf("create service %s: status %d", svc, st)
		}
	}
	okBackend := backend(t, http.StatusOK)
	failing := backend(t, http.StatusInternalServerError)
	if st := s.do(t, "PUT", s.admin+"/v1/services/"+configsvc.SystemService+"/files/"+configsvc.RoutesFile, token, fmt.Sprintf(stackRoutes, okBackend)); st/100 != 2 {
		t.Fatalf("publish routes: status %d", st)
	}
	for _, in := range []configsvc.Instance{
		{Service: "orders", ID: "orders-1", Addr: okBackend},
		{Service: "orders", ID: "orders-2", Addr: failing},
		{Service: "payments", ID: "payments-1", Addr: failing},
	} {
		in.Status = configsvc.StatusApplied
		lease, err := store.Register(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = lease.Close() })
	}

	proxyReg := prometheus.NewRegistry()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.proxy = "http://" + ln.Addr().String()
	pctx, cancel := context.WithCancel(ctx)
	served := make(chan error, 1)
	go func() {
		served <- proxyserver.Serve(pctx, store, ln, proxyserver.Options{Registerer: proxyReg, NoRegister: true, StateInterval: -1, MaxRateLimitKeys: 2})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("proxy: %v", err)
		}
	})
	metricsSrv := httptest.NewServer(promhttp.HandlerFor(proxyReg, promhttp.HandlerOpts{}))
	t.Cleanup(metricsSrv.Close)
	s.proxyMetrics = metricsSrv.URL + "/metrics"

	// Every instance has its breaker series once the proxy routes to it.
	testkit.Eventually(t, 10*time.Second, "the proxy picking up routes and instances", func() error {
		n := 0
		for key := range s.scrape(t, s.proxyMetrics) {
			if strings.HasPrefix(key, "sluice_proxy_breaker_state{") {
				n++
			}
		}
		if n != 3 {
			return fmt.Errorf("%d breaker series, want 3", n)
		}
		return nil
	})
	return s
}

// backend is an upstream that answers every request with status.
func backend(t *testing.T, status int) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(status) }))
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// do sends one request with more header name, value pairs and returns its
// status, 0 when it failed.
func (s *stack) do(t *testing.T, method, url, token, body string, header ...string) int {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	if body != "" {
		req.Header.Set("Content-Type", "text/plain")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// round drives one round of traffic: through the proxy 10 requests to
// orders, 5 to payments and 3 from new clients to limited; on the admin
// server 5 authorized reads, 2 without a token and 3 readiness probes (503
// while storeDown).
func (s *stack) round(t *testing.T) {
	t.Helper()
	for i := range 10 {
		s.do(t, "GET", fmt.Sprintf("%s/orders/%d", s.proxy, i), "", "")
	}
	for i := range 5 {
		s.do(t, "GET", fmt.Sprintf("%s/payments/%d", s.proxy, i), "", "")
	}
	for range 3 {
		s.do(t, "GET", s.proxy+"/limited", "", "", "X-Client", fmt.Sprint(s.clients.Add(1)))
	}
	for range 5 {
		if st := s.do(t, "GET", s.admin+"/v1/services/orders", s.token, ""); st != http.StatusOK {
			t.Errorf("GET /v1/services/orders: status %d", st)
		}
	}
	for range 2 {
		s.do(t, "GET", s.admin+"/v1/services/orders", "", "")
	}
	for range 3 {
		s.do(t, "GET", s.admin+"/readyz", "", "")
	}
}

// scrape reads a /metrics endpoint and returns its sluice_* samples by
// series ("name{k="v",…}", labels sorted), histograms as their _bucket,
// _sum and _count series.
func (s *stack) scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := s.client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: status %d", url, resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	mfs, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	out := map[string]float64{}
	for name, mf := range mfs {
		if !strings.HasPrefix(name, "sluice_") {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				out[seriesKey(name, labels)] = m.GetCounter().GetValue()
			case dto.MetricType_GAUGE:
				out[seriesKey(name, labels)] = m.GetGauge().GetValue()
			case dto.MetricType_HISTOGRAM:
				h := m.GetHistogram()
				for _, b := range h.GetBucket() {
					out[seriesKey(name+"_bucket", labels, "le", formatLe(b.GetUpperBound()))] = float64(b.GetCumulativeCount())
				}
				out[seriesKey(name+"_sum", labels)] = h.GetSampleSum()
				out[seriesKey(name+"_count", labels)] = float64(h.GetSampleCount())
			default:
				t.Fatalf("%s: unexpected metric type %v", name, mf.GetType())
			}
		}
	}
	return out
}

// formatLe writes a bucket bound as the exposition format does.
func formatLe(v float64) string { return model.SampleValue(v).String() }

// seriesKey renders a series in PromQL notation with sorted labels; extra
// are more name, value pairs.
func seriesKey(name string, labels map[string]string, extra ...string) string {
	all := make(map[string]string, len(labels)+len(extra)/2)
	for k, v := range labels {
		all[k] = v
	}
	for i := 0; i+1 < len(extra); i += 2 {
		all[extra[i]] = extra[i+1]
	}
	keys := make([]string, 0, len(all))
	for k := range all {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%q", k, all[k])
	}
	return name + "{" + strings.Join(parts, ",") + "}"
}
