// Package cli implements the sluice command-line client verbs (get, put,
// edit, history, diff, rollback, link, instances, pin, token, audit …)
// against the admin server's REST API.
package cli

import (
	"io"

	"github.com/spf13/cobra"
)

// Env is what the commands use of the process: streams and environment.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Getenv func(string) string
}

// Commands returns the client verbs to add to the root command.
func Commands(env Env) []*cobra.Command {
	return nil
}
