package httpapi

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
	"github.com/sluicehq/sluice/configsvc/approval"
	"github.com/sluicehq/sluice/configsvc/format"
	"github.com/sluicehq/sluice/configsvc/lifecycle"
	"github.com/sluicehq/sluice/configsvc/secrets"
)

// Defaults for the zero values of Config.
const (
	DefaultRequestTimeout = 10 * time.Second
	DefaultHeartbeat      = 15 * time.Second
	DefaultInstanceTTL    = 30 * time.Second
	// DefaultStreamRecheck is how often an event stream re-checks the
	// credential it was opened with; a stream ends within it (plus one
	// store read) of its token's revocation or expiry or its session's end,
	// on whichever server of the cluster it is open.
	DefaultStreamRecheck = 2 * time.Second
	// DefaultMaxStreamsPerToken bounds the event streams one token holds
	// open on one server at once (every replica of a service often shares
	// one agent token, so it is generous).
	DefaultMaxStreamsPerToken = 1024
	// DefaultMaxInstancesPerToken bounds the instances one token keeps
	// registered through one server.
	DefaultMaxInstancesPerToken = 1024
	// DefaultMaxInstancesPerService bounds the live instances of one
	// service when one more registers through the API.
	DefaultMaxInstancesPerService = 1024
)

// Config carries the Server's dependencies. Store is required; every other
// zero value is a documented default.
type Config struct {
	// Store holds configuration, instances and records (tokens, sessions,
	// pins, audit). Required. The Server does not close it. Every publish
	// and rollback goes through its Publish, which validates content once
	// when it is a configsvc.ValidatingStore (configsvc.Validating, as
	// `sluice server` wires it: formats, the route schema, the service size
	// limit). Any other Store is wrapped with format validation
	// (format.Validator), so that content is never published unchecked. A
	// refusal (*configsvc.ContentError, *configsvc.ParseError) is answered
	// 422 with its details.
	Store configsvc.Store
	// Logger receives one line per request and the server's warnings.
	// Default: a logger that discards.
	Logger *slog.Logger
	// Registry registers the server's metrics. Default: a new private
	// registry. Registering fails (New returns the error) if the registry
	// already holds Sluice's HTTP metrics, e.g. from another Server.
	Registry prometheus.Registerer
	// Gatherer serves /metrics. Default: Registry when it is a Gatherer
	// (as *prometheus.Registry is); otherwise /metrics answers 404.
	Gatherer prometheus.Gatherer
	// Now is the clock (pin and session expiry, audit times, instance
	// leases). Default: time.Now.
	Now func() time.Time
	// RequestTimeout bounds every request but watches; a store that does not
	// answer within it gives 503 with Retry-After (the timeout in whole
	// seconds, at least 1). Default: 10s.
	RequestTimeout time.Duration
	// TrustedProxies lists the addresses or CIDRs whose X-Forwarded-For and
	// X-Real-IP headers are believed for the client address in logs and the
	// audit log. Default: none: the client address is the TCP peer.
	TrustedProxies []string
	// UI is the web console, served at / for every path outside /v1 and the
	// health and metrics endpoints. Default: none (404).
	UI fs.FS
	// Heartbeat is the interval of ": ping" comments on event streams.
	// Default: 15s.
	Heartbeat time.Duration
	// InstanceTTL is how long an instance registered through the API stays
	// without a refresh. Default: 30s.
	InstanceTTL time.Duration
	// SessionTTL is how long a console session lasts. Default: 12h.
	SessionTTL time.Duration
	// AuditKeep is how many audit entries the store retains. Default: 100000.
	AuditKeep int
	// Refusals tunes the sampling of refused requests into the audit
	// (access.SamplerConfig; its Now defaults to Now). Default: one entry
	// per client and minute, at most 120 a minute.
	Refusals access.SamplerConfig

	// Limits per token and per service. For each, 0 means the default and
	// a negative value means no limit. Counts over a limit are refused with
	// 429 and sizes with 413, naming the limit and its setting.

	// MaxStreamsPerToken bounds the event streams (watches of revisions
	// and instances) one token holds open on this server. Default:
	// DefaultMaxStreamsPerToken.
	MaxStreamsPerToken int
	// MaxSessionsPerToken bounds the live console sessions of one token,
	// across servers. Default: access.DefaultMaxSessionsPerToken.
	MaxSessionsPerToken int
	// MaxInstancesPerService bounds the live instances of a service (all
	// registrations, read from the store, counted when one more registers
	// through the API). Default: DefaultMaxInstancesPerService.
	MaxInstancesPerService int
	// MaxInstancesPerToken bounds the instances one token keeps registered
	// through this server. Default: DefaultMaxInstancesPerToken.
	MaxInstancesPerToken int
	// StreamRecheck is how often an event stream's credential is
	// re-checked (and a revision stream opened with ?changes=true looks
	// for change request news). The streams on taken-over HTTP/1.1
	// connections are re-checked together, one store read per credential
	// and interval, on one goroutine of the Server. Default:
	// DefaultStreamRecheck.
	StreamRecheck time.Duration
	// RoutesDiff lists the routes a change of sluice-system/routes.yaml
	// adds, removes or modifies, for dry runs. Default: none (dry runs
	// leave "routes" out).
	RoutesDiff RoutesDiff

	// Rollouts, when set, is told of every rollout started through the
	// API (the rollout driver of this process). Default: none; a driver
	// finds new rollouts at its next scan.
	Rollouts RolloutKicker

	// Keyring unwraps the data keys of secret files for the SDK (POST
	// …/datakey, secrets grant only). Store must be a secrets.Store on the
	// same keyring for secret files to be encrypted at all (`sluice
	// server` wires both). Default: none: …/datakey answers 503.
	Keyring secrets.Keyring
}

