package main

import (
	"errors"

	"github.com/spf13/cobra"
)

// newProxyCmd returns `sluice proxy`. Owned by the proxy work (issue 5).
func newProxyCmd(env Env) *cobra.Command {
	return &cobra.Command{
		Use:   "proxy",
		Short: "Run the reverse proxy",
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("sluice proxy is not built yet (issue 5)")
		},
	}
}
