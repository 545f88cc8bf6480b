package cli

import (
	"context"
	"fmt"
	"net/http"

	"github.com/spf13/cobra"
)

// Routes are the file routes.yaml of the reserved service sluice-system.
const (
	systemService = "sluice-system"
	routesFile    = "routes.yaml"
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
	c.AddCommand(get, putc, edit)
	return c
}

// ensureSystemService creates sluice-system on the first `routes put`, so a
// fresh install needs no separate step. Creating is idempotent on the server.
func (a *app) ensureSystemService(ctx context.Context) error {
	c, err := a.client()
	if err != nil {
		return err
	}
	_, err = c.do(ctx, request{method: http.MethodGet, path: serviceScope.path(systemService)})
	if !isStatus(err, http.StatusNotFound) {
		return nil // exists, or the put will report the real trouble
	}
	_, err = c.do(ctx, request{method: http.MethodPut, path: serviceScope.path(systemService)})
	return err
}
