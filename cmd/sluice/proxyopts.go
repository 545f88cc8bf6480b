package main

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

	"github.com/sluicehq/sluice/router"
	"github.com/sluicehq/sluice/router/proxyserver"
)

// ProxyOptions are the reverse proxy's options, the same for `sluice proxy`,
// which registers them without a prefix (--addr, --access-log), and for the
// proxy embedded in `sluice server`, which registers them with the prefix
// "proxy-" (--proxy-addr, --proxy-access-log). Each has the environment
// twin of its flag (SLUICE_ADDR, SLUICE_PROXY_ADDR). An option added here —
// a field, its line in register and its line in prepare — exists in both
// commands, with its twin.
type ProxyOptions struct {
	// Addr is the address the proxy listens on. Default for `sluice proxy`:
	// 127.0.0.1:7080 (it must not be empty); for `sluice server`: empty,
	// which runs no proxy.
	Addr string
	// TrustedProxies are the peers whose X-Forwarded-* (and X-Real-IP)
	// headers the proxy keeps. Default: none; in `sluice server`, the admin
	// API's --trusted-proxies.
	TrustedProxies []netip.Prefix
	// UpstreamAllow and UpstreamDeny are the upstream policy's rules (IP,
	// CIDR, optionally :PORT; see router.UpstreamPolicy for the
	// precedence). Default: none, so only the built-in denials (cloud
	// metadata, link-local, this process's own listeners) apply.
	UpstreamAllow []router.UpstreamRule
	UpstreamDeny  []router.UpstreamRule
	// ReadHeaderTimeout bounds reading a request's headers. Default 10s.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a request's body, after its headers
	// (answered 408 past it); responses are not cut by it. Default 1m.
	ReadTimeout time.Duration
	// IdleTimeout bounds a keep-alive connection's wait for its next
	// request. Default 2m.
	IdleTimeout time.Duration
	// AccessLog is where the proxy writes one JSON line per request: "-"
	// (stdout), "log" (through the process's log, component proxy.access),
	// "off", or a file path (appended to, created with mode 0640). Default
	// for `sluice proxy`: "-"; for `sluice server`: "log".
	AccessLog string
	// ShutdownTimeout bounds the graceful stop: requests in flight get this
	// long to finish. Default 10s.
	ShutdownTimeout time.Duration
	// Engine is the data plane serving the proxy's listener: "loop" (the
	// default: router/loopengine's event loops for plain HTTP/1.1, fast
	// for the rest and over TLS), "fast" (fasthttp for HTTP/1.x) or "std"
	// (net/http). TLS clients negotiating HTTP/2 are served by net/http
	// either way.
	Engine string
	// TLSCert and TLSKey are PEM files (certificate chain, private key);
	// when both are set the proxy serves HTTPS (HTTP/1.1 and HTTP/2
	// through ALPN) and loads them again when they change. Default: none,
	// plain HTTP.
	TLSCert, TLSKey string
}

// newProxyOptions returns the options' defaults with addr and accessLog,
// which differ between the two commands.
func newProxyOptions(addr, accessLog string) ProxyOptions {
	return ProxyOptions{
		Addr: addr, AccessLog: accessLog, ShutdownTimeout: shutdownTimeout, Engine: proxyserver.EngineLoop,
		ReadHeaderTimeout: proxyserver.DefaultReadHeaderTimeout,
		ReadTimeout:       proxyserver.DefaultReadTimeout,
		IdleTimeout:       proxyserver.DefaultIdleTimeout,
	}
}

