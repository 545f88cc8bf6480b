package proxyserver

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
	"github.com/sluicehq/sluice/configsvc/lifecycle"
	"github.com/sluicehq/sluice/router"
	"github.com/sluicehq/sluice/router/breaker"
	"github.com/sluicehq/sluice/router/loopengine"
	"github.com/sluicehq/sluice/router/prommetrics"
	"github.com/sluicehq/sluice/router/ratelimit"
	"github.com/sluicehq/sluice/router/routesfile"
)

// Source is what the proxy needs of a store. configsvc.Store satisfies it.
type Source interface {
	Snapshot(ctx context.Context, ref configsvc.Ref, rev int64) (configsvc.Snapshot, error)
	Watch(ctx context.Context, ref configsvc.Ref, from int64, opts ...configsvc.WatchOption) <-chan configsvc.Event
	WatchInstances(ctx context.Context, svc string) <-chan configsvc.InstancesEvent
	Records() configsvc.RecordStore
}

// Options configures a Proxy. The zero value is a working default.
type Options struct {
	// Logger receives events (route reloads, instance changes, breaker
	// state changes). Nil discards them.
	Logger *slog.Logger
	// AccessLog receives one line per request. Nil writes none.
	AccessLog *slog.Logger
	// Registerer receives the proxy's Prometheus collectors. Nil records no
	// metrics.
	Registerer prometheus.Registerer
	// TrustedProxies are the peers whose X-Forwarded-* (and X-Real-IP)
	// headers are kept.
	TrustedProxies []netip.Prefix
	// Upstream is the upstream policy: which addresses the proxy may
	// connect to (see router.UpstreamPolicy). Serve adds the address it
	// listens on to Upstream.Own.
	Upstream router.UpstreamPolicy
	// ReadHeaderTimeout bounds reading a request's headers (slow-loris
	// clients); 0 means DefaultReadHeaderTimeout.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a request's body once its headers are
	// read, so that a client trickling its body cannot hold an upstream
	// connection (router.Config.BodyTimeout): past it the request is
	// answered 408. Responses are not cut by it. 0 means
	// DefaultReadTimeout.
	ReadTimeout time.Duration
	// IdleTimeout is how long a client's keep-alive connection may wait
	// for its next request; 0 means DefaultIdleTimeout.
	IdleTimeout time.Duration
	// Now is the clock for rate limits and pin expiry; nil means time.Now.
	Now func() time.Time
	// PinCacheTTL is how long a looked-up pin is reused: how long a
	// revocation may take to reach this proxy. 0 means 2 s.
	PinCacheTTL time.Duration
	// MaxRateLimitKeys bounds each per-key rate limiter; 0 means 10000.
	MaxRateLimitKeys int
	// RetryInterval is the wait before reloading the route file after the
	// store failed, or, when the Source cannot create it (Creator),
	// sluice-system does not exist yet; 0 means 2 s.
	RetryInterval time.Duration
	// ShutdownTimeout bounds the graceful shutdown of Serve; 0 means 10 s.
	ShutdownTimeout time.Duration
	// InstanceID is the id under which Serve registers the proxy as an
	// instance of sluice-system (label role=proxy), so that proxies can
	// share rate limits with scope: cluster. Empty means
	// DefaultInstanceID(listen address).
	InstanceID string
	// NoRegister stops Serve from registering the proxy. Registration also
	// needs a Source that implements Registrar.
	NoRegister bool
	// Engine is the engine serving the listener: EngineLoop (the default
	// when empty), EngineFast or EngineStd. New refuses other names.
	Engine string
	// TLSCertFile and TLSKeyFile, when both set, make Serve terminate TLS
	// with the PEM certificate (chain) and key in these files, loaded
	// again when either file changes (checked at most once a second, by
	// new handshakes: no restart). ALPN offers h2 and http/1.1: HTTP/2
	// clients are served by net/http whatever the Engine.
	TLSCertFile, TLSKeyFile string
	// StateInterval is how often Serve publishes the proxy's live route
	// table (configsvc.ProxyState, see Proxy.State) as a record of
	// configsvc.ProxyStateCollection under the proxy's instance id, for the admin
	// server's GET /v1/routes; Serve also publishes shortly (at most once a
	// second) after the route table or a circuit breaker changed, and
	// removes the record when it stops. 0 means DefaultStateInterval;
	// negative publishes nothing.
	StateInterval time.Duration
}

