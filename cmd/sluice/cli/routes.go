package cli

import (
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
		return getRun(cmd, []string{systemService, routesFile})
	}
	putc := a.putCmd(serviceScope)
	putc.Use, putc.Short, putc.Args = "put [path|-]", "Publish routes.yaml from a local file or stdin", cobra.RangeArgs(0, 1)
	putRun := putc.RunE
	putc.RunE = func(cmd *cobra.Command, args []string) error {
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
