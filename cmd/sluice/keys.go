package main

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/sluicehq/sluice/configsvc/access"
	"github.com/sluicehq/sluice/configsvc/secrets"
)

// newKeysCmd returns `sluice keys`: the keys that encrypt secret files
// (docs/secrets.md), operated on the store directly like `sluice admin`.
func newKeysCmd(env Env) *cobra.Command {
	var storeURL, dataDir string
	var opts secretsOptions
	cmd := &cobra.Command{
		Use:   "keys",
		Short: "Manage the keys that encrypt secret files",
		Long: `Manage the keys that encrypt secret files (*.secret.*, docs/secrets.md).

Like sluice admin, it works on the store directly (--store, env SLUICE_STORE;
a bbolt file is locked by a running server: stop it first) with the local
keyring of the servers (the same --secrets-… flags as sluice server).`,
	}
	cmd.PersistentFlags().StringVar(&storeURL, "store", "", "store URL: bolt://PATH or zk://HOST:PORT[,HOST:PORT…]/CHROOT (default bolt://<data-dir>/sluice.db; env SLUICE_STORE)")
	cmd.PersistentFlags().StringVar(&dataDir, "data-dir", defaultDataDir, "directory of the default bbolt store and key file")
	opts.register(cmd.PersistentFlags())

	rotate := &cobra.Command{
		Use:   "rotate",
		Short: "Make a new key-encryption key active and re-wrap every key under it",
		Long: `Make a new key-encryption key active (local: a new line in the key file;
age: a new identity in the identity file; vault: a new version of the
transit key) and re-wrap under it every store key (which wrap the data
keys of the secret file revisions), without rewriting any content; new
revisions get a new store key. Every historical revision stays readable.

Afterwards the old key may be retired (local, age: delete its line from
the file on every server, once every server has the new file; vault: raise
min_decryption_version): the output lists the ids. Running servers read
their file again when they meet a new key id. It is safe to run again
after a failure.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			ctx, cancel := context.WithTimeout(c.Context(), adminTimeout)
			defer cancel()
			logger := logOptions{Format: "text"}.newLogger(env.Stderr)
			kr, err := opts.open(dataDir, "", env.Getenv, logger, false)
			if err != nil {
				return err
			}
			var old []string
			if l, ok := kr.(interface{ IDs() []string }); ok {
				old = l.IDs()
			}
			u := storeURL
			if u == "" {
				u = env.Getenv(envTwin("store"))
			}
			if u == "" {
				u = "bolt://" + filepath.Join(dataDir, "sluice.db")
			}
			st, err := openBackend(ctx, u, logger, env.Getenv)
			if err != nil {
				return err
			}
			defer st.Close()
			newID, err := kr.Rotate(ctx)
			if err != nil {
				return err
			}
			rot, err := secrets.NewKeychain(st.Records(), kr).Rotate(ctx)
			if err != nil {
				return fmt.Errorf("keys rotate (the new key %s is active already; run it again): %w", newID, err)
			}
			// Key ids only: the audit never holds key material or values.
			_, _ = access.NewAudit(st.Records(), 0).Record(ctx, access.Entry{Time: time.Now(), Actor: "sluice keys", Action: "secret.rotate",
				Target: "keys/" + rot.KEK, Outcome: access.OutcomeAllowed, Reason: fmt.Sprintf("re-wrapped %d store keys; current %s", len(rot.Rewrapped), rot.Current)})
			out := struct {
				secrets.Rotation
				Retirable []string `json:"retirable_keys"`
			}{rot, old}
			b, _ := json.MarshalIndent(out, "", "  ")
			_, err = fmt.Fprintf(env.Stdout, "%s\n", b)
			return err
		},
	}
	cmd.AddCommand(rotate)
	return cmd
}
