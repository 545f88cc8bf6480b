package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/mattn/go-isatty"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
	"github.com/sluicehq/sluice/configsvc/httpapi"
	"github.com/sluicehq/sluice/configsvc/rollout"
	"github.com/sluicehq/sluice/configsvc/secrets"
	"github.com/sluicehq/sluice/configsvc/webui"
	"github.com/sluicehq/sluice/router/proxyserver"
)

// Defaults of `sluice server`.
const (
	defaultAddr    = "127.0.0.1:7070"
	defaultDataDir = "./sluice-data"
	// adminTokenFile is the bootstrap token's file name inside the data dir.
	adminTokenFile = "admin.token"
)

// ServerMain is `sluice server`: ParseFlags (or the cobra command's flags),
// then Run until its context ends, then Close. Tests run the real logic on
// 127.0.0.1:0 and learn the addresses from Bound after Ready. Run may be
// called once.
type ServerMain struct {
	base
	// Flags (each with an env twin, see envTwin; the flag wins).
	Addr string // --addr; default 127.0.0.1:7070
	// DebugAddr is --debug-addr: Go's /debug/pprof (heap, goroutines, CPU)
	// on a listener of its own; empty (the default): off.
	DebugAddr string
	StoreURL  string // --store; default bolt://<data-dir>/sluice.db
	DataDir   string // --data-dir; default ./sluice-data
	// Secrets are the --secrets-… flags: the keyring of secret files
	// (docs/secrets.md).
	Secrets        secretsOptions
	TrustedProxies []netip.Prefix // --trusted-proxies (comma-separated); default none
	// Proxy holds the embedded proxy's options, the flags of `sluice
	// proxy` prefixed proxy- (--proxy-addr, --proxy-access-log, …). An
	// empty Proxy.Addr (the default) runs no proxy.
	Proxy ProxyOptions
	// Limits are the per-token and per-service limits (--max-…).
	Limits serverLimits

	// isTerminal reports whether w is a terminal: the bootstrap token is
	// printed only to one. Default: stdoutIsTerminal.
	isTerminal func(w io.Writer) bool

	mu    sync.Mutex
	store configsvc.Store
	api   *httpapi.Server
}

// serverLimits are the flags of the admin server's limits; each is passed
// to httpapi.Config, where 0 is the default and a negative value no limit.
type serverLimits struct {
	StreamsPerToken   int   // --max-streams-per-token
	SessionsPerToken  int   // --max-sessions-per-token
	InstancesPerSvc   int   // --max-instances-per-service
	InstancesPerToken int   // --max-instances-per-token
	ServiceBytes      int64 // --max-service-bytes
}

func (l *serverLimits) register(fs *pflag.FlagSet) {
	fs.IntVar(&l.StreamsPerToken, "max-streams-per-token", httpapi.DefaultMaxStreamsPerToken, "event streams one token may hold open on this server (429 beyond; -1: no limit)")
	fs.IntVar(&l.SessionsPerToken, "max-sessions-per-token", access.DefaultMaxSessionsPerToken, "live console sessions of one token (429 beyond; -1: no limit)")
	fs.IntVar(&l.InstancesPerSvc, "max-instances-per-service", httpapi.DefaultMaxInstancesPerService, "live instances of one service when one more registers through the API (429 beyond; -1: no limit)")
	fs.IntVar(&l.InstancesPerToken, "max-instances-per-token", httpapi.DefaultMaxInstancesPerToken, "instances one token keeps registered through this server (429 beyond; -1: no limit)")
	fs.Var(byteSizeFlag{&l.ServiceBytes}, "max-service-bytes", "total content of the files of one service or shared group, e.g. 16MiB (413 beyond; -1: no limit)")
}

// stdoutIsTerminal reports whether w is a file open on a terminal.
func stdoutIsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd()))
}

// NewServerMain returns a ServerMain with the defaults, writing to env's
// streams and reading env's variables.
func NewServerMain(env Env) *ServerMain {
	m := &ServerMain{
		Addr: defaultAddr, DataDir: defaultDataDir,
		Proxy:      newProxyOptions("", "log"),
		Limits:     serverLimits{ServiceBytes: configsvc.DefaultMaxServiceBytes},
		isTerminal: stdoutIsTerminal,
	}
	m.init(env)
	return m
}

func (m *ServerMain) registerFlags(fs *pflag.FlagSet) {
	fs.Var(addrFlag{&m.Addr}, "addr", "listen address of the admin API")
	fs.Var(addrFlag{&m.DebugAddr}, "debug-addr", "address to serve Go's /debug/pprof on (off when empty; keep it on loopback)")
	fs.Var(storeFlag{&m.StoreURL}, "store", "store URL: bolt://PATH or zk://HOST:PORT[,HOST:PORT…]/CHROOT (default bolt://<data-dir>/sluice.db)")
	fs.StringVar(&m.DataDir, "data-dir", m.DataDir, "directory for the default bbolt store and admin.token")
	m.Secrets.register(fs)
	fs.Var(prefixesFlag{&m.TrustedProxies}, "trusted-proxies", "IP addresses or CIDRs (comma-separated) of reverse proxies in front of the admin API whose X-Forwarded-For is believed")
	m.Limits.register(fs)
	m.Proxy.register(fs, "proxy-")
	fs.Lookup("proxy-addr").Usage = "also run the reverse proxy on this address (off when empty)"
	fs.Lookup("proxy-trusted-proxies").Usage += " (default: --trusted-proxies)"
	m.Log.register(fs)
}