// Defaults of the listener's timeouts (Options).
const (
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = time.Minute
	DefaultIdleTimeout       = 2 * time.Minute
)

// Proxy is a router following a store. Lifecycle: New, Run (in its own
// goroutine, or use Serve), Close.
type Proxy struct {
	src    Source
	opts   Options
	log    *slog.Logger
	router *router.Router
	// limiters divides cluster-scoped rate limits among the live proxies.
	limiters *router.ClusterLimiters

	now     func() time.Time
	changes chan struct{} // route table or breaker changed: publish the state soon
	applied chan struct{} // a new route file revision is in force: update the registration

	// rewrites counts the route file's histories found rewritten
	// (sluice_proxy_history_rewrites_total when Options.Registerer is set).
	rewrites     atomic.Int64
	rewriteCount prometheus.Counter

	// loop is the loop engine serving, once Serve has made it (its
	// counts are sluice_proxy_loop_requests_total and
	// sluice_proxy_loop_handoffs_total).
	loop atomic.Pointer[loopengine.Engine]

	mu         sync.Mutex
	revision   int64  // route file revision in force (0: none)
	instanceID string // this proxy's registration id ("" when not registered)
	stateID    string // the id of its published state ("" when not published)
	addr       string // the address Serve serves on
}

// New builds the proxy; it starts nothing.
func New(src Source, opts Options) (*Proxy, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.RetryInterval <= 0 {
		opts.RetryInterval = 2 * time.Second
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 10 * time.Second
	}
	if opts.ReadHeaderTimeout <= 0 {
		opts.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if opts.ReadTimeout <= 0 {
		opts.ReadTimeout = DefaultReadTimeout
	}
	if opts.IdleTimeout <= 0 {
		opts.IdleTimeout = DefaultIdleTimeout
	}
	if err := checkEngine(opts.Engine); err != nil {
		return nil, err
	}
	if (opts.TLSCertFile == "") != (opts.TLSKeyFile == "") {
		return nil, errors.New("proxyserver: TLS needs both a certificate file and a key file")
	}
	limiters := router.NewClusterLimiters(ratelimit.New(ratelimit.Config{MaxKeys: opts.MaxRateLimitKeys}))
	p := &Proxy{src: src, opts: opts, log: opts.Logger, limiters: limiters, now: opts.Now,
		changes: make(chan struct{}, 1), applied: make(chan struct{}, 1)}
	if p.now == nil {
		p.now = time.Now
	}
	cfg := router.Config{
		Logger:         opts.Logger,
		AccessLog:      opts.AccessLog,
		Now:            opts.Now,
		Pins:           access.NewPins(src.Records(), access.PinsConfig{Now: opts.Now, CacheTTL: opts.PinCacheTTL}),
		Instances:      src,
		Limiters:       limiters,
		Breakers:       notifyingBreakers{inner: breaker.New(), notify: p.changed},
		TrustedProxies: opts.TrustedProxies,
		Upstream:       opts.Upstream,
		BodyTimeout:    opts.ReadTimeout,
		OnStateChange:  p.changed,
	}
	if opts.Registerer != nil {
		m, err := prommetrics.New(opts.Registerer)
		if err != nil {
			return nil, fmt.Errorf("proxyserver: %w", err)
		}
		cfg.Metrics = m
		p.rewriteCount = prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_proxy_history_rewrites_total",
			Help: "Times the proxy found the route file's history rewritten (a store restored or imported, then its generation bumped, or revision numbers issued again) and reloaded it as a new state.",
		})
		if err := opts.Registerer.Register(p.rewriteCount); err != nil {
			return nil, fmt.Errorf("proxyserver: register metrics: %w", err)
		}
		if opts.Engine == "" || opts.Engine == EngineLoop {
			if err := p.registerLoopCounts(opts.Registerer); err != nil {
				return nil, fmt.Errorf("proxyserver: register metrics: %w", err)
			}
		}
	}
	r, err := router.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("proxyserver: %w", err)
	}
	p.router = r
	return p, nil
}

