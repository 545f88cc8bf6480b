package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newServerCmd returns `sluice server`. Owned by the admin-server work (issue 3).
func newServerCmd(env Env) *cobra.Command {
	return &cobra.Command{
		Use:   "server",
		Short: "Run the admin server",
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("sluice server is not built yet (issue 3)")
		},
	}
}
