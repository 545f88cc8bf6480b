package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/pprof"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/access"
	"github.com/sluicehq/sluice/configsvc/api"
	"github.com/sluicehq/sluice/router/proxyserver"
)

// Defaults of `sluice proxy`.
const (
	defaultProxyAddr  = "127.0.0.1:7080"
	defaultProxyStore = "bolt://sluice-data/sluice.db"
)

// ProxyMain is `sluice proxy`: ParseFlags (or the cobra command's flags),
// then Run until its context ends, then Close. Tests run the real logic on
// 127.0.0.1:0 and learn the addresses from Bound after Ready. Run may be
// called once.
type ProxyMain struct {
	base
	// Flags (each with an env twin, see envTwin; the flag wins).
	StoreURL string // --store; default bolt://sluice-data/sluice.db (unless Servers is set)
	// Servers (--server) are admin server URLs, in fail-over order: when
	// set, the proxy reads routes, instances and pins through the admin API
	// with Token (--token, a token with the proxy role) instead of the
	// store, and publishes its state there. Exclusive with --store.
	Servers     []string
	Token       string
	MetricsAddr string       // --metrics-addr: /metrics, /healthz, /readyz; empty: off
	DebugAddr   string       // --debug-addr: /debug/pprof; empty: off
	Proxy       ProxyOptions // --addr, --trusted-proxies, --access-log, …

	serverUserInfo bool // a --server URL held user info (refused)

	mu     sync.Mutex
	store  configsvc.Store
	client *api.Client
}

// NewProxyMain returns a ProxyMain with the defaults, writing to env's
// streams and reading env's variables.
func NewProxyMain(env Env) *ProxyMain {
	m := &ProxyMain{
		StoreURL: defaultProxyStore,
		Proxy:    newProxyOptions(defaultProxyAddr, "-"),
	}
	m.init(env)
	return m
}

func (m *ProxyMain) registerFlags(fs *pflag.FlagSet) {
	m.Proxy.register(fs, "")
	fs.Var(storeFlag{&m.StoreURL}, "store", "store URL: zk://HOST:PORT[,HOST:PORT…]/CHROOT or bolt://PATH (or use --server)")
	fs.Var(serversFlag{&m.Servers, &m.serverUserInfo}, "server", "admin server URLs (comma-separated, in fail-over order) to read routes, instances and pins from instead of the store, with --token")
	fs.StringVar(&m.Token, "token", "", "API token with the proxy role (sluice token create --name edge --role 'proxy:*'), for --server")
	fs.Var(addrFlag{&m.MetricsAddr}, "metrics-addr", "address to serve Prometheus /metrics and the /healthz, /readyz probes on (off when empty)")
	fs.Var(addrFlag{&m.DebugAddr}, "debug-addr", "address to serve Go's /debug/pprof on (off when empty; keep it on loopback)")
	m.Log.register(fs)
}

func (m *ProxyMain) complete(fs *pflag.FlagSet) error {
	// A flag on the command line wins over the other's env twin: the
	// CLI's SLUICE_SERVER and SLUICE_TOKEN, often set in a shell, must not
	// turn `sluice proxy --store …` into an error.
	cliStore, cliServer, cliToken := fs.Changed("store"), fs.Changed("server"), fs.Changed("token")
	if err := m.completeBase(fs); err != nil {
		return err
	}
	if m.Proxy.Addr == "" {
		return errors.New("--addr is empty: the proxy needs an address to listen on")
	}
	if m.serverUserInfo { // the URL is not echoed: it holds a credential
		return errors.New("--server: a URL with user info is refused: give the credential with --token")
	}
	server := len(m.Servers) > 0
	if server && fs.Changed("store") {
		switch {
		case cliStore == cliServer:
			return fmt.Errorf("--store (%s) and --server (%s) are mutually exclusive: the proxy reads either the store or the admin servers", envTwin("store"), envTwin("server"))
		case cliStore:
			server = false
		}
	}
	if !server {
		if cliToken {
			return errors.New("--token goes with --server: a proxy on the store needs no token")
		}
		m.Servers, m.Token = nil, ""
		if m.StoreURL == "" {
			m.StoreURL = defaultProxyStore
		}
		return nil
	}
	m.StoreURL = ""
	if m.Token == "" {
		return fmt.Errorf("--server needs --token (or %s): a token with the proxy role (sluice token create --name edge --role 'proxy:*')", envTwin("token"))
	}
	return nil
}

// ParseFlags parses args (without the "proxy" verb) and the env twins.
func (m *ProxyMain) ParseFlags(args []string) error {
	return parseDaemonFlags("proxy", m, args, m.env.Stderr)
}

