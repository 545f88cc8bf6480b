package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/httpapi"
	"github.com/sluicehq/sluice/configsvc/webui"
)

// Defaults of `sluice server`.
const (
	defaultAddr    = "127.0.0.1:7070"
	defaultDataDir = "./sluice-data"
	// shutdownTimeout bounds the graceful shutdown: in-flight requests get
	// this long to finish once the server stops accepting.
	shutdownTimeout = 10 * time.Second
	// adminTokenFile is the bootstrap token's file name inside the data dir.
	adminTokenFile = "admin.token"
)

// ProxyStarter runs the reverse proxy embedded in `sluice server` on addr,
// reading routes and instances from store, until ctx ends; it returns nil
// after a clean stop. It is the hook through which the proxy is wired into
// the server (see ServerMain.StartProxy).
type ProxyStarter func(ctx context.Context, cfg EmbeddedProxy) error

// EmbeddedProxy is what the server hands the proxy it embeds.
type EmbeddedProxy struct {
	Store          configsvc.Store
	Addr           string
	Logger         *slog.Logger
	Registerer     prometheus.Registerer // the server's registry: proxy metrics appear on the server's /metrics
	TrustedProxies []string              // --trusted-proxies, shared with the admin API
}

// ServerMain is `sluice server`: ParseFlags (or the cobra command's flags),
// then Run until its context ends, then Close. Tests run the real logic on
// 127.0.0.1:0 and learn the address from Addr after Ready.
type ServerMain struct {
	// Flags (each with an env twin; the flag wins).
	Addr           string   // --addr, SLUICE_ADDR; default 127.0.0.1:7070
	StoreURL       string   // --store, SLUICE_STORE; default bolt://<data-dir>/sluice.db
	DataDir        string   // --data-dir, SLUICE_DATA_DIR; default ./sluice-data
	TrustedProxies []string // --trusted-proxies, SLUICE_TRUSTED_PROXIES (comma-separated)
	ProxyAddr      string   // --proxy-addr, SLUICE_PROXY_ADDR; empty: no embedded proxy

	// StartProxy runs the embedded proxy when ProxyAddr is set. NewServerMain
	// sets it to the router's proxy; nil makes a set --proxy-addr an error.
	StartProxy ProxyStarter

	env    Env
	logger *slog.Logger

	mu    sync.Mutex
	ready chan struct{}
	bound string // the listening address, once ready
	store configsvc.Store
	api   *httpapi.Server
}

// NewServerMain returns a ServerMain with the defaults, writing to env's
// streams and reading env's variables.
func NewServerMain(env Env) *ServerMain {
	return &ServerMain{
		Addr: defaultAddr, DataDir: defaultDataDir, env: env, ready: make(chan struct{}),
		StartProxy: startEmbeddedProxy,
		logger:     slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo})),
	}
}

// flags registers the server's flags on fs, bound to m's fields.
func (m *ServerMain) flags(fs *pflag.FlagSet) {
	fs.StringVar(&m.Addr, "addr", m.Addr, "listen address of the admin API (env SLUICE_ADDR)")
	fs.StringVar(&m.StoreURL, "store", m.StoreURL, "store URL: bolt://PATH or zk://HOST:PORT[,HOST:PORT…]/CHROOT (env SLUICE_STORE; default bolt://<data-dir>/sluice.db)")
	fs.StringVar(&m.DataDir, "data-dir", m.DataDir, "directory for the default bbolt store and admin.token (env SLUICE_DATA_DIR)")
	fs.StringSliceVar(&m.TrustedProxies, "trusted-proxies", m.TrustedProxies, "addresses or CIDRs of reverse proxies whose X-Forwarded-For is believed (env SLUICE_TRUSTED_PROXIES); default none")
	fs.StringVar(&m.ProxyAddr, "proxy-addr", m.ProxyAddr, "also run the reverse proxy on this address (env SLUICE_PROXY_ADDR)")
}

// applyEnv fills every flag not set on the command line from its env twin.
func (m *ServerMain) applyEnv(fs *pflag.FlagSet) error {
	getenv := m.env.Getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	for flag, env := range map[string]string{
		"addr": "SLUICE_ADDR", "store": "SLUICE_STORE", "data-dir": "SLUICE_DATA_DIR",
		"trusted-proxies": "SLUICE_TRUSTED_PROXIES", "proxy-addr": "SLUICE_PROXY_ADDR",
	} {
		if fs.Changed(flag) {
			continue
		}
		if v := getenv(env); v != "" {
			if err := fs.Set(flag, v); err != nil {
				return fmt.Errorf("%s=%q: %w", env, v, err)
			}
		}
	}
	if m.StoreURL == "" {
		m.StoreURL = "bolt://" + filepath.Join(m.DataDir, "sluice.db")
	}
	return nil
}

