package httpapi

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
)

// Defaults for the zero values of Config.
const (
	DefaultRequestTimeout = 10 * time.Second
	DefaultHeartbeat      = 15 * time.Second
	DefaultInstanceTTL    = 30 * time.Second
	DefaultPinTTL         = 30 * time.Minute
	MaxPinTTL             = 24 * time.Hour
)

// Config carries the Server's dependencies. Store is required; every other
// zero value is a documented default.
type Config struct {
	// Store holds configuration, instances and records (tokens, sessions,
	// pins, audit). Required. The Server does not close it. The Server does
	// not validate content itself: give it a configsvc.ValidatingStore
	// (configsvc.Validating) so that every publish and rollback is
	// validated, once; a refusal (*configsvc.ContentError, or a
	// *configsvc.ParseError) is answered 422 with its details.
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
}

// Server is the admin server: an http.Handler. It is safe for concurrent
// use. Close ends its event streams and background work and releases the
// instance leases it holds; it does not close the Store.
type Server struct {
	cfg         Config
	engine      *gin.Engine
	tokens      *access.Tokens
	sessions    *access.Sessions
	audit       *access.Audit
	authz       access.Authorizer
	metrics     *metrics
	leases      *leaseTable
	retryAfter  int
	openapiJSON []byte
	metricsHTTP http.Handler // nil without a Gatherer

	ctx    context.Context // canceled by Close: ends watches and the lease reaper
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// New builds a Server from cfg. It starts one background goroutine (the
// instance lease reaper) that Close stops. Errors: a nil Store, an invalid
// TrustedProxies entry, or a metrics registration conflict.
//
// gin prints route tables to stdout in its debug mode, which is process-wide;
// the sluice command sets gin.ReleaseMode before calling New.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("httpapi: Config.Store is required")
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
	m, err := newMetrics(cfg.Registry)
	if err != nil {
		return nil, err
	}
	records := cfg.Store.Records()
	tokens := access.NewTokens(records, cfg.Now)
	s := &Server{
		cfg:        cfg,
		tokens:     tokens,
		sessions:   access.NewSessions(records, tokens, cfg.SessionTTL, cfg.Now),
		audit:      access.NewAudit(records, cfg.AuditKeep),
		metrics:    m,
		leases:     newLeaseTable(),
		retryAfter: max(1, int((cfg.RequestTimeout+time.Second-1)/time.Second)),
	}
	if cfg.Gatherer != nil {
		s.metricsHTTP = promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{})
	}
	if s.openapiJSON, err = OpenAPI(); err != nil {
		return nil, err
	}
	if s.engine, err = s.routes(); err != nil {
		return nil, err
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.wg.Add(1)
	go s.reapLeases()
	return s, nil
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

// Close ends every event stream, stops the lease reaper and closes the
// instance leases this server holds, then waits for them. It is safe to call
// more than once; register it with http.Server.RegisterOnShutdown so that
// Shutdown does not wait forever for open streams.
func (s *Server) Close() error {
	s.once.Do(func() {
		s.cancel()
		s.wg.Wait()
		s.leases.closeAll()
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
