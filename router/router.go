package router

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/lifecycle"
)

// Config holds a Router's dependencies. The zero value is a working router
// with no metrics, no logs, no pins, static upstreams only, no rate limits
// or breakers (a route that sets one is refused by Update), the built-in
// upstream denials (BuiltinUpstreamDeny) and a body timeout of
// DefaultBodyTimeout.
type Config struct {
	// Logger receives events: table swaps, instance changes, breaker state
	// changes, lookup failures. Nil discards them.
	Logger *slog.Logger
	// AccessLog receives one line per request (route, instance, pin, status,
	// duration …). Nil writes no access log.
	AccessLog *slog.Logger
	// Metrics receives measurements; nil records none (see router/prommetrics).
	Metrics Metrics
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Pins resolves pin tokens (router/proxyserver uses *access.Pins). Nil
	// refuses every pinned request with 403.
	Pins PinResolver
	// Instances lists services' instances; nil means only static upstreams
	// have instances.
	Instances InstanceSource
	// Limiters makes route rate limiters (router/ratelimit); required when a
	// route sets rate_limit.
	Limiters Limiters
	// Breakers makes instance circuit breakers (router/breaker); required
	// when a route sets circuit_breaker.
	Breakers Breakers
	// TrustedProxies are the peers whose X-Forwarded-For/-Proto/-Host and
	// X-Real-IP are kept (and whose X-Forwarded-For gives the client
	// address). Empty trusts no one: client-supplied X-Forwarded-* and
	// X-Real-IP are dropped.
	TrustedProxies []netip.Prefix
	// MaxIdleConnsPerHost sizes the upstream connection pool; 0 means 512.
	MaxIdleConnsPerHost int
	// DialTimeout bounds connecting to an upstream; 0 means 5 s.
	DialTimeout time.Duration
	// Upstream decides which addresses the router may connect to, checked
	// on every connection; the zero value refuses the built-in ranges
	// (cloud metadata, link-local) and allows the rest. See UpstreamPolicy.
	Upstream UpstreamPolicy
	// BodyTimeout bounds reading a request's body, from the moment the
	// request is forwarded: a client that trickles its body must not hold
	// an upstream connection. Past it the request is answered 408 and the
	// upstream request aborted. 0 means DefaultBodyTimeout; negative means
	// no bound. Responses, however long they stream, are not cut by it.
	BodyTimeout time.Duration
	// OnStateChange, when set, is called after an instance was ejected,
	// failed or passed its health checks, or came back (see
	// OutlierDetection, HealthCheck), so that a caller publishing State can
	// do so soon. It is called from the goroutine of the request or check
	// that caused the change and must not block.
	OnStateChange func()
}

// DefaultBodyTimeout is Config.BodyTimeout's default.
const DefaultBodyTimeout = time.Minute

// Router is the reverse proxy: an http.Handler that matches each request
// against the current route table and forwards it. Its methods are safe for
// concurrent use. Lifecycle: New, then Update with routes (any number of
// times), Run to follow service instances, Close to stop.
type Router struct {
	cfg       Config
	now       func() time.Time
	log       *slog.Logger
	access    *slog.Logger
	metrics   Metrics
	trusted   []netip.Prefix
	proxy     *httputil.ReverseProxy
	dialer    *net.Dialer
	guard     *upstreamGuard
	snap      atomic.Pointer[snapshot]
	statePool sync.Pool
	// Health checks run under bg (cancelled by Close) in hcGroup, through
	// hcTransport (which dials through guard, as requests do).
	bg          context.Context
	bgCancel    context.CancelFunc
	hcGroup     lifecycle.Group
	hcTransport *http.Transport

	mu         sync.Mutex
	routes     []Route
	table      *Table
	insts      map[string][]configsvc.Instance
	limiters   map[string]*limState
	states     map[string]*instState
	shared     map[string]*routeShared
	transports map[time.Duration]*http.Transport
	watches    map[string]context.CancelFunc
	changed    chan struct{}
	running    bool
	closed     bool
	runCancel  context.CancelFunc
	runDone    chan struct{}
	wg         sync.WaitGroup
}