// Run opens the store and serves the proxy (and the metrics and pprof
// listeners, when set) until ctx ends, then stops gracefully: requests in
// flight get --shutdown-timeout. The error is nil after a clean stop. Close
// releases the store.
func (m *ProxyMain) Run(ctx context.Context) error {
	reg := newRegistry()
	var (
		src    proxyserver.Source
		ping   pinger
		remote *api.ProxySource
	)
	if len(m.Servers) > 0 {
		var err error
		if remote, err = m.openRemote(ctx); err != nil {
			return err
		}
		src, ping = remote, remote
	} else {
		store, err := openStore(ctx, m.StoreURL, m.logger, m.getenv, 0)
		if errors.Is(err, configsvc.ErrLocked) {
			return fmt.Errorf("%w (is sluice server running on it? run the proxy inside it with --proxy-addr, or run this proxy with --server and a proxy token)", err)
		}
		if err != nil {
			return err
		}
		m.mu.Lock()
		m.store = store
		m.mu.Unlock()
		if err := checkZooKeeper(ctx, store, m.logger, reg); err != nil {
			return err
		}
		src, ping = store, store
	}
	popts, closeAccess, err := m.Proxy.prepare("", m.env.Stdout, m.logger, reg)
	if err != nil {
		return err
	}
	defer closeAccess()
	lns, err := m.listenAll(map[string]string{"addr": m.Proxy.Addr, "metrics-addr": m.MetricsAddr, "debug-addr": m.DebugAddr})
	if err != nil {
		return err
	}
	popts.Upstream.Own = ownListeners(lns) // never proxy to this process's own listeners
	m.markReady()

	g := newRunGroup(ctx)
	if remote != nil {
		g.Go("pins", remote.Run)
	}
	g.Go("proxy", func(ctx context.Context) error {
		return proxyserver.Serve(ctx, src, lns["addr"], popts)
	})
	if ln := lns["metrics-addr"]; ln != nil {
		srv := &http.Server{Handler: metricsHandler(reg, ping), ReadHeaderTimeout: 5 * time.Second}
		g.Go("metrics", func(ctx context.Context) error { return serveHTTP(ctx, srv, ln, shutdownTimeout, nil, "") })
	}
	if ln := lns["debug-addr"]; ln != nil {
		srv := &http.Server{Handler: pprofHandler(), ReadHeaderTimeout: 5 * time.Second}
		g.Go("pprof", func(ctx context.Context) error { return serveHTTP(ctx, srv, ln, shutdownTimeout, nil, "") })
	}
	return g.Wait()
}

// openRemote returns the source reading the admin servers (--server) with
// the token, after checking the token where a server answers: a token the
// servers refuse, or one without the proxy role, is an error here rather
// than a proxy that never gets its routes. When no server answers, the
// proxy starts anyway and follows them once one does.
func (m *ProxyMain) openRemote(ctx context.Context) (*api.ProxySource, error) {
	c, err := api.New(api.Config{Servers: m.Servers, Token: m.Token, UserAgent: "sluice-proxy",
		RetryMax: 2 * time.Second, Logger: m.logger.With("component", "api")})
	if err != nil {
		return nil, fmt.Errorf("--server: %w", err)
	}
	m.mu.Lock()
	m.client = c
	m.mu.Unlock()
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	who, err := c.Whoami(wctx)
	switch {
	case errors.Is(err, configsvc.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded):
		m.logger.Warn("no admin server answers yet; the proxy starts without routes and follows them once one does", "servers", m.Servers, "err", err)
	case err != nil:
		return nil, fmt.Errorf("--token: the admin server refuses it: %w", err)
	case !who.Admin && !slices.ContainsFunc(who.Roles, func(g api.Grant) bool { return g.Role == access.RoleProxy }):
		return nil, fmt.Errorf("--token: token %s (%s) has no proxy role: create one with sluice token create --name edge --role 'proxy:*'", who.ID, who.Name)
	default:
		m.logger.Info("proxy reads the admin servers", "servers", m.Servers, "token", who.ID)
	}
	return api.NewProxySource(c), nil
}

// Close releases what Run opened (the store, or the admin API client). It
// is safe to call more than once and after a failed Run.
func (m *ProxyMain) Close() error {
	m.mu.Lock()
	store, client := m.store, m.client
	m.store, m.client = nil, nil
	m.mu.Unlock()
	if client != nil {
		client.Close()
	}
	if store != nil {
		return store.Close()
	}
	return nil
}

// The admin API source is what the proxy needs of a store.
var (
	_ proxyserver.Source    = (*api.ProxySource)(nil)
	_ proxyserver.Registrar = (*api.ProxySource)(nil)
	_ proxyserver.Creator   = (*api.ProxySource)(nil)
	_ pinger                = (*api.ProxySource)(nil)
)

// pinger is what /readyz checks: the store, or the admin servers.
type pinger interface {
	Ping(ctx context.Context) error
}

// metricsHandler serves /metrics from reg and the probes: /healthz (the
// process runs) and /readyz (the store, or an admin server, answers within
// 2 s). They live on --metrics-addr, not on --addr, where every path
// belongs to the routes.
func metricsHandler(reg *prometheus.Registry, store pinger) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		pctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := store.Ping(pctx); err != nil {
			w.Header().Set("Retry-After", "1")
			http.Error(w, "store unreachable", http.StatusServiceUnavailable) // or, with --server, every admin server
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	return mux
}

// pprofHandler serves Go's /debug/pprof.
func pprofHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	return mux
}

// newProxyCmd returns `sluice proxy`.
func newProxyCmd(env Env) *cobra.Command {
	return newDaemonCmd(&cobra.Command{
		Use:   "proxy",
		Short: "Run the reverse proxy",
		Long: `Run Sluice's reverse proxy. Routes come from the file routes.yaml of the
service sluice-system and upstreams from the instances services register;
both are followed live.

The proxy reads either the store or the admin servers. The store is
ZooKeeper (zk://host1:2181,host2:2181/chroot) or a bbolt file
(bolt://path/to/sluice.db); a bbolt file can be opened by one process only.
With --server URL[,URL…] and --token (a token with the proxy role, from
sluice token create --name edge --role 'proxy:*') the proxy needs no store credentials:
it follows routes, instances and pins over the admin API's event streams,
failing over between the servers in order and resuming where it stopped,
registers there and publishes its live state (sluice routes live). While no
server answers it keeps routing on its last table. This is how a single
bbolt-backed server feeds proxies on other machines. The embedded proxy
(sluice server --proxy-addr) takes every proxy flag here prefixed --proxy-.`,
	}, NewProxyMain(env))
}