func (m *ServerMain) complete(fs *pflag.FlagSet) error {
	if err := m.completeBase(fs); err != nil {
		return err
	}
	if m.Addr == "" {
		return errors.New("--addr is empty: the admin API needs an address to listen on")
	}
	if m.StoreURL == "" {
		m.StoreURL = "bolt://" + filepath.Join(m.DataDir, "sluice.db")
	}
	if !fs.Changed("proxy-trusted-proxies") {
		m.Proxy.TrustedProxies = m.TrustedProxies
	}
	return nil
}

// ParseFlags parses args (without the "server" verb) and the env twins.
func (m *ServerMain) ParseFlags(args []string) error {
	return parseDaemonFlags("server", m, args, m.env.Stderr)
}

// Run opens the store, bootstraps the admin token on an empty store, serves
// the admin API (and the embedded proxy, with --proxy-addr) until ctx ends,
// then shuts down gracefully: it stops accepting, ends event streams, and
// lets in-flight requests finish for up to 10s (the proxy's: up to
// --proxy-shutdown-timeout). Close releases the store.
func (m *ServerMain) Run(ctx context.Context) error {
	kek, err := m.Secrets.open(m.DataDir, m.StoreURL, m.getenv, m.logger, true)
	if err != nil {
		return fmt.Errorf("open secrets keyring: %w", err)
	}
	var kekOrNil secrets.Keyring // nil stays a nil interface: no keyring
	if kek != nil {
		kekOrNil = kek
	}
	store, keys, err := openSecretStore(ctx, m.StoreURL, m.logger, m.getenv, m.Limits.ServiceBytes, kekOrNil)
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	m.mu.Lock()
	m.store = store
	m.mu.Unlock()
	reg := newRegistry()
	if err := checkZooKeeper(ctx, store, m.logger, reg); err != nil {
		return err
	}
	rollouts, err := newRollouts(store, m.logger)
	if err != nil {
		return err
	}
	api, err := m.newAPI(store, reg, rollouts, keys)
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.api = api
	m.mu.Unlock()

	if err := m.bootstrap(ctx, api); err != nil {
		return err
	}

	var popts proxyserver.Options
	if m.Proxy.Addr != "" {
		var closeAccess func()
		if popts, closeAccess, err = m.Proxy.prepare("proxy-", m.env.Stdout, m.logger, reg); err != nil {
			return err
		}
		defer closeAccess()
	}
	lns, err := m.listenAll(map[string]string{"addr": m.Addr, "proxy-addr": m.Proxy.Addr, "debug-addr": m.DebugAddr})
	if err != nil {
		return err
	}
	popts.Upstream.Own = ownListeners(lns) // never proxy to this process's own listeners (the admin API)
	srv := m.httpServer(api)
	srv.RegisterOnShutdown(func() { _ = api.Close() }) // ends SSE streams so Shutdown can finish
	m.logger.Info("sluice server listening", "url", "http://"+m.Bound("addr"), "store", redactURL(m.StoreURL))
	m.markReady()

	g := newRunGroup(ctx)
	g.Go("admin API", func(ctx context.Context) error {
		return serveHTTP(ctx, srv, lns["addr"], shutdownTimeout, m.logger, "sluice server")
	})
	g.Go("rollout driver", rollouts.Run)
	if ln := lns["proxy-addr"]; ln != nil {
		g.Go("embedded proxy", func(ctx context.Context) error {
			return proxyserver.Serve(ctx, store, ln, popts)
		})
	}
	if ln := lns["debug-addr"]; ln != nil {
		srv := &http.Server{Handler: pprofHandler(), ReadHeaderTimeout: 5 * time.Second}
		g.Go("pprof", func(ctx context.Context) error { return serveHTTP(ctx, srv, ln, shutdownTimeout, nil, "") })
	}
	return g.Wait()
}

// newAPI builds the admin server on store with the server's flags; it
// tells rollouts of the rollouts it starts.
func (m *ServerMain) newAPI(store configsvc.Store, reg *prometheus.Registry, rollouts httpapi.RolloutKicker, keys secrets.Keyring) (*httpapi.Server, error) {
	return httpapi.New(httpapi.Config{
		Store:          store,
		Keyring:        keys,
		Rollouts:       rollouts,
		Logger:         m.logger,
		Registry:       reg,
		TrustedProxies: prefixStrings(m.TrustedProxies),
		UI:             webui.FS(),
		RoutesDiff:     routesDiff,

		MaxStreamsPerToken:     m.Limits.StreamsPerToken,
		MaxSessionsPerToken:    m.Limits.SessionsPerToken,
		MaxInstancesPerService: m.Limits.InstancesPerSvc,
		MaxInstancesPerToken:   m.Limits.InstancesPerToken,
	})
}

