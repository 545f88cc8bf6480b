package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/configsvc"
)

// adminTimeout bounds one `sluice admin` command against the store.
const adminTimeout = 2 * time.Minute

// newAdminCmd returns `sluice admin`: operations on the store itself, run
// where the store is reachable (ZooKeeper, or the bbolt file of a stopped
// server), not through the admin API.
func newAdminCmd(env Env) *cobra.Command {
	var storeURL, dataDir string
	cmd := &cobra.Command{
		Use:   "admin",
		Short: "Operate on the store directly (generation after a restore)",
		Long: `Operate on the store directly, not through an admin server.

The store is named like sluice server's --store (env SLUICE_STORE), with
the same ZooKeeper digest identity (SLUICE_ZK_DIGEST). A bbolt file is
locked by a running server: stop it first.`,
	}
	cmd.PersistentFlags().StringVar(&storeURL, "store", "", "store URL: bolt://PATH or zk://HOST:PORT[,HOST:PORT…]/CHROOT (default bolt://<data-dir>/sluice.db; env SLUICE_STORE)")
	cmd.PersistentFlags().StringVar(&dataDir, "data-dir", defaultDataDir, "directory of the default bbolt store")
	// withStore opens the store, runs fn on it, closes it and prints what
	// fn returned as JSON.
	withStore := func(c *cobra.Command, fn func(ctx context.Context, st configsvc.Store) (any, error)) error {
		ctx, cancel := context.WithTimeout(c.Context(), adminTimeout)
		defer cancel()
		u := storeURL
		if u == "" {
			u = env.Getenv(envTwin("store"))
		}
		if u == "" {
			u = "bolt://" + filepath.Join(dataDir, "sluice.db")
		}
		st, err := openBackend(ctx, u, logOptions{Format: "text"}.newLogger(env.Stderr), env.Getenv)
		if err != nil {
			return err
		}
		defer st.Close()
		v, err := fn(ctx, st)
		if err != nil {
			return err
		}
		b, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(env.Stdout, "%s\n", b)
		return err
	}

	show := &cobra.Command{
		Use:   "generation",
		Short: "Print the store's generation as JSON",
		Args:  cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			return withStore(c, func(ctx context.Context, st configsvc.Store) (any, error) { return st.Generation(ctx) })
		},
	}

	var reason string
	var yes bool
	bump := &cobra.Command{
		Use:   "bump-generation --reason TEXT --yes",
		Short: "Give the store a new generation after a restore or import",
		Long: `Give the store a new generation and stamp it on every service and group.

Run it right after restoring the store from a backup (a ZooKeeper snapshot,
a copy of the bbolt file) or importing one. The restored store issues again
revision numbers that servers, proxies and SDKs have already seen, with
other content; with a new generation every one of them takes the restored
content as a new history at once: it reloads, calls its OnChange callbacks
(even where the revision number went down), logs the rewrite, counts it in
its metrics and records it on its instance. Without the bump they keep
what they hold until the restored store reaches their revision again.
See docs/operations.md, "Restoring a backup".`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if !yes {
				return errors.New("bump-generation makes every client reload: confirm with --yes")
			}
			if reason == "" {
				return errors.New("--reason is required: say what was restored, e.g. --reason \"restored the snapshot of 2027-01-03 02:00\"")
			}
			return withStore(c, func(ctx context.Context, st configsvc.Store) (any, error) {
				g, err := st.BumpGeneration(ctx, reason)
				if err != nil {
					return nil, fmt.Errorf("bump generation: %w", err)
				}
				return g, nil
			})
		},
	}
	bump.Flags().StringVar(&reason, "reason", "", "what was restored or imported (recorded with the generation)")
	bump.Flags().BoolVar(&yes, "yes", false, "confirm")
	cmd.AddCommand(show, bump)
	return cmd
}
