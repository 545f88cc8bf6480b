package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
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
	putc := a.putCmd(serviceScope)
	putc.Use, putc.Short, putc.Args = "put [path|-]", "Publish routes.yaml from a local file or stdin", cobra.RangeArgs(0, 1)
	putRun := putc.RunE
	putc.RunE = func(cmd *cobra.Command, args []string) error {
		if err := a.ensureSystemService(cmd.Context()); err != nil {
			return err
		}
		return putRun(cmd, append([]string{systemService, routesFile}, args...))
	}
	edit := a.editCmd(serviceScope)
	edit.Use, edit.Short, edit.Args = "edit", "Edit routes.yaml in $EDITOR and publish it", cobra.NoArgs
	editRun := edit.RunE
	edit.RunE = func(cmd *cobra.Command, args []string) error {
		return editRun(cmd, []string{systemService, routesFile})
	}
	live := &cobra.Command{
		Use:   "live",
		Short: "Show the live route table of every proxy (rate limits, breakers)",
		Long: "Every proxy publishes its live route table every 5 s: routes, rate limits\n" +
			"with the requests it refused, and per upstream instance the circuit breaker\n" +
			"state and request/failure counts. Proxies silent for more than 30 s are\n" +
			"listed after the table. Needs read access to sluice-system.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.runRoutesLive(cmd.Context())
		},
	}
	c.AddCommand(get, putc, edit, live)
	return c
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
// route and upstream instance.
func printLiveTables(out io.Writer, live api.LiveRoutes) error {
	t := newTable(out, "PROXY", "REVISION", "UPDATED", "ROUTE", "RATE LIMIT", "REJECTED", "INSTANCE", "BREAKER", "REQUESTS", "FAILURES")
	for _, p := range live.Proxies {
		rev := strconv.FormatInt(p.Revision, 10)
		if live.Revision > 0 && p.Revision != live.Revision {
			rev += fmt.Sprintf(" (head %d)", live.Revision)
		}
		if len(p.Routes) == 0 {
			t.row(p.ID, rev, p.Updated, "", "", "", "", "", "", "")
		}
		for _, r := range p.Routes {
			limit, rejected := rateLimitCells(r.RateLimit)
			if len(r.Instances) == 0 {
				t.row(p.ID, rev, p.Updated, r.Name, limit, rejected, "", "", "", "")
			}
			for _, in := range r.Instances {
				t.row(p.ID, rev, p.Updated, r.Name, limit, rejected, in.ID, in.Breaker, in.Requests, in.Failures)
			}
			if r.InstancesOmitted > 0 {
				t.row(p.ID, rev, p.Updated, r.Name, limit, rejected, fmt.Sprintf("(%d more)", r.InstancesOmitted), "", "", "")
			}
		}
		if p.RoutesOmitted > 0 {
			t.row(p.ID, rev, p.Updated, fmt.Sprintf("(%d more)", p.RoutesOmitted), "", "", "", "", "", "")
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

// ensureSystemService creates sluice-system on the first `routes put`, so a
// fresh install needs no separate step. Creating is idempotent on the server.
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
	_, _, err = c.Create(ctx, sys)
	return err
}