// Handler returns the proxy's http.Handler.
func (p *Proxy) Handler() http.Handler { return p.router }

// Router returns the underlying router.
func (p *Proxy) Router() *router.Router { return p.router }

// Rewrites returns how many times the proxy found the route file's history
// rewritten and reloaded it (see followRoutes).
func (p *Proxy) Rewrites() int64 { return p.rewrites.Load() }

// Revision returns the revision of sluice-system whose routes are in force,
// 0 before any was loaded.
func (p *Proxy) Revision() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.revision
}

// Run follows the route file and the routed services' instances until ctx
// ends, then returns nil. A route file that fails to parse is logged and
// the previous table stays in force. When sluice-system does not exist and
// the Source is a Creator, Run creates it (empty, revision 0) and watches
// it, so that the first routes published take effect as fast as any later
// ones; otherwise it looks again every RetryInterval.
func (p *Proxy) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = p.router.Run(ctx)
	}()
	wg.Add(1)
	go func() {
		defer wg.Done()
		p.followPeers(ctx)
	}()
	p.followRoutes(ctx)
	cancel()
	wg.Wait()
	return nil
}

// Close releases the router's idle connections. Call it after Run returned.
func (p *Proxy) Close() error { return p.router.Close() }

var systemRef = configsvc.Service(configsvc.SystemService)

// Creator is implemented by sources that can create a service;
// configsvc.Store does. The proxy creates sluice-system through it when the
// service does not exist yet, to watch it instead of polling for it.
type Creator interface {
	Create(ctx context.Context, ref configsvc.Ref) error
}