// newRollouts returns the rollout driver of the server: it campaigns in
// the store's election (ZooKeeper: one driver per cluster; bbolt: this
// process) and audits its changes as actor "rollout".
func newRollouts(store configsvc.Store, logger *slog.Logger) (*rollout.Driver, error) {
	audit := access.NewAudit(store.Records(), 0)
	return rollout.New(rollout.Config{
		Store:  store,
		Leader: leaderOf(store),
		Logger: logger,
		Audit: func(ctx context.Context, c rollout.Change) {
			e := access.Entry{Time: time.Now(), Actor: rollout.DefaultAuthor, Action: c.Action, Target: c.Ref.String() + "/grays/" + c.GrayID,
				Service: c.Ref.Name, Revision: c.Revision, Outcome: access.OutcomeAllowed, Status: http.StatusOK, Reason: c.Reason, Client: "rollout driver"}
			if _, err := audit.Record(ctx, e); err != nil {
				logger.Error("audit entry not written", "action", e.Action, "target", e.Target, "err", err)
			}
		},
	})
}

// leaderOf returns the election of store (or of the store it wraps); nil
// when it has none, and the driver then always drives.
func leaderOf(store configsvc.Store) configsvc.Leader {
	for {
		if l, ok := store.(configsvc.Leader); ok {
			return l
		}
		u, ok := store.(interface{ Unwrap() configsvc.Store })
		if !ok {
			return nil
		}
		store = u.Unwrap()
	}
}

// httpServer returns the HTTP server of the admin API, with its timeouts.
func (m *ServerMain) httpServer(api *httpapi.Server) *http.Server {
	return &http.Server{
		Handler:           api,
		ReadHeaderTimeout: 10 * time.Second,
		// Bounds reading a whole request (a trickled body); there is no
		// WriteTimeout because event streams are long-lived responses.
		ReadTimeout:    time.Minute,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(m.logger.Handler(), slog.LevelWarn),
	}
}

// bootstrap creates the first admin token on an empty store and writes it
// to <data-dir>/admin.token with mode 0600. It prints the token once to
// stdout only when stdout is a terminal: a service manager or container
// runtime keeps stdout in logs that many can read, so there only the file's
// path is logged.
func (m *ServerMain) bootstrap(ctx context.Context, api *httpapi.Server) error {
	bctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tok, err := api.Bootstrap(bctx)
	if err != nil {
		return fmt.Errorf("bootstrap admin token: %w", err)
	}
	if tok == "" {
		return nil
	}
	if err := os.MkdirAll(m.DataDir, 0o700); err != nil {
		return fmt.Errorf("bootstrap admin token: %w", err)
	}
	path := filepath.Join(m.DataDir, adminTokenFile)
	if err := writeSecret(path, tok+"\n"); err != nil {
		return fmt.Errorf("bootstrap admin token: %w", err)
	}
	if !m.isTerminal(m.env.Stdout) {
		m.logger.Info("created the first admin token; not printed because stdout is not a terminal", "file", path, "mode", "0600")
		return nil
	}
	fmt.Fprintf(m.env.Stdout, "Created the first admin token (shown once; also written to %s, mode 0600):\n\n    %s\n\n", path, tok)
	return nil
}

// writeSecret writes data to path with mode 0600, replacing any old file
// atomically so the secret is never readable with a wider mode.
func writeSecret(path, data string) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.WriteString(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

// redactURL drops any user info from a store URL before it is logged.
func redactURL(raw string) string {
	if i := strings.Index(raw, "@"); i >= 0 {
		if j := strings.Index(raw, "://"); j >= 0 && j < i {
			return raw[:j+3] + "…@" + raw[i+1:]
		}
	}
	return raw
}

// Close releases what Run opened: the admin server's streams and leases,
// then the store. It is safe to call more than once and after a failed Run.
func (m *ServerMain) Close() error {
	m.mu.Lock()
	api, store := m.api, m.store
	m.api, m.store = nil, nil
	m.mu.Unlock()
	if api != nil {
		_ = api.Close()
	}
	if store != nil {
		return store.Close()
	}
	return nil
}

// newServerCmd returns `sluice server`.
func newServerCmd(env Env) *cobra.Command {
	return newDaemonCmd(&cobra.Command{
		Use:   "server",
		Short: "Run the admin server (REST API, web console, metrics)",
		Long: `Run the Sluice admin server.

With no flags it listens on 127.0.0.1:7070 and keeps everything in
./sluice-data/sluice.db. On first start with an empty store it creates an
admin token and writes it to <data-dir>/admin.token (0600); it prints it
once too when stdout is a terminal (otherwise it logs the file's path).

With --proxy-addr it also runs the reverse proxy, on the server's store;
every flag of sluice proxy is here prefixed --proxy-.`,
	}, NewServerMain(env))
}