// ParseFlags parses args (without the "server" verb) and the env twins.
func (m *ServerMain) ParseFlags(args []string) error {
	fs := pflag.NewFlagSet("server", pflag.ContinueOnError)
	fs.SetOutput(m.env.Stderr)
	m.flags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("sluice server takes no arguments, got %q", fs.Args())
	}
	return m.applyEnv(fs)
}

// Ready is closed once the server listens (Addr is then known).
func (m *ServerMain) Ready() <-chan struct{} { return m.ready }

// BoundAddr returns the address the admin API listens on, once Ready.
func (m *ServerMain) BoundAddr() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.bound
}

// Run opens the store, bootstraps the admin token on an empty store, serves
// the admin API (and the embedded proxy, when wired) until ctx ends, then
// shuts down gracefully: it stops accepting, ends event streams, and lets
// in-flight requests finish for up to 10s. Close releases the store.
func (m *ServerMain) Run(ctx context.Context) error {
	gin.SetMode(gin.ReleaseMode) // gin's mode is process-wide; debug mode prints routes to stdout
	store, err := openStore(ctx, m.StoreURL, m.logger, m.env.Getenv)
	if err != nil {
		return fmt.Errorf("open store: %w", err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	api, err := httpapi.New(httpapi.Config{
		Store:          store,
		Logger:         m.logger,
		Registry:       reg,
		TrustedProxies: m.TrustedProxies,
		UI:             webui.FS(),
	})
	if err != nil {
		_ = store.Close()
		return err
	}
	m.mu.Lock()
	m.store, m.api = store, api
	m.mu.Unlock()

	if err := m.bootstrap(ctx, api); err != nil {
		return err
	}

	ln, err := net.Listen("tcp", m.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", m.Addr, err)
	}
	srv := &http.Server{
		Handler:           api,
		ReadHeaderTimeout: 10 * time.Second,
		// Bounds reading a whole request (a trickled body); there is no
		// WriteTimeout because event streams are long-lived responses.
		ReadTimeout:    time.Minute,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(m.logger.Handler(), slog.LevelWarn),
	}
	srv.RegisterOnShutdown(func() { _ = api.Close() }) // ends SSE streams so Shutdown can finish
	m.mu.Lock()
	m.bound = ln.Addr().String()
	m.mu.Unlock()
	m.logger.Info("sluice server listening", "url", "http://"+ln.Addr().String(), "store", redactURL(m.StoreURL))
	close(m.ready)

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("admin API: %w", err)
		}
		return nil
	})
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
		defer cancel()
		m.logger.Info("sluice server shutting down")
		if err := srv.Shutdown(sctx); err != nil {
			_ = srv.Close()
			return fmt.Errorf("graceful shutdown: %w", err)
		}
		return nil
	})
	if m.ProxyAddr != "" {
		if m.StartProxy == nil {
			return errors.New("--proxy-addr is set but no embedded proxy is wired in")
		}
		g.Go(func() error {
			return m.StartProxy(gctx, EmbeddedProxy{
				Store: store, Addr: m.ProxyAddr, Logger: m.logger, Registerer: reg, TrustedProxies: m.TrustedProxies,
			})
		})
	}
	return g.Wait()
}

// bootstrap creates the first admin token on an empty store, prints it once
// to stdout and writes it to <data-dir>/admin.token with mode 0600.
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
	m := NewServerMain(env)
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the admin server (REST API, web console, metrics)",
		Long: `Run the Sluice admin server.

With no flags it listens on 127.0.0.1:7070 and keeps everything in
./sluice-data/sluice.db. On first start with an empty store it creates an
admin token, prints it once and writes it to <data-dir>/admin.token (0600).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := m.applyEnv(cmd.Flags()); err != nil {
				return err
			}
			err := m.Run(cmd.Context())
			if cerr := m.Close(); err == nil {
				err = cerr
			}
			return err
		},
	}
	m.flags(cmd.Flags())
	return cmd
}
