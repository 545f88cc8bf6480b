package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sync/errgroup"
)

// This file is the shape `sluice server` and `sluice proxy` share: flags
// with environment twins, the logger, listeners known by their flag, one
// run group, and the ParseFlags → Run → Close lifecycle.

// shutdownTimeout bounds a graceful stop: once a listener stops accepting,
// requests in flight get this long to finish.
const shutdownTimeout = 10 * time.Second

// envRuleHelp states the environment rule in both commands' --help.
const envRuleHelp = `Every flag has an environment twin: SLUICE_ and the flag's name in capitals
with '-' as '_' (--proxy-addr: SLUICE_PROXY_ADDR). A flag given on the command
line wins over its twin; an empty variable counts as unset; a variable with a
bad value is an error naming it. SIGINT or SIGTERM stops gracefully (a second
one stops at once).`

// envTwin returns the environment variable standing in for the flag name:
// SLUICE_ and the name in capitals with '-' as '_'.
func envTwin(flag string) string {
	return "SLUICE_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// annotateEnv adds each flag's environment twin to its usage, so --help
// lists them.
func annotateEnv(fs *pflag.FlagSet) {
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Name != "help" {
			f.Usage += " (env " + envTwin(f.Name) + ")"
		}
	})
}

// applyEnv sets every flag not given on the command line from its
// environment twin, if that is set and not empty, and marks it changed. A
// value the flag refuses is an error naming the variable and the flag.
func applyEnv(fs *pflag.FlagSet, getenv func(string) string) error {
	var unset []*pflag.Flag
	fs.VisitAll(func(f *pflag.Flag) {
		if !f.Changed && f.Name != "help" {
			unset = append(unset, f)
		}
	})
	for _, f := range unset {
		name := envTwin(f.Name)
		v := getenv(name)
		if v == "" {
			continue
		}
		if err := f.Value.Set(v); err != nil {
			return fmt.Errorf("%s: invalid value for --%s: %w", name, f.Name, err)
		}
		f.Changed = true
	}
	return nil
}

// logOptions are the logging flags of both commands.
type logOptions struct {
	Level  slog.Level // --log-level: debug, info, warn or error; default info
	Format string     // --log-format: text or json; default text
}

// register adds --log-level and --log-format to fs, with o's values as
// defaults.
func (o *logOptions) register(fs *pflag.FlagSet) {
	fs.Var(levelFlag{&o.Level}, "log-level", "least severe level logged: debug, info, warn or error")
	fs.Var(choiceFlag{&o.Format, []string{"text", "json"}}, "log-format", "log line format: text (key=value) or json (one object a line)")
}

// newLogger returns the logger these options describe, writing to w.
func (o logOptions) newLogger(w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: o.Level}
	if o.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// daemon is what a long-running command implements; newDaemonCmd and
// parseDaemonFlags drive it the same way for both.
type daemon interface {
	// registerFlags adds the command's flags to fs, bound to its fields.
	registerFlags(fs *pflag.FlagSet)
	// complete runs once fs is parsed: environment twins, derived
	// defaults, checks that span flags, the logger.
	complete(fs *pflag.FlagSet) error
	Run(ctx context.Context) error
	Close() error
}

// newDaemonCmd completes cmd (Use, Short and Long set) into the cobra
// command running d: flags with their twins, then Run, then Close.
func newDaemonCmd(cmd *cobra.Command, d daemon) *cobra.Command {
	cmd.Long += "\n\n" + envRuleHelp
	cmd.Args = cobra.NoArgs
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := d.complete(cmd.Flags()); err != nil {
			return err
		}
		err := d.Run(cmd.Context())
		if cerr := d.Close(); err == nil {
			err = cerr
		}
		return err
	}
	d.registerFlags(cmd.Flags())
	annotateEnv(cmd.Flags())
	return cmd
}

// parseDaemonFlags is ParseFlags of the command name: it parses args (no
// verb) as the cobra command would, then completes d.
func parseDaemonFlags(name string, d daemon, args []string, stderr io.Writer) error {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(stderr)
	d.registerFlags(fs)
	annotateEnv(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("sluice %s takes no arguments, got %q", name, fs.Args())
	}
	return d.complete(fs)
}

