package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/configsvc"
	"github.com/sluicehq/sluice/configsvc/api"
)

// Routes are the file routes.yaml of the reserved service sluice-system.
const (
	systemService = configsvc.SystemService
	routesFile    = configsvc.RoutesFile
)

func (a *app) routesCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "routes",
		Short: "Read, publish and edit the proxy's routes (sluice-system/routes.yaml)",
		Long: "The proxy's routes are the config file routes.yaml of the reserved\n" +
			"service sluice-system: they have revisions, diff, rollback and audit like\n" +
			"any config, and the server checks them against the route schema before\n" +
			"publishing. Only admins may change them. History and rollback:\n" +
			"  sluice history sluice-system\n  sluice rollback sluice-system --to N",
	}
	get := a.getCmd(serviceScope)
	get.Use, get.Short, get.Args = "get", "Print routes.yaml", cobra.NoArgs
	getRun := get.RunE
	get.RunE = func(cmd *cobra.Command, args []string) error {
		err := getRun(cmd, []string{systemService, routesFile})
		if isStatus(err, http.StatusNotFound) {
			return fmt.Errorf("%w\nno routes are published yet: publish a route table with `sluice routes put routes.yaml`", err)
		}
		return err
	}
	putc := a.routesPutCmd()
	edit := a.editCmd(serviceScope)
	edit.Use, edit.Short, edit.Args = "edit", "Edit routes.yaml in $EDITOR and publish it", cobra.NoArgs
	editRun := edit.RunE
	edit.RunE = func(cmd *cobra.Command, args []string) error {
		return editRun(cmd, []string{systemService, routesFile})
	}
	live := &cobra.Command{
		Use:   "live",
		Short: "Show the live route table of every proxy (rate limits, breakers, ejections)",
		Long: "Every proxy publishes its live route table every 5 s: routes, rate limits\n" +
			"with the requests it refused, and per upstream instance the circuit breaker\n" +
			"state, whether outlier detection ejected it or its health checks fail, and\n" +
			"request/failure counts; a route balancing across all its instances because\n" +
			"too few are healthy is marked (panic). Proxies silent for more than 30 s are\n" +
			"listed after the table. Needs read access to sluice-system.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runRoutesLive(cmd.Context())
		},
	}
	c.AddCommand(get, putc, edit, live)
	return c
}

// routesPutCmd is `sluice routes put`: publish routes.yaml, then wait for
// the live proxies to serve it (waitForProxies) unless --no-wait.
func (a *app) routesPutCmd() *cobra.Command {
	putc := a.putCmd(serviceScope)
	putc.Use, putc.Short, putc.Args = "put [path|-]", "Publish routes.yaml from a local file or stdin and wait for the proxies", cobra.RangeArgs(0, 1)
	putc.Long = "Publish routes.yaml as a new revision of sluice-system (created on the\n" +
		"first put), then wait until every live proxy reports that it serves it,\n" +
		"printing each proxy as it does, like `kubectl rollout status`. Live proxies\n" +
		"are those whose state GET /v1/routes shows as fresh. When one still serves\n" +
		"an older revision after --wait-timeout, the command fails naming the proxies\n" +
		"that lag. --no-wait returns once the revision is published. With --dry-run\n" +
		"nothing is published: it prints the validation, the diff and the routes\n" +
		"that change. Under an approval policy the put creates a change request and\n" +
		"returns without waiting (see `sluice change`)."
	var noWait bool
	var waitTimeout time.Duration
	putc.Flags().BoolVar(&noWait, "no-wait", false, "return once published, without waiting for the proxies")
	putc.Flags().DurationVar(&waitTimeout, "wait-timeout", 30*time.Second, "how long to wait for every live proxy to serve the new revision")
	putc.RunE = func(cmd *cobra.Command, args []string) error {
		content, ifMatch, err := a.putInput(cmd, args, 0)
		if err != nil {
			return err
		}
		if err := a.ensureSystemService(cmd.Context()); err != nil {
			return err
		}
		msg, _ := cmd.Flags().GetString("message")
		rev, published, err := a.publishRoutes(cmd.Context(), content, msg, ifMatch)
		if err != nil || !published || noWait {
			return err
		}
		return a.waitForProxies(cmd.Context(), rev, waitTimeout)
	}
	return putc
}

