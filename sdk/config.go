package sdk

import (
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sluicehq/sluice/configsvc"
)

// Config configures a Client. Exactly one transport must be set: ZooKeeper,
// Server or Store. The zero value of every other field is a documented
// default.
type Config struct {
	// Service is the name of the service whose config files the client
	// reads. Required.
	Service string

	// ZooKeeper lists the ZooKeeper servers ("host:port") to watch directly.
	ZooKeeper []string
	// ZKRoot is the root node of Sluice's tree in ZooKeeper. Default "/sluice".
	ZKRoot string
	// ZKSessionTimeout is the ZooKeeper session timeout. Default 10s.
	ZKSessionTimeout time.Duration
	// ZKDigest, "user:password", authenticates with ZooKeeper when Sluice's
	// tree is protected by digest ACLs: use the read-only identity the
	// server grants SDKs (SLUICE_ZK_READER_DIGEST), which may read
	// everything (and, in the server's single-reader mode, register any
	// service's instances). It is never logged. Empty: none.
	ZKDigest string
	// ZKInstanceDigest, "user:password", is this service's own ZooKeeper
	// identity, for a server in per-service mode (SLUICE_ZK_SERVICE_DIGESTS
	// names it for Service): the client authenticates with it as well and
	// registers its instance with it, and no other service's credential can
	// change or remove that registration (docs/security.md, "ZooKeeper-direct
	// SDKs"). It is never logged. Empty: register with ZKDigest.
	ZKInstanceDigest string

	// Server is the base URL of the Sluice admin server
	// ("http://127.0.0.1:7070"), whose SSE watch stream the client follows.
	Server string
	// Servers lists further admin servers of the same cluster for fail-over:
	// when the server in use cannot be reached or answers 5xx, each request
	// and the watch stream move on to the next one, in order and wrapping
	// around, resuming the stream after the last revision applied. Servers
	// may be used without Server.
	Servers []string
	// Token is the API token sent to Server (role agent or above) and to
	// KeyServers. To read secret files (docs/secrets.md) it also needs the
	// secrets grant. It is never logged.
	Token string
	// KeyServers lists the admin servers the client asks, with Token, for
	// the data keys of secret files (*.secret.*) when it follows ZooKeeper
	// or a Store: ZooKeeper holds their envelopes only. Keys are kept in
	// memory, never in the cache. Default: Server(s) for the HTTP
	// transport, none otherwise (a secret file is then rejected like a
	// file that does not decode).
	KeyServers []string
	// HTTPClient makes the requests to Server. It must have no overall
	// Timeout (the watch stream is long-lived); the SDK bounds each request
	// itself. Default: a client with its own clone of
	// http.DefaultTransport, whose idle connections Close releases.
	HTTPClient *http.Client

	// Store is an already open store used in-process (for example by the
	// proxy embedded in the admin server, or in tests). The client does not
	// close it.
	Store configsvc.Store

	// CacheDir is the directory of the bbolt cache that keeps the last good
	// state, so the service can start while the store is unreachable. Empty
	// disables the cache. The file is CacheDir/<service>.cache.db; several
	// processes may share it: each write opens it, and under bbolt's file
	// lock (waited for at most 2 s) replaces the state stored unless that
	// one is newer, then closes it.
	CacheDir string

	// Instance describes this process for its registration. When ID is empty
	// it defaults to "<hostname>-<pid>".
	Instance Instance
	// NoRegister disables the instance registration (for tools and
	// benchmarks that only read configuration).
	NoRegister bool

	// Logger receives the client's log lines. Default: slog.Default().
	Logger *slog.Logger
	// Metrics receives counts of applied and rejected revisions, of
	// reconnects, of rewritten histories and of failed cache writes.
	// Default: none.
	Metrics Metrics
	// Now returns the current time (instance timestamps). Default: time.Now.
	Now func() time.Time

	// OpenTimeout bounds how long Open waits for the store before it falls
	// back to the cache. Default 5s (also bounded by Open's ctx).
	OpenTimeout time.Duration
	// RetryMin and RetryMax bound the jittered exponential backoff between
	// attempts to reach an unreachable store. Defaults 100ms and 1s (a client converges within about a second after the store returns).
	RetryMin, RetryMax time.Duration
	// HeartbeatInterval is how often the HTTP transport refreshes the
	// instance registration (the server holds it for 30 s). Default 10s.
	HeartbeatInterval time.Duration
}