// base is what ServerMain and ProxyMain share: the process's streams and
// environment, the log flags and logger, and the addresses their listeners
// bound. Call init before use.
type base struct {
	// Log holds --log-level and --log-format.
	Log logOptions

	env    Env
	logger *slog.Logger // from Log, once complete ran

	ready   chan struct{}
	boundMu sync.Mutex
	bound   map[string]string // flag name → the address its listener bound
}

func (b *base) init(env Env) {
	b.env = env
	b.Log.Format = "text"
	b.logger = b.Log.newLogger(env.Stderr)
	b.ready = make(chan struct{})
	b.bound = map[string]string{}
}

func (b *base) getenv(name string) string {
	if b.env.Getenv == nil {
		return ""
	}
	return b.env.Getenv(name)
}

// completeBase applies the environment twins and builds the logger.
func (b *base) completeBase(fs *pflag.FlagSet) error {
	if err := applyEnv(fs, b.getenv); err != nil {
		return err
	}
	b.logger = b.Log.newLogger(b.env.Stderr)
	return nil
}

// Ready is closed once Run listens on every address: Bound then knows them.
func (b *base) Ready() <-chan struct{} { return b.ready }

// Bound returns the address the listener of the flag named flag (e.g.
// "addr", "proxy-addr") bound, once Ready; "" for a listener not opened.
// With port 0 in the flag, this is where the port chosen shows.
func (b *base) Bound(flag string) string {
	b.boundMu.Lock()
	defer b.boundMu.Unlock()
	return b.bound[flag]
}

// listenAll opens a TCP listener for each flag (name → address) whose
// address is not empty and records what it bound (see Bound). On an error
// it closes those it opened; the error names the flag. A flag with an
// empty address has no entry in the result.
func (b *base) listenAll(addrs map[string]string) (map[string]net.Listener, error) {
	lns := map[string]net.Listener{}
	for flag, addr := range addrs {
		if addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			for _, l := range lns {
				l.Close()
			}
			return nil, fmt.Errorf("--%s: %w", flag, err)
		}
		lns[flag] = ln
	}
	b.boundMu.Lock()
	for flag, ln := range lns {
		b.bound[flag] = ln.Addr().String()
	}
	b.boundMu.Unlock()
	return lns, nil
}

// markReady closes Ready. Run calls it once, after listenAll.
func (b *base) markReady() { close(b.ready) }

// newRegistry returns the process's Prometheus registry, with Go and process
// metrics.
func newRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// runGroup supervises a command's long-running parts, oklog/run style: each
// member runs until the group's context ends, and the first member to
// return, with an error or not, ends that context for all. Wait returns
// when every member has returned, with the first error.
type runGroup struct {
	ctx    context.Context
	cancel context.CancelFunc
	g      *errgroup.Group
}

func newRunGroup(ctx context.Context) *runGroup {
	ctx, cancel := context.WithCancel(ctx)
	g, gctx := errgroup.WithContext(ctx)
	return &runGroup{ctx: gctx, cancel: cancel, g: g}
}

// Go starts run as the member name; its error is prefixed with name.
func (r *runGroup) Go(name string, run func(ctx context.Context) error) {
	r.g.Go(func() error {
		defer r.cancel()
		if err := run(r.ctx); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	})
}

// Wait waits for every member and returns the first error.
func (r *runGroup) Wait() error {
	defer r.cancel()
	return r.g.Wait()
}

// serveHTTP serves srv on ln until ctx ends, then stops gracefully: srv
// stops accepting and requests in flight get timeout to finish before their
// connections are closed. It returns nil after such a stop, or the error
// with which Serve ended on its own. log, when not nil, says when the stop
// begins, as what.
func serveHTTP(ctx context.Context, srv *http.Server, ln net.Listener, timeout time.Duration, log *slog.Logger, what string) error {
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	if log != nil {
		log.Info(what + " shutting down")
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	if err != nil {
		_ = srv.Close()
		err = fmt.Errorf("graceful shutdown: %w", err)
	}
	if serr := <-served; !errors.Is(serr, http.ErrServerClosed) && err == nil {
		err = serr
	}
	return err
}