// limitOf returns the limit v stands for: def when 0, none (0) when
// negative.
func limitOf[T int | int64](v, def T) T {
	switch {
	case v == 0:
		return def
	case v < 0:
		return 0
	}
	return v
}

// withDefaults returns cfg with every zero value replaced by its default
// (see Config) and a Store that validates content.
func (cfg Config) withDefaults() Config {
	if _, ok := cfg.Store.(*configsvc.ValidatingStore); !ok {
		cfg.Store = configsvc.Validating(cfg.Store, format.Validator{})
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Registry == nil {
		reg := prometheus.NewRegistry()
		cfg.Registry = reg
		if cfg.Gatherer == nil {
			cfg.Gatherer = reg
		}
	}
	if cfg.Gatherer == nil {
		cfg.Gatherer, _ = cfg.Registry.(prometheus.Gatherer)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	if cfg.InstanceTTL <= 0 {
		cfg.InstanceTTL = DefaultInstanceTTL
	}
	if cfg.StreamRecheck <= 0 {
		cfg.StreamRecheck = DefaultStreamRecheck
	}
	cfg.MaxStreamsPerToken = limitOf(cfg.MaxStreamsPerToken, DefaultMaxStreamsPerToken)
	cfg.MaxInstancesPerToken = limitOf(cfg.MaxInstancesPerToken, DefaultMaxInstancesPerToken)
	cfg.MaxInstancesPerService = limitOf(cfg.MaxInstancesPerService, DefaultMaxInstancesPerService)
	if cfg.Refusals.Now == nil {
		cfg.Refusals.Now = cfg.Now
	}
	return cfg
}

// Server is the admin server: an http.Handler. It is safe for concurrent
// use. Close ends its event streams and background work and releases the
// instance leases it holds; it does not close the Store.
type Server struct {
	cfg         Config
	engine      *gin.Engine
	tokens      *access.Tokens
	sessions    *access.Sessions
	pins        *access.Pins
	pinNews     pinNews    // wakes pinsHub after a change through this server
	pinsHub     *pinsHub   // the one reader of the stored pins all pins streams share
	credWatch   *credWatch // re-checks the credentials of the streams on taken-over connections
	audit       *access.Audit
	idem        *access.Idempotency
	gov         *approval.Governance
	refusals    *access.RefusalSampler
	authz       access.Authorizer
	streams     *streamTable
	creds       *credCache
	instCounts  *instanceCounts
	metrics     *metrics
	leases      *leaseTable
	shared      subscriber     // the store's shared watches, or nil (see subscriberOf)
	viewers     []eventViewer  // the layers above shared that show events per reader
	encoded     *eventCache    // revision events encoded once for all streams
	index       *summaryIndex  // the console's summaries; started on first use
	snapshots   *snapshotCache // contents read by searches and effective configs
	retryAfter  int
	openapiJSON []byte
	metricsHTTP http.Handler // nil without a Gatherer

	ctx    context.Context // canceled by Close: ends watches, the lease reaper and the sweeper
	cancel context.CancelFunc
	// streamsG runs the event streams that took their connections over
	// from net/http (streamSSE); Close stops and waits for them.
	streamsG lifecycle.Group
	wg       sync.WaitGroup
	once     sync.Once
}

// New builds a Server from cfg. It starts three background goroutines (the
// instance lease reaper, the sweeper of expired tokens, sessions and pins,
// and the writer of sampled refusals' summaries) that Close stops. Errors: a nil Store, an invalid
// TrustedProxies entry, or a metrics registration conflict.
//
// The first New in a process switches gin out of its debug mode (see
// quietGin); New is safe to call from several goroutines.
func New(cfg Config) (*Server, error) {
	quietGin()
	if cfg.Store == nil {
		return nil, errors.New("httpapi: Config.Store is required")
	}
	cfg = cfg.withDefaults()
	m, err := newMetrics(cfg.Registry)
	if err != nil {
		return nil, err
	}
	records := cfg.Store.Records()
	tokens := access.NewTokens(records, cfg.Now)
	audit := access.NewAudit(records, cfg.AuditKeep)
	s := &Server{
		cfg:    cfg,
		tokens: tokens,
		sessions: access.NewSessions(records, tokens, access.SessionsConfig{
			TTL: cfg.SessionTTL, MaxPerToken: cfg.MaxSessionsPerToken, Now: cfg.Now,
		}),
		pins:       access.NewPins(records, access.PinsConfig{Now: cfg.Now}),
		audit:      audit,
		idem:       access.NewIdempotency(records, cfg.Now),
		gov:        approval.New(records, cfg.Now),
		refusals:   access.NewRefusalSampler(audit, cfg.Refusals),
		streams:    newStreamTable(),
		creds:      newCredCache(),
		instCounts: newInstanceCounts(),
		metrics:    m,
		leases:     newLeaseTable(),
		encoded:    newEventCache(),
		index:      newSummaryIndex(cfg.Store, cfg.Logger),
		snapshots:  newSnapshotCache(),
		retryAfter: max(1, int((cfg.RequestTimeout+time.Second-1)/time.Second)),
	}
	s.shared, s.viewers = subscriberOf(cfg.Store)
	s.pinsHub = newPinsHub(s)
	s.credWatch = newCredWatch(s)
	if cfg.Gatherer != nil {
		s.metricsHTTP = promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{})
	}
	if s.openapiJSON, err = OpenAPI(); err != nil {
		return nil, err
	}
	if s.engine, err = s.newEngine(); err != nil {
		return nil, err
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(3)
	go s.every(max(time.Second, cfg.InstanceTTL/10), s.sweepLeases)
	go s.every(recordSweepInterval, s.sweepExpired)
	go s.every(refusalFlushInterval, s.flushRefusals)
	return s, nil
}

// ginQuiet guards quietGin's one decision. It is package state only because
// the mode it guards is gin's own process-wide setting; gin has no mode per
// engine.
var ginQuiet sync.Once

// quietGin leaves gin's debug mode, once per process, unless the process
// chose a mode: GIN_MODE (which gin reads at start) or an earlier
// gin.SetMode (a test's TestMain choosing gin.TestMode). In debug mode gin
// prints a warning and every route to stdout when an engine is built,
// mixing them into what a command prints there (the bootstrap token, JSON
// output); no caller of New wants that. Doing it here, not in each command,
// keeps the choice in the one package that uses gin. The Once makes the
// write happen before any New builds an engine, so concurrent New calls
// (parallel tests) neither race on it nor repeat it.
func quietGin() {
	ginQuiet.Do(func() {
		if os.Getenv(gin.EnvGinMode) == "" && gin.Mode() == gin.DebugMode {
			gin.SetMode(gin.ReleaseMode)
		}
	})
}

// ServeHTTP serves the admin API, health, metrics and console.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.engine.ServeHTTP(w, r)
}

// Routes returns every registered route as "METHOD /path/:param".
func (s *Server) Routes() []string {
	var out []string
	for _, r := range s.engine.Routes() {
		out = append(out, r.Method+" "+r.Path)
	}
	return out
}

// streamsCloseWait bounds how long Close waits for the event streams to
// end (a stream blocked writing to a client that does not read).
const streamsCloseWait = 2 * time.Second

// Close ends every event stream (and refuses new ones with 503), stops the
// lease reaper, the sweeper and the shared pins reader, waits up to 2 s for the streams to have
// written their last event, then closes the instance leases this server
// holds, and writes the summaries of the refusals it counted. It is safe
// to call more than once; register it with http.Server.RegisterOnShutdown
// so that Shutdown does not wait forever for open streams.
func (s *Server) Close() error {
	s.once.Do(func() {
		s.cancel()
		s.streamsG.Stop()
		s.index.close()
		s.wg.Wait()
		s.streamsG.Wait()
		// The streams end before the leases close: closing a lease takes
		// its instance out of the store, and a stream still open would
		// send that as if the instance had gone, when only this server
		// is going (a proxy following it would lose the instance).
		if !s.streams.closeAndWait(streamsCloseWait) {
			s.cfg.Logger.Warn("event streams still writing when the server closed; closing the instance leases anyway")
		}
		s.leases.closeAll()
		// The refusals counted in the current window are written now
		// rather than lost; the store is still open (the caller closes it
		// after the Server).
		ctx, cancel := context.WithTimeout(context.Background(), minAuditTime)
		defer cancel()
		if err := s.refusals.Flush(ctx, true); err != nil {
			s.cfg.Logger.Warn("writing sampled refusals", "err", err)
		}
	})
	return nil
}

// Bootstrap creates the first admin token when the store has none; see
// access.Tokens.Bootstrap. It returns the token to show once, or "" when
// tokens already exist or another server created it.
func (s *Server) Bootstrap(ctx context.Context) (string, error) {
	tok, _, err := s.tokens.Bootstrap(ctx, access.BootstrapGrace, nil)
	return tok, err
}

// streamContext returns a context for a long-lived stream: it ends with the
// request or when the Server is closed.
func (s *Server) streamContext(r *http.Request) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(r.Context())
	stop := context.AfterFunc(s.ctx, cancel)
	return ctx, func() { stop(); cancel() }
}

func isMutating(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

func isAPIPath(p string) bool {
	return p == "/v1" || strings.HasPrefix(p, "/v1/") || p == "/healthz" || p == "/readyz" || p == "/metrics"
}
