package router_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sluicehq/sluice/configsvc/testkit"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/router"
	"github.com/sluicehq/sluice/router/breaker"
	"github.com/sluicehq/sluice/router/fasthttpengine"
	"github.com/sluicehq/sluice/router/loopengine"
	"github.com/sluicehq/sluice/router/ratelimit"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, testkit.LeakOptions()...)
}

// engine serves a router on a loopback listener for a test and stops it
// at cleanup; it returns the listener's address.
type engine struct {
	name  string
	serve func(t *testing.T, r *router.Router) string
}

// engines are the engines every proxy test runs on (forEngines): the
// net/http one (Router.ServeHTTP), the fasthttp one and the event-loop one
// (which hands the fasthttp one what it does not serve). The fasthttp one
// ticks every 5 ms, so that the tests' timeouts from 50 ms up are kept by
// its watchdog (router/proxyserver's tests run it with the default tick:
// their sub-second timeouts are set on the sockets).
var engines = []engine{
	{"std", func(t *testing.T, r *router.Router) string {
		srv := httptest.NewServer(r)
		t.Cleanup(srv.Close)
		return srv.Listener.Addr().String()
	}},
	{"fast", func(t *testing.T, r *router.Router) string {
		return serveEngine(t, fasthttpengine.New(r, fasthttpengine.Options{TimerTick: 5 * time.Millisecond}))
	}},
	{"loop", func(t *testing.T, r *router.Router) string {
		e := loopengine.New(r, loopengine.Options{TimerTick: 5 * time.Millisecond})
		t.Cleanup(func() { t.Logf("loop engine: %+v", e.Counts()) }) // after Shutdown
		return serveEngine(t, e)
	}},
}

// serveEngine serves e on a loopback listener, shutting it down at
// cleanup (its Serve and Shutdown must both return nil), and returns the
// listener's address.
func serveEngine(t *testing.T, e interface {
	Serve(net.Listener) error
	Shutdown(context.Context) error
}) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- e.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := e.Shutdown(ctx); err != nil {
			t.Errorf("%T shutdown: %v", e, err)
		}
		if err := <-done; err != nil {
			t.Errorf("%T Serve: %v", e, err)
		}
	})
	return ln.Addr().String()
}

// forEngines runs f as a subtest per engine, named after it; newProxy
// inside f (and its subtests) serves on that engine.
func forEngines(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	for _, e := range engines {
		t.Run(e.name, f)
	}
}

// engineOf returns the engine of the forEngines subtest t runs in.
func engineOf(t *testing.T) engine {
	t.Helper()
	parts := strings.Split(t.Name(), "/")
	if len(parts) >= 2 {
		for _, e := range engines {
			if parts[1] == e.name {
				return e
			}
		}
	}
	t.Fatalf("%s: newProxy must run inside forEngines", t.Name())
	return engine{}
}

// backend is a real upstream on loopback that names itself in X-Backend and
// echoes what it received in X-Got-* headers.
type backend struct {
	name string
	addr string
	hits atomic.Int64
	mu   sync.Mutex
	srv  *httptest.Server
	h    http.HandlerFunc
}

func startBackend(t *testing.T, name string, h http.HandlerFunc) *backend {
	t.Helper()
	b := &backend{name: name, h: h}
	b.srv = httptest.NewServer(http.HandlerFunc(b.serve))
	b.addr = b.srv.Listener.Addr().String()
	t.Cleanup(b.stop)
	return b
}

func (b *backend) serve(w http.ResponseWriter, r *http.Request) {
	b.hits.Add(1)
	w.Header().Set("X-Backend", b.name)
	w.Header().Set("X-Got-Path", r.URL.Path)
	w.Header().Set("X-Got-XFF", r.Header.Get("X-Forwarded-For"))
	w.Header().Set("X-Got-Host", r.Host)
	w.Header().Set("X-Got-Pin", r.Header.Get(router.PinHeader))
	if b.h != nil {
		b.h(w, r)
		return
	}
	_, _ = io.WriteString(w, b.name)
}