// Instance describes the running process registered for its service.
type Instance struct {
	// ID names the instance among its service's instances: 1-128 characters
	// of A-Z a-z 0-9 . _ - starting with a letter or digit.
	ID string
	// Addr is where the instance serves, e.g. "10.0.0.7:8080". The proxy
	// routes to it.
	Addr string
	// Labels are free-form attributes such as {"zone": "a"}.
	Labels map[string]string
}

// Metrics receives the client's counters. Implementations must be safe for
// concurrent use and fast: they are called on the client's update path.
// A Prometheus adapter is a few lines (see ExampleMetrics).
type Metrics interface {
	// RevisionApplied is called after a revision of ref ("service/orders" or
	// "group/redis-common") was applied.
	RevisionApplied(ref string, revision int64)
	// RevisionRejected is called when a revision's content for file was
	// rejected by a binding; the previous value stays in use.
	RevisionRejected(file string, revision int64)
	// Reconnect is called when a watch lost its connection to the store and
	// is resuming, with the transport name ("zookeeper", "http", "store").
	Reconnect(transport string)
	// HistoryRewritten is called when the client found the history of ref
	// rewritten (the store was restored or imported and its generation
	// bumped, revision numbers it held were issued again, or ref was
	// deleted and created again) and applied
	// the store's state as a new one, at revision to (which may be lower
	// than from, the revision it held).
	HistoryRewritten(ref string, from, to int64)
	// CacheWriteFailed is called when writing the local cache failed (the
	// new state is applied all the same; Client.Err reports the error).
	CacheWriteFailed(err error)
}

type noMetrics struct{}

func (noMetrics) RevisionApplied(string, int64)         {}
func (noMetrics) RevisionRejected(string, int64)        {}
func (noMetrics) Reconnect(string)                      {}
func (noMetrics) HistoryRewritten(string, int64, int64) {}
func (noMetrics) CacheWriteFailed(error)                {}

// withDefaults validates cfg and fills in its defaults.
func (cfg Config) withDefaults() (Config, error) {
	if err := configsvc.ValidateServiceName(cfg.Service); err != nil {
		return cfg, fmt.Errorf("sdk: config: %w", err)
	}
	n := 0
	if len(cfg.ZooKeeper) > 0 {
		n++
	}
	if cfg.Server != "" || len(cfg.Servers) > 0 {
		n++
	}
	if cfg.Store != nil {
		n++
	}
	if n != 1 {
		return cfg, fmt.Errorf("sdk: config: set exactly one of ZooKeeper, Server(s) or Store (%d set): %w", n, configsvc.ErrInvalid)
	}
	if cfg.Server != "" || len(cfg.Servers) > 0 {
		var all []string
		if cfg.Server != "" {
			all = append(all, cfg.Server)
		}
		all = append(all, cfg.Servers...)
		cfg.Servers = make([]string, 0, len(all))
		for _, u := range all {
			if !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
				return cfg, fmt.Errorf("sdk: config: server %q must be an http:// or https:// URL: %w", u, configsvc.ErrInvalid)
			}
			cfg.Servers = append(cfg.Servers, strings.TrimRight(u, "/"))
		}
		cfg.Server = cfg.Servers[0]
	}
	if cfg.ZKRoot == "" {
		cfg.ZKRoot = "/sluice"
	}
	if cfg.ZKSessionTimeout <= 0 {
		cfg.ZKSessionTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = noMetrics{}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.OpenTimeout <= 0 {
		cfg.OpenTimeout = 5 * time.Second
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = 100 * time.Millisecond
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = time.Second
	}
	if cfg.RetryMax < cfg.RetryMin {
		cfg.RetryMax = cfg.RetryMin
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = 10 * time.Second
	}
	if !cfg.NoRegister {
		if cfg.Instance.ID == "" {
			cfg.Instance.ID = defaultInstanceID()
		}
		inst := configsvc.Instance{Service: cfg.Service, ID: cfg.Instance.ID, Addr: cfg.Instance.Addr, Labels: cfg.Instance.Labels}
		if err := inst.Validate(); err != nil {
			return cfg, fmt.Errorf("sdk: config: %w", err)
		}
	}
	return cfg, nil
}

// defaultInstanceID returns "<hostname>-<pid>" reduced to the instance id
// alphabet.
func defaultInstanceID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "instance"
	}
	b := []byte(host)
	for i, ch := range b {
		ok := ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9' || ch == '.' || ch == '_' || ch == '-'
		if !ok {
			b[i] = '-'
		}
	}
	id := strings.TrimLeft(string(b), "._-")
	if id == "" {
		id = "instance"
	}
	if len(id) > 100 {
		id = id[:100]
	}
	return id + "-" + strconv.Itoa(os.Getpid())
}