// runRoutesLive prints one row per proxy, route and upstream instance,
// then the proxies that do not report.
func (a *app) runRoutesLive(ctx context.Context) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	live, err := c.LiveRoutes(ctx)
	if err != nil {
		return err
	}
	if a.json() {
		return marshalJSON(a.stdout(), live)
	}
	out := a.stdout()
	if len(live.Proxies) == 0 {
		fmt.Fprintln(out, "no proxy reports its live route table")
	} else if err := printLiveTables(out, live); err != nil {
		return err
	}
	printStaleProxies(out, live.Stale)
	return nil
}

// printLiveTables writes the table of runRoutesLive: a row per proxy,
// route and upstream instance. A route in panic mode is marked "(panic)".
func printLiveTables(out io.Writer, live api.LiveRoutes) error {
	t := newTable(out, "PROXY", "REVISION", "UPDATED", "ROUTE", "RATE LIMIT", "REJECTED", "INSTANCE", "BREAKER", "HEALTH", "REQUESTS", "FAILURES")
	for _, p := range live.Proxies {
		rev := strconv.FormatInt(p.Revision, 10)
		if live.Revision > 0 && p.Revision != live.Revision {
			rev += fmt.Sprintf(" (head %d)", live.Revision)
		}
		if len(p.Routes) == 0 {
			t.row(p.ID, rev, p.Updated, "", "", "", "", "", "", "", "")
		}
		for _, r := range p.Routes {
			name := r.Name
			if r.Panic {
				name += " (panic)"
			}
			limit, rejected := rateLimitCells(r.RateLimit)
			if len(r.Instances) == 0 {
				t.row(p.ID, rev, p.Updated, name, limit, rejected, "", "", "", "", "")
			}
			for _, in := range r.Instances {
				t.row(p.ID, rev, p.Updated, name, limit, rejected, in.ID, in.Breaker, instanceHealth(in), in.Requests, in.Failures)
			}
			if r.InstancesOmitted > 0 {
				t.row(p.ID, rev, p.Updated, name, limit, rejected, fmt.Sprintf("(%d more)", r.InstancesOmitted), "", "", "", "")
			}
		}
		if p.RoutesOmitted > 0 {
			t.row(p.ID, rev, p.Updated, fmt.Sprintf("(%d more)", p.RoutesOmitted), "", "", "", "", "", "", "")
		}
	}
	return t.flush()
}

// rateLimitCells returns the RATE LIMIT and REJECTED cells of a route; ""
// for a route without a rate limit.
func rateLimitCells(rl *configsvc.RateLimitState) (limit, rejected string) {
	if rl == nil {
		return "", ""
	}
	limit = fmt.Sprintf("%g/s burst %d %s", rl.RPS, rl.Burst, rl.Key)
	if rl.Scope == "cluster" {
		limit += " (cluster)"
	}
	return limit, strconv.FormatUint(rl.Rejected, 10)
}

// printStaleProxies writes a line per proxy that does not report its
// state: stale, or registered but silent.
func printStaleProxies(out io.Writer, stale []api.StaleProxy) {
	for _, s := range stale {
		if s.Reason == api.StaleOld {
			updated := time.Time{}
			if s.Updated != nil {
				updated = *s.Updated
			}
			fmt.Fprintf(out, "%s: stale, last update %s (revision %d)\n", s.ID, fmtTime(updated), s.Revision)
		} else {
			fmt.Fprintf(out, "%s: registered, but publishes no state\n", s.ID)
		}
	}
}

// instanceHealth says whether an instance is out of its route's balancer:
// "ejected" by outlier detection, "unhealthy" by its health checks, both,
// "healthy", or "" when the route checks neither.
func instanceHealth(in configsvc.InstanceState) string {
	switch {
	case in.Ejected && in.Health == "unhealthy":
		return "ejected, unhealthy"
	case in.Ejected:
		return "ejected"
	}
	return in.Health
}

// ensureSystemService creates sluice-system on the first `routes put`, so a
// fresh install needs no separate step. A proxy creates it too when it
// finds none: a conflict means it exists now.
func (a *app) ensureSystemService(ctx context.Context) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	sys := configsvc.Service(configsvc.SystemService)
	_, err = c.Head(ctx, sys)
	if !isStatus(err, http.StatusNotFound) {
		return nil // exists, or the put will report the real trouble
	}
	if _, _, err = c.Create(ctx, sys); isStatus(err, http.StatusConflict) {
		return nil
	}
	return err
}