// stop kills the backend: its port refuses connections afterwards.
func (b *backend) stop() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.srv != nil {
		b.srv.CloseClientConnections()
		b.srv.Close()
		b.srv = nil
	}
}

// restart serves again on the same address.
func (b *backend) restart(t *testing.T) {
	t.Helper()
	b.mu.Lock()
	defer b.mu.Unlock()
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ {
		if ln, err = net.Listen("tcp", b.addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("restart %s on %s: %v", b.name, b.addr, err)
	}
	b.srv = &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(b.serve)}}
	b.srv.Start()
}

func inst(svc, id, addr string) configsvc.Instance {
	return configsvc.Instance{Service: svc, ID: id, Addr: addr, Status: configsvc.StatusApplied}
}

// proxyEnv is a router served on loopback with a client for it.
type proxyEnv struct {
	r       *router.Router
	addr    string // the proxy's listener
	client  *http.Client
	url     string
	metrics *recMetrics
}

func newProxy(t *testing.T, cfg router.Config, routes []router.Route) *proxyEnv {
	t.Helper()
	m := newRecMetrics()
	if cfg.Metrics == nil {
		cfg.Metrics = m
	}
	if cfg.Limiters == nil {
		cfg.Limiters = ratelimit.New(ratelimit.Config{})
	}
	if cfg.Breakers == nil {
		cfg.Breakers = breaker.New()
	}
	r, err := router.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Update(routes); err != nil {
		t.Fatalf("Update: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() }) // after the engine stopped: cleanups run last first
	addr := engineOf(t).serve(t, r)
	tr := &http.Transport{MaxIdleConnsPerHost: 64}
	t.Cleanup(tr.CloseIdleConnections)
	return &proxyEnv{r: r, addr: addr, client: &http.Client{Transport: tr, Timeout: 10 * time.Second}, url: "http://" + addr, metrics: m}
}

type result struct {
	status int
	header http.Header
	body   string
}

func (e *proxyEnv) do(t *testing.T, method, path string, hdr map[string]string) result {
	t.Helper()
	req, err := http.NewRequest(method, e.url+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return result{resp.StatusCode, resp.Header, string(b)}
}

func (e *proxyEnv) get(t *testing.T, path string) result {
	t.Helper()
	return e.do(t, http.MethodGet, path, nil)
}

// errorOf decodes Sluice's JSON error shape.
func errorOf(t *testing.T, res result) (code, msg string, details map[string]string) {
	t.Helper()
	var body struct {
		Error struct {
			Code    string            `json:"code"`
			Message string            `json:"message"`
			Details map[string]string `json:"details"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(res.body), &body); err != nil {
		t.Fatalf("body %q is not the JSON error shape: %v", res.body, err)
	}
	return body.Error.Code, body.Error.Message, body.Error.Details
}

// recMetrics records what the router reports.
type recMetrics struct {
	mu        sync.Mutex
	responses map[string]int // route/instance/status
	limited   map[string]int
	capHits   map[string]int
	refused   map[string]int
	breaker   map[string][]router.BreakerState // route/instance → transitions
	retried   map[string]int                   // route → retries sent
	exhausted map[string]int                   // route → retries the budget refused
	ejected   map[string][]bool                // route/instance → ejection states set
	healthy   map[string][]bool                // route/instance → health states set
	panic     map[string][]bool                // route → panic states set
}

func newRecMetrics() *recMetrics {
	return &recMetrics{responses: map[string]int{}, limited: map[string]int{}, capHits: map[string]int{}, refused: map[string]int{}, breaker: map[string][]router.BreakerState{},
		retried: map[string]int{}, exhausted: map[string]int{}, ejected: map[string][]bool{}, healthy: map[string][]bool{}, panic: map[string][]bool{}}
}

func (m *recMetrics) Route(route string) router.RouteMetrics { return &recRoute{m, route} }

func (m *recMetrics) breakerStates(key string) []router.BreakerState {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]router.BreakerState(nil), m.breaker[key]...)
}

// opened reports whether the breaker of route/instance has opened.
func (m *recMetrics) opened(key string) bool {
	for _, s := range m.breakerStates(key) {
		if s == router.BreakerOpen {
			return true
		}
	}
	return false
}

type recRoute struct {
	m     *recMetrics
	route string
}

func (r *recRoute) Upstream(instance string) router.UpstreamMetrics {
	return recUp{r.m, r.route + "/" + instance}
}
func (r *recRoute) Observe(time.Duration) {}
func (r *recRoute) RateLimited() {
	r.m.mu.Lock()
	r.m.limited[r.route]++
	r.m.mu.Unlock()
}
func (r *recRoute) KeysCapHit() {
	r.m.mu.Lock()
	r.m.capHits[r.route]++
	r.m.mu.Unlock()
}
func (r *recRoute) UpstreamRefused() {
	r.m.mu.Lock()
	r.m.refused[r.route]++
	r.m.mu.Unlock()
}
func (r *recRoute) BreakerState(instance string, s router.BreakerState) {
	r.m.mu.Lock()
	r.m.breaker[r.route+"/"+instance] = append(r.m.breaker[r.route+"/"+instance], s)
	r.m.mu.Unlock()
}

func (r *recRoute) Retried()              { r.m.add(r.m.retried, r.route) }
func (r *recRoute) RetryBudgetExhausted() { r.m.add(r.m.exhausted, r.route) }
func (r *recRoute) Ejected(instance string, ejected bool) {
	r.m.set(r.m.ejected, r.route+"/"+instance, ejected)
}
func (r *recRoute) Healthy(instance string, healthy bool) {
	r.m.set(r.m.healthy, r.route+"/"+instance, healthy)
}
func (r *recRoute) Panic(on bool) { r.m.set(r.m.panic, r.route, on) }

// add counts one under key.
func (m *recMetrics) add(counts map[string]int, key string) {
	m.mu.Lock()
	counts[key]++
	m.mu.Unlock()
}

// set records state under key.
func (m *recMetrics) set(states map[string][]bool, key string, state bool) {
	m.mu.Lock()
	states[key] = append(states[key], state)
	m.mu.Unlock()
}

// count returns one of the recorder's counts under its lock.
func (m *recMetrics) count(counts map[string]int, key string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return counts[key]
}

// last returns the last state recorded under key in states, and whether any was.
func (m *recMetrics) last(states map[string][]bool, key string) (bool, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := states[key]
	if len(s) == 0 {
		return false, false
	}
	return s[len(s)-1], true
}

// Forget keeps the record: tests read what an instance did after it left.
// router/prommetrics tests that departed instances' series are deleted.
func (r *recRoute) Forget(string) {}

type recUp struct {
	m   *recMetrics
	key string
}

func (u recUp) Response(status int) {
	u.m.mu.Lock()
	u.m.responses[u.key+"/"+http.StatusText(status)]++
	u.m.mu.Unlock()
}

// fakeInstances is an InstanceSource whose lists the test sets.
type fakeInstances struct {
	mu    sync.Mutex
	lists map[string][]configsvc.Instance
	subs  map[string][]chan configsvc.InstancesEvent
}

func newFakeInstances() *fakeInstances {
	return &fakeInstances{lists: map[string][]configsvc.Instance{}, subs: map[string][]chan configsvc.InstancesEvent{}}
}

func (f *fakeInstances) WatchInstances(ctx context.Context, svc string) <-chan configsvc.InstancesEvent {
	ch := make(chan configsvc.InstancesEvent, 16)
	f.mu.Lock()
	ch <- configsvc.InstancesEvent{Instances: f.lists[svc]}
	f.subs[svc] = append(f.subs[svc], ch)
	f.mu.Unlock()
	go func() {
		<-ctx.Done()
		f.mu.Lock()
		defer f.mu.Unlock()
		subs := f.subs[svc]
		for i, c := range subs {
			if c == ch {
				f.subs[svc] = append(subs[:i], subs[i+1:]...)
				break
			}
		}
		close(ch)
	}()
	return ch
}

func (f *fakeInstances) set(svc string, list ...configsvc.Instance) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.lists[svc] = list
	for _, c := range f.subs[svc] {
		c <- configsvc.InstancesEvent{Instances: list}
	}
}

// hammer sends n requests from conc goroutines (req builds request i) and
// returns how many got each status; a transport error fails the test.
func (e *proxyEnv) hammer(t *testing.T, n, conc int, req func(i int) *http.Request) map[int]int {
	t.Helper()
	var next atomic.Int64
	var mu sync.Mutex
	statuses := map[int]int{}
	errs := make(chan error, conc)
	var wg sync.WaitGroup
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				resp, err := e.client.Do(req(i))
				if err != nil {
					errs <- err
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mu.Lock()
				statuses[resp.StatusCode]++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("request: %v", err)
	}
	return statuses
}

// getReq is a GET of path on e with headers (name, value …).
func (e *proxyEnv) getReq(path string, hdr ...string) *http.Request {
	req, _ := http.NewRequest(http.MethodGet, e.url+path, nil)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return req
}

// labelled is an instance of svc with labels (name, value …).
func labelled(svc, id, addr string, labels ...string) configsvc.Instance {
	in := inst(svc, id, addr)
	in.Labels = map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		in.Labels[labels[i]] = labels[i+1]
	}
	return in
}

// routeState returns the live state of route name.
func routeState(t *testing.T, r *router.Router, name string) configsvc.RouteState {
	t.Helper()
	for _, rs := range r.State().Routes {
		if rs.Name == name {
			return rs
		}
	}
	t.Fatalf("route %s not in the state", name)
	return configsvc.RouteState{}
}

// flaky is a backend whose requests and health checks fail while broken.
type flaky struct {
	*backend
	broken   atomic.Bool
	hcBroken atomic.Bool
	reqs     atomic.Int64 // requests other than health checks
	checks   atomic.Int64 // health checks
}

func startFlaky(t *testing.T, name string) *flaky {
	t.Helper()
	f := &flaky{}
	f.backend = startBackend(t, name, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			f.checks.Add(1)
			if f.hcBroken.Load() {
				w.WriteHeader(http.StatusServiceUnavailable)
			}
			return
		}
		f.reqs.Add(1)
		if f.broken.Load() {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		_, _ = w.Write([]byte(name))
	})
	return f
}

func pct(n int) *int { return &n }

// ejectedIDs returns the ids of the route's ejected instances.
func ejectedIDs(t *testing.T, r *router.Router, route string) []string {
	t.Helper()
	var out []string
	for _, in := range routeState(t, r, route).Instances {
		if in.Ejected {
			out = append(out, in.ID)
		}
	}
	return out
}

// startFlakies starts n flaky backends named b0, b1 …, broken where
// broken(i) holds, and returns them with their addresses.
func startFlakies(t *testing.T, n int, broken func(i int) bool) ([]*flaky, []string) {
	t.Helper()
	all := make([]*flaky, n)
	addrs := make([]string, n)
	for i := range n {
		all[i] = startFlaky(t, fmt.Sprintf("b%d", i))
		all[i].broken.Store(broken(i))
		addrs[i] = all[i].addr
	}
	return all, addrs
}

// requestsDuring returns how many requests, health checks aside, each of
// fs got while send ran.
func requestsDuring(fs []*flaky, send func()) []int64 {
	got := make([]int64, len(fs))
	for i, f := range fs {
		got[i] = -f.reqs.Load()
	}
	send()
	for i, f := range fs {
		got[i] += f.reqs.Load()
	}
	return got
}

// instanceState returns the state of instance addr on route.
func instanceState(t *testing.T, r *router.Router, route, addr string) (ejected bool, health, breaker string) {
	t.Helper()
	for _, in := range routeState(t, r, route).Instances {
		if in.Addr == addr {
			return in.Ejected, in.Health, in.Breaker
		}
	}
	t.Fatalf("instance %s not on route %s", addr, route)
	return
}

// startHanging starts a backend that never answers: each request waits
// until its client gives up or the test ends.
func startHanging(t *testing.T, name string) *backend {
	t.Helper()
	release := make(chan struct{})
	b := startBackend(t, name, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	t.Cleanup(func() { close(release) }) // before the backend stops: it waits for its handlers
	return b
}