// New returns a router with an empty table: every request gets 404 until
// Update installs routes. It starts no goroutine.
func New(cfg Config) (*Router, error) {
	r := &Router{
		cfg: cfg, now: cfg.Now, log: cfg.Logger, access: cfg.AccessLog, metrics: cfg.Metrics,
		trusted:    cfg.TrustedProxies,
		insts:      map[string][]configsvc.Instance{},
		limiters:   map[string]*limState{},
		states:     map[string]*instState{},
		shared:     map[string]*routeShared{},
		transports: map[time.Duration]*http.Transport{},
		watches:    map[string]context.CancelFunc{},
		changed:    make(chan struct{}, 1),
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.metrics == nil {
		r.metrics = nopMetrics{}
	}
	if r.cfg.MaxIdleConnsPerHost <= 0 {
		r.cfg.MaxIdleConnsPerHost = 512
	}
	if r.cfg.DialTimeout <= 0 {
		r.cfg.DialTimeout = 5 * time.Second
	}
	if r.cfg.BodyTimeout == 0 {
		r.cfg.BodyTimeout = DefaultBodyTimeout
	}
	r.guard = newUpstreamGuard(cfg.Upstream, r.log)
	r.dialer = &net.Dialer{Timeout: r.cfg.DialTimeout, KeepAlive: 30 * time.Second, Control: r.guard.control}
	r.statePool.New = func() any { return new(Exchange) }
	r.bg, r.bgCancel = context.WithCancel(context.Background())
	r.hcTransport = &http.Transport{
		DialContext:         r.dialer.DialContext,
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	r.proxy = &httputil.ReverseProxy{
		Rewrite:      r.rewrite,
		Transport:    roundTripper{r},
		ErrorHandler: r.proxyError,
		BufferPool:   newBufferPool(),
		ErrorLog:     slog.NewLogLogger(r.log.Handler(), slog.LevelWarn),
	}
	empty, _ := NewTable(nil)
	r.table = empty
	r.swap()
	return r, nil
}

// Update validates routes and swaps them in atomically: requests already
// running finish on the old table; limiter and breaker state is kept for
// routes whose name and settings did not change. On error (a
// *configsvc.FieldError naming the field) the current table stays.
func (r *Router) Update(routes []Route) error {
	t, err := NewTable(routes)
	if err != nil {
		return fmt.Errorf("router: routes: %w", err)
	}
	for i := range routes {
		if routes[i].RateLimit != nil && r.cfg.Limiters == nil {
			return fmt.Errorf("router: routes[%d].rate_limit: no limiter configured: %w", i, configsvc.ErrInvalid)
		}
		if routes[i].CircuitBreaker != nil && r.cfg.Breakers == nil {
			return fmt.Errorf("router: routes[%d].circuit_breaker: no breaker configured: %w", i, configsvc.ErrInvalid)
		}
	}
	r.mu.Lock()
	r.routes, r.table = routes, t
	r.swap()
	r.mu.Unlock()
	r.log.Info("route table updated", "routes", len(routes))
	r.warnRefusedStatic(routes)
	select {
	case r.changed <- struct{}{}:
	default:
	}
	return nil
}

// warnRefusedStatic logs the static upstream addresses the upstream policy
// will refuse (those given as IP addresses; names are checked once
// resolved, when connecting). The table still goes in: every connection is
// checked anyway, and a route file may be shared by proxies with different
// policies.
func (r *Router) warnRefusedStatic(routes []Route) {
	for i := range routes {
		for _, a := range routes[i].Upstream.Static {
			if ap, err := netip.ParseAddrPort(a); err == nil {
				if e := r.guard.check(ap); e != nil {
					r.log.Warn("static upstream refused by the upstream policy", "route", routes[i].Name, "addr", a, "reason", e.Reason)
				}
			}
		}
	}
}

// Table returns the route table in force.
func (r *Router) Table() *Table { return r.snap.Load().table }

// Run follows the instances of every service the routes name, rebuilding
// the table as they change, until ctx ends or Close is called; it then
// stops its watches and returns nil. It returns an error at once if the
// router is closed or Run is already running.
func (r *Router) Run(ctx context.Context) error {
	r.mu.Lock()
	if r.closed || r.running {
		r.mu.Unlock()
		return errors.New("router: Run: closed or already running")
	}
	ctx, cancel := context.WithCancel(ctx)
	r.running, r.runCancel, r.runDone = true, cancel, make(chan struct{})
	done := r.runDone
	r.mu.Unlock()
	defer close(done)
	defer func() {
		r.mu.Lock()
		r.running = false
		r.mu.Unlock()
	}()
	defer cancel()
	for {
		r.reconcile(ctx)
		select {
		case <-ctx.Done():
			r.mu.Lock()
			for svc, stop := range r.watches {
				stop()
				delete(r.watches, svc)
			}
			r.mu.Unlock()
			r.wg.Wait()
			return nil
		case <-r.changed:
		}
	}
}

// Close stops Run (waiting for its goroutines) and the health checks, and
// closes idle upstream connections. Requests in flight are not
// interrupted. Safe to call twice.
func (r *Router) Close() error {
	r.mu.Lock()
	r.closed = true
	cancel, done := r.runCancel, r.runDone
	r.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	r.bgCancel()
	r.hcGroup.Stop()
	r.hcGroup.Wait()
	r.mu.Lock()
	for _, st := range r.states {
		st.stop()
	}
	for _, t := range r.transports {
		t.CloseIdleConnections()
	}
	r.mu.Unlock()
	r.hcTransport.CloseIdleConnections()
	return nil
}

// reconcile starts a watch for every service the routes name and stops the
// watches of services no longer named.
func (r *Router) reconcile(ctx context.Context) {
	if r.cfg.Instances == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	want := map[string]bool{}
	for i := range r.routes {
		if s := r.routes[i].Upstream.Service; s != "" {
			want[s] = true
		}
	}
	for svc, stop := range r.watches {
		if !want[svc] {
			stop()
			delete(r.watches, svc)
			delete(r.insts, svc)
		}
	}
	for svc := range want {
		if _, ok := r.watches[svc]; ok {
			continue
		}
		wctx, stop := context.WithCancel(ctx)
		r.watches[svc] = stop
		r.wg.Add(1)
		go r.watch(wctx, svc)
	}
}

func (r *Router) watch(ctx context.Context, svc string) {
	defer r.wg.Done()
	for {
		for ev := range r.cfg.Instances.WatchInstances(ctx, svc) {
			if ev.Err != nil {
				r.log.Warn("instance watch", "service", svc, "err", ev.Err)
				continue
			}
			r.setInstances(ctx, svc, ev.Instances)
		}
		// The source ended the watch early: try again shortly.
		if lifecycle.Sleep(ctx, time.Second) != nil {
			return
		}
	}
}

func (r *Router) setInstances(ctx context.Context, svc string, list []configsvc.Instance) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ctx.Err() != nil {
		return // the watch was stopped; do not resurrect the service's list
	}
	ok := make([]configsvc.Instance, 0, len(list))
	for _, in := range list {
		// Instance.Validate ran when it was registered, unless the node was
		// written to ZooKeeper by other means: never dial what it refuses.
		if err := configsvc.ValidateInstanceAddr(in.Addr); err != nil {
			r.log.Warn("instance ignored: bad address", "service", svc, "instance", in.ID, "err", err)
			continue
		}
		ok = append(ok, in)
	}
	list = ok
	r.insts[svc] = list
	r.swap()
	ids := make([]string, len(list))
	for i := range list {
		ids[i] = list[i].ID
	}
	r.log.Info("instances changed", "service", svc, "instances", ids)
}

// SetInstances replaces the instance list of svc, for programs that track
// instances themselves instead of giving Config.Instances to Run.
func (r *Router) SetInstances(svc string, list []configsvc.Instance) {
	r.setInstances(context.Background(), svc, list)
}

// snapshot is what one request reads: the table plus per-route runtime.
type snapshot struct {
	table  *Table
	routes []*routeRT // by route index
	none   RouteMetrics
	noneUp UpstreamMetrics
}

type routeRT struct {
	route     *Route
	metrics   RouteMetrics
	self      UpstreamMetrics // answers the proxy gives itself
	limiter   Limiter
	lim       *limState // limiter and its refusal count, kept across swaps
	keyKind   string
	keyHeader string
	policy    string // RateLimit-Policy value
	transport *http.Transport
	timeout   time.Duration // Route.EffectiveTimeout
	pool                    // every instance of the route
	byID      map[string]*inst
	subsets   *subsetsRT // nil without Upstream.Subsets
	retry     *retryRT   // nil without retries
	outlier   *outlierRT // nil without outlier detection
	health    bool       // outlier detection or health check: skip instances out
	shared    *routeShared
	res       ResilienceMetrics
	tmpl      stateTemplates
	openFor   time.Duration
	openStr   string // openFor.String(), for State
	prefixLen int    // for strip_prefix
}

type inst struct {
	id, addr string
	st       *instState
	m        UpstreamMetrics
}

// instState is the state of one instance that outlives table swaps.
type instState struct {
	inflight atomic.Int64
	breaker  Breaker
	openedAt atomic.Int64 // unix nanoseconds of the last trip
	trips    atomic.Uint64
	requests atomic.Uint64
	failures atomic.Uint64

	// mu orders the breaker's metric updates against retire: once retired
	// (no route uses the state any more), a request still running on an
	// old table can no longer write the breaker's series back after it
	// was deleted or taken over by the state's successor.
	mu      sync.Mutex
	retired bool

	instHealth                    // outlier detection and health checks
	stopHC     context.CancelFunc // ends the health checks; nil without
}

// retire marks st as dropped from the router and stops what runs for it.
func (st *instState) retire() {
	st.mu.Lock()
	st.retired = true
	st.mu.Unlock()
	st.stop()
}

// limState is a route's limiter with its refusal count; it outlives table
// swaps for as long as the route's name and rate limit stay the same.
type limState struct {
	lim      Limiter
	rejected atomic.Uint64
}

// swap builds a snapshot of r.table and r.insts, deletes the metric series
// the old snapshot had and the new one lacks, and installs it. Caller holds
// mu.
func (r *Router) swap() {
	old := r.snap.Load()
	s := r.build()
	if old != nil {
		forgetDeparted(old, s)
	}
	r.snap.Store(s)
}

// forgetDeparted deletes the series of every instance that was in a route
// of old and is not in that route of s, so that instances that come and go
// do not grow the metrics without bound. When a route dropped its circuit
// breaker, outlier detection or health check, its instances' series are
// deleted too (no gauge stays behind), s's handles, not yet in use, are
// taken again and the gauges the route keeps are set again.
func forgetDeparted(old, s *snapshot) {
	byName := make(map[string]*routeRT, len(s.routes))
	for _, rt := range s.routes {
		byName[rt.route.Name] = rt
	}
	for _, ort := range old.routes {
		nrt := byName[ort.route.Name]
		for _, in := range ort.insts {
			var nin *inst
			if nrt != nil {
				nin = nrt.byID[in.id]
			}
			switch {
			case nin == nil:
				ort.metrics.Forget(in.id)
			case ort.route.CircuitBreaker != nil && nrt.route.CircuitBreaker == nil,
				ort.route.OutlierDetection != nil && nrt.route.OutlierDetection == nil,
				ort.route.HealthCheck != nil && nrt.route.HealthCheck == nil:
				nrt.metrics.Forget(in.id)
				nin.m = nrt.metrics.Upstream(in.id)
				exportInstance(nrt, nin) // the series the route still has
			}
		}
	}
}

// build makes a snapshot of r.table and r.insts, reusing limiter,
// instance (breaker, ejection, health check) and route shared state (retry
// budget, panic mode) by key and dropping (retiring) state no route uses.
// Caller holds mu.
func (r *Router) build() *snapshot {
	s := &snapshot{table: r.table, routes: make([]*routeRT, len(r.table.routes))}
	s.none = r.metrics.Route("")
	s.noneUp = s.none.Upstream("")
	used := usedState{limiters: map[string]bool{}, states: map[string]bool{}, shared: map[string]bool{}}
	for i := range r.table.routes {
		s.routes[i] = r.buildRoute(&r.table.routes[i], used)
	}
	for k := range r.limiters {
		if !used.limiters[k] {
			delete(r.limiters, k)
		}
	}
	for k, st := range r.states {
		if !used.states[k] {
			st.retire()
			delete(r.states, k)
		}
	}
	for k := range r.shared {
		if !used.shared[k] {
			delete(r.shared, k)
		}
	}
	for i, rt := range s.routes {
		r.finishShared(rt, &r.table.routes[i]) // after retire: counts only states in use
	}
	for d, t := range r.transports {
		used := false
		for _, rt := range s.routes {
			used = used || rt.transport == t
		}
		if !used {
			t.CloseIdleConnections()
			delete(r.transports, d)
		}
	}
	return s
}

// usedState collects the keys of the limiters (Router.limiters), instance
// states (Router.states) and routes' shared state (Router.shared) a new
// snapshot uses; build drops the rest.
type usedState struct {
	limiters, states, shared map[string]bool
}

// buildRoute makes the runtime of route rc: its transport, its limiter,
// its retries, outlier detection and health checks, its instances with
// their breakers and its subsets, taking limiter, instance and shared
// state that outlive swaps from r by key. Caller holds mu.
func (r *Router) buildRoute(rc *Route, used usedState) *routeRT {
	rt := &routeRT{route: rc, metrics: r.metrics.Route(rc.Name), byID: map[string]*inst{}}
	rt.self = rt.metrics.Upstream("")
	rt.pool.what = "route " + rc.Name
	if s := rc.Upstream.Service; s != "" {
		rt.pool.what = "service " + s
	}
	r.buildResilience(rt, rc, used)
	rt.timeout = rc.EffectiveTimeout()
	rt.transport = r.transportFor(rt.timeout)
	if rc.StripPrefix {
		rt.prefixLen = len(rc.Match.PathPrefix)
	}
	if rc.RateLimit != nil {
		r.attachLimiter(rt, *rc.RateLimit, used)
	}
	var cbKey string
	if cb := rc.CircuitBreaker; cb != nil {
		rt.openFor = cb.EffectiveOpenFor()
		rt.openStr = rt.openFor.String()
		cbKey = fmt.Sprintf("%d/%s/%d", cb.ConsecutiveFailures, rt.openFor, cb.EffectiveHalfOpen())
	}
	settings := cbKey + "|" + rc.resilienceKey()
	for _, m := range r.members(rc) {
		r.addInstance(rt, m, settings, used)
	}
	r.buildSubsets(rt, rc)
	buildStateTemplates(rt, rc)
	return rt
}

// attachLimiter gives rt the limiter of rate limit rl: the one r already
// has for the route's name and these settings, else a new one.
func (r *Router) attachLimiter(rt *routeRT, rl RateLimit, used usedState) {
	name := rt.route.Name
	key := fmt.Sprintf("%s|%g|%d|%s|%s", name, rl.RPS, rl.EffectiveBurst(), rl.Key, rl.EffectiveScope())
	ls, ok := r.limiters[key]
	if !ok {
		ls = &limState{lim: r.cfg.Limiters.NewLimiter(name, rl, rt.metrics.KeysCapHit)}
		r.limiters[key] = ls
	}
	used.limiters[key] = true
	rt.limiter, rt.lim = ls.lim, ls
	rt.keyKind, rt.keyHeader = rl.KeyKind()
	q := int(rl.RPS + 0.999999)
	rt.policy = strconv.Quote(name) + ";q=" + strconv.Itoa(q) + ";w=1"
}

// member is one upstream instance of a route as the table is built.
type member struct {
	id, addr string
	weight   int
}

// members returns the upstream instances of rc ordered by id: the
// registered instances of its service that have an address (weighted by
// their weight label), or its static addresses. Upstream.Weights
// overrides the weight of the ids it names.
func (r *Router) members(rc *Route) []member {
	var members []member
	if rc.Upstream.Service != "" {
		for _, in := range r.insts[rc.Upstream.Service] {
			if in.Addr == "" {
				continue
			}
			w := 1
			if v, ok := configsvc.ParseWeight(in.Labels[WeightLabel]); ok {
				w = v
			}
			members = append(members, member{in.ID, in.Addr, w})
		}
	} else {
		for _, a := range rc.Upstream.Static {
			members = append(members, member{a, a, 1})
		}
	}
	for i := range members {
		if w, ok := rc.Upstream.Weights[members[i].id]; ok {
			members[i].weight = w
		}
	}
	sort.Slice(members, func(a, b int) bool { return members[a].id < members[b].id })
	return members
}

// addInstance appends m to rt's instances with the state r keeps for it
// (breaker, counters, ejection and health checks) while the route's name,
// its breaker, outlier detection and health check settings (settings) and
// m's id and address stay the same. A new state starts its health checks.
func (r *Router) addInstance(rt *routeRT, m member, settings string, used usedState) {
	rc := rt.route
	key := rc.Name + "|" + settings + "|" + m.id + "|" + m.addr
	st, ok := r.states[key]
	if !ok {
		st = &instState{}
		if cb := rc.CircuitBreaker; cb != nil {
			st.breaker = r.cfg.Breakers.NewBreaker(rc.Name+"/"+m.id, *cb, r.onBreakerChange(rc.Name, m.id, st))
			rt.metrics.BreakerState(m.id, BreakerClosed) // export the series from the start
		}
		r.initHealth(rt, rc, st, m.id, m.addr)
		r.states[key] = st
	}
	used.states[key] = true
	in := &inst{id: m.id, addr: m.addr, st: st, m: rt.metrics.Upstream(m.id)}
	rt.insts = append(rt.insts, in)
	rt.byID[m.id] = in
	rt.cum = append(rt.cum, m.weight+lastOr0(rt.cum))
}

func (r *Router) onBreakerChange(route, id string, st *instState) func(from, to BreakerState) {
	return func(from, to BreakerState) {
		if to == BreakerOpen {
			st.openedAt.Store(r.now().UnixNano())
			st.trips.Add(1)
			if st.hc != nil {
				// With health checks, only they bring the instance back.
				r.markUnhealthy(st, true, st.breakerOpenFor)
			}
		}
		st.mu.Lock()
		if !st.retired {
			r.metrics.Route(route).BreakerState(id, to)
		}
		st.mu.Unlock()
		r.log.Warn("circuit breaker", "route", route, "instance", id, "from", from.String(), "to", to.String())
	}
}

// transportFor returns the shared transport for one response-header
// timeout. Caller holds mu.
func (r *Router) transportFor(timeout time.Duration) *http.Transport {
	if t, ok := r.transports[timeout]; ok {
		return t
	}
	t := &http.Transport{
		Proxy:                 nil,
		DialContext:           r.dialer.DialContext,
		MaxIdleConns:          0, // no global cap: the per-host cap bounds the pool
		MaxIdleConnsPerHost:   r.cfg.MaxIdleConnsPerHost,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: timeout,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true, // pass bodies through as the upstream sent them
		WriteBufferSize:       16 << 10,
		ReadBufferSize:        16 << 10,
	}
	r.transports[timeout] = t
	return t
}

// bufferPool recycles ReverseProxy's copy buffers. It stores array
// pointers, so that neither Get nor Put allocates.
type bufferPool struct{ p sync.Pool }

const copyBufferSize = 32 << 10

func newBufferPool() *bufferPool {
	bp := &bufferPool{}
	bp.p.New = func() any { return new([copyBufferSize]byte) }
	return bp
}

func (bp *bufferPool) Get() []byte { return bp.p.Get().(*[copyBufferSize]byte)[:] }

func (bp *bufferPool) Put(b []byte) {
	if cap(b) == copyBufferSize {
		bp.p.Put((*[copyBufferSize]byte)(b[:copyBufferSize]))
	}
}