// publishRoutes publishes routes.yaml and prints the revision. published
// is false when nothing was published: with --dry-run it prints the dry run
// instead, and under an approval policy the change request the put created
// (a *api.Pending answer). --emergency goes with the put.
func (a *app) publishRoutes(ctx context.Context, content []byte, msg string, ifMatch int64) (rev int64, published bool, err error) {
	c, err := a.client()
	if err != nil {
		return 0, false, err
	}
	if a.dryRun {
		opts := a.writeOpts()
		if ifMatch >= 0 {
			opts = append(opts, api.IfMatch(ifMatch))
		}
		return 0, false, a.dryRunOrPublish(ctx, true, func(ctx context.Context) (api.DryRun, error) {
			return c.DryRunPutFile(ctx, serviceScope.ref(systemService), routesFile, content, opts...)
		}, nil)
	}
	r, err := putFile(ctx, c, serviceScope, systemService, routesFile, content, msg, ifMatch, a.writeOpts()...)
	if done, err := a.pending(err); done {
		return 0, false, err
	}
	if isStatus(err, http.StatusPreconditionFailed) {
		return 0, false, fmt.Errorf("%w\n%s/%s: revision %d is no longer the newest; nothing was published. Read the current routes (sluice routes get) and publish again", err, systemService, routesFile, ifMatch)
	}
	if err != nil {
		return 0, false, err
	}
	return r.Number, true, a.printPublished(r, systemService, []string{routesFile})
}

// How often `routes put` asks which proxies serve the new revision: right
// after the publish, 10 ms later, then at twice the interval each time, up
// to every 100 ms. Proxies apply a revision within milliseconds, so a
// proxy is seen within about twice the time it took.
const (
	routesPollFirst    = 10 * time.Millisecond
	routesPollInterval = 100 * time.Millisecond
)

// waitForProxies waits until every live proxy (GET /v1/routes) serves
// revision rev of sluice-system or later, printing each one as it does; it
// fails after timeout naming the proxies that lag. Progress goes to stdout,
// or to stderr with -o json (stdout holds the revision's JSON).
func (a *app) waitForProxies(ctx context.Context, rev int64, timeout time.Duration) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	w := &proxyWait{out: a.stdout(), rev: rev, start: time.Now(), seen: map[string]bool{}}
	if a.json() {
		w.out = a.stderr()
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var lagging []string
	var lastErr error
	delay := routesPollFirst
	for {
		live, err := c.LiveRoutes(ctx)
		switch {
		case isStatus(err, http.StatusNotFound):
			fmt.Fprintln(w.out, "the server does not report the proxies' route tables (GET /v1/routes): not waiting")
			return nil
		case err != nil:
			lastErr = err
		default:
			lastErr = nil
			if lagging = w.check(live); len(lagging) == 0 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			if lastErr != nil && lagging == nil {
				return fmt.Errorf("revision %d published, but which proxies serve it is unknown after %s: %w", rev, timeout, lastErr)
			}
			return fmt.Errorf("revision %d published, but after %s %d proxies do not serve it yet: %s (see sluice routes live; --wait-timeout waits longer)", rev, timeout, len(lagging), strings.Join(lagging, ", "))
		case <-time.After(delay):
		}
		delay = min(2*delay, routesPollInterval)
	}
}

// proxyWait is the progress of waitForProxies: the proxies already seen
// serving revision rev, and whether the silent ones were named.
type proxyWait struct {
	out   io.Writer
	rev   int64
	start time.Time
	seen  map[string]bool
	said  bool
}

// check prints the proxies of live that serve the revision for the first
// time (and, once, the registered proxies that publish no state), and
// returns the ones that lag; nil when none does, after printing that the
// revision is live.
func (w *proxyWait) check(live api.LiveRoutes) (lagging []string) {
	for _, p := range live.Proxies {
		if p.Revision < w.rev {
			lagging = append(lagging, fmt.Sprintf("%s (revision %d)", p.ID, p.Revision))
			continue
		}
		if !w.seen[p.ID] {
			w.seen[p.ID] = true
			fmt.Fprintf(w.out, "proxy %s serves revision %d (%s)\n", p.ID, p.Revision, time.Since(w.start).Round(time.Millisecond))
		}
	}
	if !w.said {
		w.said = true
		for _, s := range live.Stale {
			if s.Reason == api.StaleUnreported {
				fmt.Fprintf(w.out, "proxy %s is registered but publishes no state: not waited for\n", s.ID)
			}
		}
	}
	if len(lagging) > 0 {
		return lagging
	}
	if len(live.Proxies) == 0 {
		fmt.Fprintln(w.out, "no live proxy reports its route table: nothing to wait for")
	} else {
		fmt.Fprintf(w.out, "revision %d is live on all %d proxies\n", w.rev, len(live.Proxies))
	}
	return nil
}