// register adds the options to fs, each flag's name prefixed with prefix
// ("" or "proxy-"), with the fields' current values as defaults.
func (o *ProxyOptions) register(fs *pflag.FlagSet, prefix string) {
	fs.Var(addrFlag{&o.Addr}, prefix+"addr", "address the reverse proxy listens on")
	fs.Var(prefixesFlag{&o.TrustedProxies}, prefix+"trusted-proxies", "IP addresses or CIDRs (comma-separated) of proxies in front of the reverse proxy whose X-Forwarded-* headers are kept")
	fs.StringVar(&o.AccessLog, prefix+"access-log", o.AccessLog, `the reverse proxy's access log: "-" (stdout), "log" (the process's log), "off", or a file path`)
	fs.Var(positiveDurationFlag{&o.ShutdownTimeout}, prefix+"shutdown-timeout", "how long requests in flight through the reverse proxy get to finish on a graceful stop")
	fs.Var(upstreamRulesFlag{&o.UpstreamAllow}, prefix+"upstream-allow", "IPs or CIDRs, optionally :PORT (comma-separated), the reverse proxy may connect to: when set, only these; a rule at least as narrow as a built-in denial (cloud metadata, link-local, own listeners) lifts it")
	fs.Var(upstreamRulesFlag{&o.UpstreamDeny}, prefix+"upstream-deny", "IPs or CIDRs, optionally :PORT (comma-separated), the reverse proxy never connects to (wins over --"+prefix+"upstream-allow)")
	fs.Var(positiveDurationFlag{&o.ReadHeaderTimeout}, prefix+"read-header-timeout", "how long the reverse proxy waits for a request's headers")
	fs.Var(positiveDurationFlag{&o.ReadTimeout}, prefix+"read-timeout", "how long the reverse proxy waits for a request's body after its headers (408 past it; responses are not cut)")
	fs.Var(positiveDurationFlag{&o.IdleTimeout}, prefix+"idle-timeout", "how long a keep-alive connection to the reverse proxy may wait for its next request")
	fs.Var(engineFlag{&o.Engine}, prefix+"engine", `the reverse proxy's data plane: "loop" (event loops for plain HTTP/1.1 on Linux, handing what they do not serve to fast), "fast" (fasthttp for HTTP/1.x) or "std" (net/http); TLS is served by fast, HTTP/2 over TLS by net/http`)
	fs.StringVar(&o.TLSCert, prefix+"tls-cert", o.TLSCert, "PEM certificate (chain) the reverse proxy serves HTTPS with (with --"+prefix+"tls-key; reloaded when the file changes)")
	fs.StringVar(&o.TLSKey, prefix+"tls-key", o.TLSKey, "PEM private key of --"+prefix+"tls-cert")
}

// prepare opens what the options name (the access log file) and returns the
// proxyserver.Options they stand for, and a func releasing what it opened,
// to call once the proxy has stopped. prefix names the flags in errors;
// stdout is the access log's "-"; the proxy logs through logger and records
// metrics in reg. The caller sets Upstream.Own to the process's listeners
// once they are bound (see ownListeners).
func (o ProxyOptions) prepare(prefix string, stdout io.Writer, logger *slog.Logger, reg prometheus.Registerer) (proxyserver.Options, func(), error) {
	if (o.TLSCert == "") != (o.TLSKey == "") {
		return proxyserver.Options{}, nil, fmt.Errorf("--%stls-cert and --%stls-key go together: set both or neither", prefix, prefix)
	}
	access, closeAccess, err := openAccessLog(o.AccessLog, stdout, logger)
	if err != nil {
		return proxyserver.Options{}, nil, fmt.Errorf("--%saccess-log: %w", prefix, err)
	}
	return proxyserver.Options{
		Logger:            logger.With("component", "proxy"),
		AccessLog:         access,
		Registerer:        reg,
		TrustedProxies:    o.TrustedProxies,
		ShutdownTimeout:   o.ShutdownTimeout,
		Upstream:          router.UpstreamPolicy{Allow: o.UpstreamAllow, Deny: o.UpstreamDeny},
		ReadHeaderTimeout: o.ReadHeaderTimeout,
		ReadTimeout:       o.ReadTimeout,
		IdleTimeout:       o.IdleTimeout,
		Engine:            o.Engine,
		TLSCertFile:       o.TLSCert,
		TLSKeyFile:        o.TLSKey,
	}, closeAccess, nil
}

// ownListeners returns the addresses the listeners are bound to, for the
// upstream policy's Own: the proxy must never connect to the process's own
// admin API, metrics or debug listeners (nor loop to itself).
func ownListeners(lns map[string]net.Listener) []netip.AddrPort {
	var out []netip.AddrPort
	for _, ln := range lns {
		if a, ok := ln.Addr().(*net.TCPAddr); ok {
			out = append(out, a.AddrPort())
		}
	}
	return out
}

// openAccessLog returns the access logger for "-" (JSON lines on stdout),
// "log" (logger), "off" or a file path (JSON lines appended to it), and a
// func closing the file.
func openAccessLog(where string, stdout io.Writer, logger *slog.Logger) (*slog.Logger, func(), error) {
	switch where {
	case "off", "":
		return nil, func() {}, nil
	case "-":
		return slog.New(slog.NewJSONHandler(stdout, nil)), func() {}, nil
	case "log":
		return logger.With("component", "proxy.access"), func() {}, nil
	}
	fh, err := os.OpenFile(where, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o640)
	if err != nil {
		return nil, nil, err
	}
	return slog.New(slog.NewJSONHandler(fh, nil)), func() { fh.Close() }, nil
}
