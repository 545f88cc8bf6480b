package main

import (
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/pflag"

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
	// TrustedProxies are the peers whose X-Forwarded-* headers the proxy
	// keeps. Default: none; in `sluice server`, the admin API's
	// --trusted-proxies.
	TrustedProxies []netip.Prefix
	// AccessLog is where the proxy writes one JSON line per request: "-"
	// (stdout), "log" (through the process's log, component proxy.access),
	// "off", or a file path (appended to, created with mode 0640). Default
	// for `sluice proxy`: "-"; for `sluice server`: "log".
	AccessLog string
	// ShutdownTimeout bounds the graceful stop: requests in flight get this
	// long to finish. Default 10s.
	ShutdownTimeout time.Duration
}

// register adds the options to fs, each flag's name prefixed with prefix
// ("" or "proxy-"), with the fields' current values as defaults.
func (o *ProxyOptions) register(fs *pflag.FlagSet, prefix string) {
	fs.Var(addrFlag{&o.Addr}, prefix+"addr", "address the reverse proxy listens on")
	fs.Var(prefixesFlag{&o.TrustedProxies}, prefix+"trusted-proxies", "IP addresses or CIDRs (comma-separated) of proxies in front of the reverse proxy whose X-Forwarded-* headers are kept")
	fs.StringVar(&o.AccessLog, prefix+"access-log", o.AccessLog, `the reverse proxy's access log: "-" (stdout), "log" (the process's log), "off", or a file path`)
	fs.Var(positiveDurationFlag{&o.ShutdownTimeout}, prefix+"shutdown-timeout", "how long requests in flight through the reverse proxy get to finish on a graceful stop")
}

// prepare opens what the options name (the access log file) and returns the
// proxyserver.Options they stand for, and a func releasing what it opened,
// to call once the proxy has stopped. prefix names the flags in errors;
// stdout is the access log's "-"; the proxy logs through logger and records
// metrics in reg.
func (o ProxyOptions) prepare(prefix string, stdout io.Writer, logger *slog.Logger, reg prometheus.Registerer) (proxyserver.Options, func(), error) {
	access, closeAccess, err := openAccessLog(o.AccessLog, stdout, logger)
	if err != nil {
		return proxyserver.Options{}, nil, fmt.Errorf("--%saccess-log: %w", prefix, err)
	}
	return proxyserver.Options{
		Logger:          logger.With("component", "proxy"),
		AccessLog:       access,
		Registerer:      reg,
		TrustedProxies:  o.TrustedProxies,
		ShutdownTimeout: o.ShutdownTimeout,
	}, closeAccess, nil
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