// followRoutes loads the route file and follows it until ctx ends.
//
// It never goes back in time within one history: a snapshot below the
// revision in force (a store that has not caught up, after a reconnect or
// a compaction reload) is not applied; the watch resumes from the
// revision in force and waits for the store. When the store reports the
// history rewritten (configsvc.ErrRewritten: a generation bump after a
// restore, or the revision in force issued again with other content), the
// proxy logs it, counts it, reloads the snapshot and applies it whatever
// its revision. So it does when sluice-system was deleted (and created
// again): the new service's history starts over.
func (p *Proxy) followRoutes(ctx context.Context) {
	waiting := false            // said once at info level; the retries repeat it at debug level
	createFailed := false       // likewise
	var rev int64               // the revision in force
	var held configsvc.Identity // its identity
	loaded := false
	// rewritten and recreated: the next snapshot starts a new history and
	// is applied whatever its revision.
	rewritten, recreated := false, false
	for ctx.Err() == nil {
		snap, err := p.src.Snapshot(ctx, systemRef, 0)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if errors.Is(err, configsvc.ErrNotFound) {
				recreated = loaded
				if p.createSystem(ctx, &createFailed) {
					continue
				}
				p.log.Log(ctx, onceLevel(&waiting), "no route file yet: service sluice-system does not exist", "retry", p.opts.RetryInterval)
			} else {
				p.log.Warn("load route file", "err", err, "retry", p.opts.RetryInterval)
			}
			if lifecycle.Sleep(ctx, p.opts.RetryInterval) != nil {
				return
			}
			continue
		}
		switch {
		case loaded && !rewritten && !recreated && snap.Revision < rev && held.SameGeneration(snap.Identity()):
			p.log.Info("route file snapshot older than the revision in force; keeping it and waiting for the store",
				"snapshot", snap.Revision, "in_force", rev)
		default:
			if rewritten {
				p.log.Warn("route file reloaded after its history was rewritten", "from", rev, "to", snap.Revision,
					"generation", snap.Generation)
			}
			content, ok := snap.Files[configsvc.RoutesFile]
			p.apply(snap.Revision, content, ok)
			rev, held, loaded, rewritten, recreated = snap.Revision, snap.Identity(), true, false, false
		}
		wctx, stop := context.WithCancel(ctx)
		for ev := range p.src.Watch(wctx, systemRef, rev, configsvc.Expect(held)) {
			if ev.Err != nil {
				if errors.Is(ev.Err, configsvc.ErrRewritten) {
					p.rewrites.Add(1)
					if p.rewriteCount != nil {
						p.rewriteCount.Inc()
					}
					p.log.Warn("route file history rewritten (store restored or imported?); reloading it as a new state", "revision", rev, "err", ev.Err)
					rewritten = true
					break
				}
				if errors.Is(ev.Err, configsvc.ErrCompacted) || errors.Is(ev.Err, configsvc.ErrNotFound) {
					p.log.Warn("route file watch ended; reloading", "err", ev.Err)
					recreated = errors.Is(ev.Err, configsvc.ErrNotFound)
					break
				}
				p.log.Warn("route file watch", "err", ev.Err)
				continue
			}
			if ev.Revision == nil {
				continue
			}
			rev = ev.Revision.Number
			held = configsvc.Identity{Generation: cmp.Or(ev.Revision.Generation, held.Generation), PublishID: ev.Revision.PublishID}
			for _, c := range ev.Revision.Changes {
				if c.File == configsvc.RoutesFile {
					p.apply(rev, c.Content, !c.Delete)
				}
			}
		}
		stop()
		if ctx.Err() == nil && lifecycle.Sleep(ctx, 100*time.Millisecond) != nil {
			return
		}
	}
}

// createSystem creates the empty service sluice-system, so that the proxy
// can watch for its first routes: true when it exists now (created here or
// by someone else meanwhile).
func (p *Proxy) createSystem(ctx context.Context, failed *bool) bool {
	c, ok := p.src.(Creator)
	if !ok {
		return false
	}
	err := c.Create(ctx, systemRef)
	switch {
	case err == nil:
		p.log.Info("created the empty service sluice-system to watch for routes")
		return true
	case errors.Is(err, configsvc.ErrConflict):
		return true
	}
	level := slog.LevelWarn
	if *failed {
		level = slog.LevelDebug
	}
	*failed = true
	p.log.Log(ctx, level, "cannot create sluice-system to watch it; looking for it every retry interval", "err", err, "retry", p.opts.RetryInterval)
	return false
}

// apply installs the routes of one revision of the route file; present
// false (no file, or deleted) means no routes.
func (p *Proxy) apply(rev int64, content []byte, present bool) {
	var routes []router.Route
	if present {
		var err error
		if routes, err = routesfile.Parse(content); err != nil {
			p.log.Error("route file refused; keeping the previous table", "revision", rev, "err", err)
			return
		}
	}
	if err := p.router.Update(routes); err != nil {
		p.log.Error("route table refused; keeping the previous table", "revision", rev, "err", err)
		return
	}
	p.mu.Lock()
	p.revision = rev
	p.mu.Unlock()
	p.changed()
	select {
	case p.applied <- struct{}{}:
	default:
	}
	p.log.Info("routes loaded", "revision", rev, "routes", len(routes))
}

