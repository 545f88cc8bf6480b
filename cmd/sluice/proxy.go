package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/router/proxyserver"
)

// proxyFlags are the flags of `sluice proxy`.
type proxyFlags struct {
	addr           string
	store          string
	trustedProxies string
	accessLog      string
	metricsAddr    string
	debugAddr      string
	logLevel       string
}

// newProxyCmd returns `sluice proxy`.
func newProxyCmd(env Env) *cobra.Command {
	var f proxyFlags
	cmd := &cobra.Command{
		Use:   "proxy",
		Short: "Run the reverse proxy",
		Long: `Run Sluice's reverse proxy. Routes come from the file routes.yaml of the
service sluice-system and upstreams from the instances services register;
both are followed live.

The store is ZooKeeper (zk://host1:2181,host2:2181/chroot) or a bbolt file
(bolt://path/to/sluice.db). A bbolt file can be opened by one process only:
with bbolt, run the proxy inside the admin server (sluice server
--proxy-addr) instead, or use ZooKeeper to run proxies on their own.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runProxy(cmd.Context(), env, f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.addr, "addr", "127.0.0.1:7080", "address to serve the proxy on")
	fl.StringVar(&f.store, "store", "bolt://sluice-data/sluice.db", "store URL: zk://host:2181,…/chroot or bolt://path")
	fl.StringVar(&f.trustedProxies, "trusted-proxies", "", "comma-separated IPs or CIDRs whose X-Forwarded-* headers are kept")
	fl.StringVar(&f.accessLog, "access-log", "-", `access log: "-" for stdout, a file path, or "off"`)
	fl.StringVar(&f.metricsAddr, "metrics-addr", "", "address to serve Prometheus /metrics and the /healthz, /readyz probes on (off when empty)")
	fl.StringVar(&f.debugAddr, "debug-addr", "", "address to serve Go's /debug/pprof on (off when empty; keep it on loopback)")
	fl.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	return cmd
}

func runProxy(ctx context.Context, env Env, f proxyFlags) error {
	trusted, err := parseTrustedProxies(f.trustedProxies)
	if err != nil {
		return err
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
		return fmt.Errorf("--log-level %q: must be debug, info, warn or error", f.logLevel)
	}
	log := slog.New(slog.NewJSONHandler(env.Stderr, &slog.HandlerOptions{Level: level}))
	accessLog, closeAccess, err := openAccessLog(f.accessLog, env.Stdout)
	if err != nil {
		return err
	}
	defer closeAccess()

	store, err := openStore(ctx, f.store, log, env.Getenv)
	if errors.Is(err, configsvc.ErrLocked) {
		return fmt.Errorf("%w (is sluice server running on it? run the proxy inside it with --proxy-addr, or use ZooKeeper)", err)
	}
	if err != nil {
		return err
	}
	defer store.Close()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if f.metricsAddr != "" {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		// Probes live here, not on --addr, where every path belongs to the routes.
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
		stop, err := serveSide(f.metricsAddr, mux)
		if err != nil {
			return fmt.Errorf("--metrics-addr: %w", err)
		}
		defer stop()
	}
	if f.debugAddr != "" {
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		stop, err := serveSide(f.debugAddr, mux)
		if err != nil {
			return fmt.Errorf("--debug-addr: %w", err)
		}
		defer stop()
	}
	return proxyserver.Run(ctx, store, f.addr, proxyserver.Options{
		Logger:         log,
		AccessLog:      accessLog,
		Registerer:     reg,
		TrustedProxies: trusted,
	})
}

// serveSide serves h on addr (metrics, pprof) until the returned stop is called.
func serveSide(addr string, h http.Handler) (stop func(), err error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	return func() {
		_ = srv.Close()
		<-done
	}, nil
}

// parseTrustedProxies reads "10.0.0.0/8, 192.168.1.7" into prefixes.
func parseTrustedProxies(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if p, err := netip.ParsePrefix(part); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(part)
		if err != nil {
			return nil, fmt.Errorf("--trusted-proxies: %q is neither an IP address nor a CIDR", part)
		}
		out = append(out, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return out, nil
}

// openAccessLog returns the access logger for "-" (stdout), "off", or a
// file path (appended to), and a func closing the file.
func openAccessLog(where string, stdout io.Writer) (*slog.Logger, func(), error) {
	switch where {
	case "off", "":
		return nil, func() {}, nil
	case "-":
		return slog.New(slog.NewJSONHandler(stdout, nil)), func() {}, nil
	}
	fh, err := os.OpenFile(where, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, nil, fmt.Errorf("--access-log: %w", err)
	}
	return slog.New(slog.NewJSONHandler(fh, nil)), func() { fh.Close() }, nil
}

// startEmbeddedProxy is the ProxyStarter that runs the proxy inside `sluice
// server --proxy-addr`, on the server's own store, with the server's
// metrics registry and trusted proxies. Its access log goes to the server's
// logger.
func startEmbeddedProxy(ctx context.Context, cfg EmbeddedProxy) error {
	trusted, err := parseTrustedProxies(strings.Join(cfg.TrustedProxies, ","))
	if err != nil {
		return fmt.Errorf("embedded proxy: %w", err)
	}
	return proxyserver.Run(ctx, cfg.Store, cfg.Addr, proxyserver.Options{
		Logger:         cfg.Logger.With("component", "proxy"),
		AccessLog:      cfg.Logger.With("component", "proxy.access"),
		Registerer:     cfg.Registerer,
		TrustedProxies: trusted,
	})
}

var _ ProxyStarter = startEmbeddedProxy
