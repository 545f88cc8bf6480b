package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/sluicehq/sluice/configsvc"
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
	StoreURL    string       // --store; default bolt://sluice-data/sluice.db
	MetricsAddr string       // --metrics-addr: /metrics, /healthz, /readyz; empty: off
	DebugAddr   string       // --debug-addr: /debug/pprof; empty: off
	Proxy       ProxyOptions // --addr, --trusted-proxies, --access-log, …

	mu    sync.Mutex
	store configsvc.Store
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
	fs.Var(storeFlag{&m.StoreURL}, "store", "store URL: zk://HOST:PORT[,HOST:PORT…]/CHROOT or bolt://PATH")
	fs.Var(addrFlag{&m.MetricsAddr}, "metrics-addr", "address to serve Prometheus /metrics and the /healthz, /readyz probes on (off when empty)")
	fs.Var(addrFlag{&m.DebugAddr}, "debug-addr", "address to serve Go's /debug/pprof on (off when empty; keep it on loopback)")
	m.Log.register(fs)
}

func (m *ProxyMain) complete(fs *pflag.FlagSet) error {
	if err := m.completeBase(fs); err != nil {
		return err
	}
	if m.Proxy.Addr == "" {
		return errors.New("--addr is empty: the proxy needs an address to listen on")
	}
	if m.StoreURL == "" {
		m.StoreURL = defaultProxyStore
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
	store, err := openStore(ctx, m.StoreURL, m.logger, m.getenv, 0)
	if errors.Is(err, configsvc.ErrLocked) {
		return fmt.Errorf("%w (is sluice server running on it? run the proxy inside it with --proxy-addr, or use ZooKeeper)", err)
	}
	if err != nil {
		return err
	}
	m.mu.Lock()
	m.store = store
	m.mu.Unlock()

	reg := newRegistry()
	if err := checkZooKeeper(ctx, store, m.logger, reg); err != nil {
		return err
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
	g.Go("proxy", func(ctx context.Context) error {
		return proxyserver.Serve(ctx, store, lns["addr"], popts)
	})
	if ln := lns["metrics-addr"]; ln != nil {
		srv := &http.Server{Handler: metricsHandler(reg, store), ReadHeaderTimeout: 5 * time.Second}
		g.Go("metrics", func(ctx context.Context) error { return serveHTTP(ctx, srv, ln, shutdownTimeout, nil, "") })
	}
	if ln := lns["debug-addr"]; ln != nil {
		srv := &http.Server{Handler: pprofHandler(), ReadHeaderTimeout: 5 * time.Second}
		g.Go("pprof", func(ctx context.Context) error { return serveHTTP(ctx, srv, ln, shutdownTimeout, nil, "") })
	}
	return g.Wait()
}

// Close releases what Run opened (the store). It is safe to call more than
// once and after a failed Run.
func (m *ProxyMain) Close() error {
	m.mu.Lock()
	store := m.store
	m.store = nil
	m.mu.Unlock()
	if store != nil {
		return store.Close()
	}
	return nil
}

// metricsHandler serves /metrics from reg and the probes: /healthz (the
// process runs) and /readyz (the store answers within 2 s). They live on
// --metrics-addr, not on --addr, where every path belongs to the routes.
func metricsHandler(reg *prometheus.Registry, store configsvc.Store) http.Handler {
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
			http.Error(w, "store unreachable", http.StatusServiceUnavailable)
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

The store is ZooKeeper (zk://host1:2181,host2:2181/chroot) or a bbolt file
(bolt://path/to/sluice.db). A bbolt file can be opened by one process only:
with bbolt, run the proxy inside the admin server (sluice server
--proxy-addr, which takes every proxy flag here prefixed --proxy-) instead,
or use ZooKeeper to run proxies on their own.`,
	}, NewProxyMain(env))
}