// Serve runs the proxy on ln until ctx ends, then shuts the HTTP server
// down gracefully (requests in flight get Options.ShutdownTimeout to
// finish), stops following the store and returns. The error is nil after a
// clean shutdown.
func Serve(ctx context.Context, src Source, ln net.Listener, opts Options) error {
	if a, ok := ln.Addr().(*net.TCPAddr); ok {
		opts.Upstream.Own = append(slices.Clip(opts.Upstream.Own), a.AddrPort()) // requests to itself would loop
	}
	p, err := New(src, opts)
	if err != nil {
		ln.Close()
		return err
	}
	defer p.Close()
	var tlsCfg *tls.Config
	if opts.TLSCertFile != "" {
		certs, err := newCertReloader(opts.TLSCertFile, opts.TLSKeyFile, p.log)
		if err != nil {
			ln.Close()
			return err
		}
		tlsCfg = certs.tlsConfig()
	}
	srv, err := p.newFrontend(tlsCfg)
	if err != nil {
		ln.Close()
		return err
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var background sync.WaitGroup
	p.start(runCtx, &background, src, ln.Addr().String())
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.serve(ln) }()
	p.log.Info("proxy listening", "addr", ln.Addr().String(), "engine", srv.name(), "tls", tlsCfg != nil)
	select {
	case err = <-serveErr:
		sctx, scancel := context.WithTimeout(context.Background(), opts.shutdownTimeout())
		_ = srv.shutdown(sctx)
		scancel()
	case <-ctx.Done():
		sctx, scancel := context.WithTimeout(context.Background(), opts.shutdownTimeout())
		err = srv.shutdown(sctx)
		scancel()
		if serr := <-serveErr; err == nil {
			err = serr
		}
	}
	cancel()
	background.Wait()
	return err
}

// httpServer returns the HTTP server of Serve, with the listener's
// timeouts.
func (p *Proxy) httpServer() *http.Server {
	return &http.Server{
		Handler:           p.Handler(),
		ReadHeaderTimeout: p.opts.ReadHeaderTimeout,
		// The router bounds the body (408); this bounds the whole request
		// read as a backstop, also where no route reads the body. net/http
		// lifts it once the body is read, so responses are not cut.
		ReadTimeout: p.opts.ReadHeaderTimeout + p.opts.ReadTimeout,
		IdleTimeout: p.opts.IdleTimeout,
		ErrorLog:    slog.NewLogLogger(p.log.Handler(), slog.LevelWarn),
	}
}

// start starts, in wg, what Serve runs beside the HTTP server until ctx
// ends: following the store (Run), publishing the proxy's state (unless
// Options.StateInterval is negative) and registering it as an instance of
// sluice-system (when src is a Registrar, unless Options.NoRegister),
// under Options.InstanceID or the default id of addr, its listen address.
func (p *Proxy) start(ctx context.Context, wg *sync.WaitGroup, src Source, addr string) {
	id := p.opts.InstanceID
	if id == "" {
		id = DefaultInstanceID(addr)
	}
	p.mu.Lock()
	p.addr = addr
	p.mu.Unlock()
	if p.opts.StateInterval >= 0 {
		interval := p.opts.StateInterval
		if interval == 0 {
			interval = DefaultStateInterval
		}
		p.mu.Lock()
		p.stateID = id
		p.mu.Unlock()
		wg.Go(func() { p.publishState(ctx, id, interval) })
	}
	if reg, ok := src.(Registrar); ok && !p.opts.NoRegister {
		p.mu.Lock()
		p.instanceID = id
		p.mu.Unlock()
		wg.Go(func() { p.register(ctx, reg, id, addr) })
	}
	wg.Go(func() { _ = p.Run(ctx) })
}

func (o Options) shutdownTimeout() time.Duration {
	if o.ShutdownTimeout > 0 {
		return o.ShutdownTimeout
	}
	return 10 * time.Second
}

// Run listens on addr and calls Serve.
func Run(ctx context.Context, src Source, addr string, opts Options) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("proxyserver: listen %s: %w", addr, err)
	}
	return Serve(ctx, src, ln, opts)
}

// onceLevel returns slog.LevelInfo the first time a repeating wait is
// logged and slog.LevelDebug after that, so a retry loop says what it waits
// for once instead of every few seconds.
func onceLevel(said *bool) slog.Level {
	if *said {
		return slog.LevelDebug
	}
	*said = true
	return slog.LevelInfo
}
