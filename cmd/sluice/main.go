package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/cmd/sluice/cli"
)

func main() {
	// The first SIGINT or SIGTERM ends ctx: server and proxy stop gracefully.
	// Then the signals' default action is restored, so a second one ends
	// the process at once.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	context.AfterFunc(ctx, stop)
	code := run(ctx, os.Args[1:], Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv})
	stop()
	os.Exit(code)
}

// Env is what the commands use of the process: streams and environment.
// Tests pass their own.
type Env = cli.Env

// run executes one sluice command line and returns the exit code.
func run(ctx context.Context, args []string, env Env) int {
	root := newRoot(env)
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(env.Stderr, "sluice:", err)
		return 1
	}
	return 0
}

func newRoot(env Env) *cobra.Command {
	root := &cobra.Command{
		Use:           "sluice",
		Short:         "Sluice: configuration center and traffic-control plane for Go services",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(env.Stdin)
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	root.AddCommand(newServerCmd(env), newProxyCmd(env), newValidateCmd(env), newAdminCmd(env), newKeysCmd(env))
	root.AddCommand(newExportCmd(env), newImportCmd(env), newMigrateCmd(env))
	root.AddCommand(cli.Commands(env)...)
	addVersion(root, env)
	strictCompletion(root)
	return root
}

// strictCompletion makes `sluice completion <shell>` with a shell cobra
// does not know (or none) an error naming the valid shells: cobra's own
// completion command prints its help and exits 0 then, so a typo in an
// install script went unnoticed.
func strictCompletion(root *cobra.Command) {
	root.InitDefaultCompletionCmd()
	comp, _, err := root.Find([]string{"completion"})
	if err != nil || comp == root {
		return
	}
	var shells []string
	for _, c := range comp.Commands() {
		shells = append(shells, c.Name())
	}
	comp.Use = "completion <shell>"
	comp.Args = cobra.ArbitraryArgs
	comp.RunE = func(_ *cobra.Command, args []string) error {
		if len(args) == 0 {
			return fmt.Errorf("completion needs a shell: one of %s", strings.Join(shells, ", "))
		}
		return fmt.Errorf("completion: unknown shell %q: valid shells are %s", args[0], strings.Join(shells, ", "))
	}
}
